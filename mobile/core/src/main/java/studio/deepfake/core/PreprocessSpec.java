package studio.deepfake.core;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * The preprocessing contract of a bundle ({@code bundle.json} "preprocess"), validated exactly as
 * {@code core/preprocess.py}'s {@code PreprocessSpec} validates it, plus the crop geometry.
 */
public final class PreprocessSpec {
    /** The supported contract version. */
    public static final int CONTRACT_VERSION = 1;

    /** The three {@code resize_mode} values. */
    public enum ResizeMode {
        /** Scale the shorter side to {@code resize_size}, then centre-crop {@code input_size}. */
        RESIZE_CROP("resize_crop"),
        /** Scale both sides to {@code input_size} (aspect not kept). */
        RESIZE("resize"),
        /** Centre-crop at native resolution; smaller images are first scaled up to fit. */
        CROP("crop");

        public final String jsonName;

        ResizeMode(String jsonName) {
            this.jsonName = jsonName;
        }

        static ResizeMode fromJson(String name) {
            for (ResizeMode mode : values()) {
                if (mode.jsonName.equals(name)) {
                    return mode;
                }
            }
            throw new BundleException(
                    "resize_mode must be one of resize_crop, resize, crop, not \"" + name + "\"");
        }
    }

    /**
     * Where the geometry step scales an image to ({@code scaledWidth x scaledHeight}) and which
     * {@code size x size} window of the scaled image it keeps (starting at {@code top, left}).
     */
    public static final class Plan {
        public final int scaledWidth;
        public final int scaledHeight;
        public final int top;
        public final int left;
        public final int size;

        Plan(int scaledWidth, int scaledHeight, int top, int left, int size) {
            this.scaledWidth = scaledWidth;
            this.scaledHeight = scaledHeight;
            this.top = top;
            this.left = left;
            this.size = size;
        }

        @Override
        public String toString() {
            return "Plan[" + scaledWidth + "x" + scaledHeight + " crop " + size + " at top=" + top
                    + " left=" + left + "]";
        }
    }

    private static final Set<String> FIELDS = new HashSet<>(Arrays.asList(
            "input_size", "resize_mode", "resize_size", "interpolation", "mean", "std",
            "channel_order", "layout", "version"));

    public final int inputSize;
    public final ResizeMode resizeMode;
    /** The shorter side before the crop in {@code resize_crop} mode, or {@code null}. */
    public final Integer resizeSize;
    public final double[] mean;
    public final double[] std;

    public PreprocessSpec(int inputSize, ResizeMode resizeMode, Integer resizeSize, double[] mean,
            double[] std) {
        if (inputSize < 8 || inputSize > 4096) {
            throw new BundleException(
                    "input size must be between 8 and 4096 pixels, not " + inputSize);
        }
        if (resizeSize != null && resizeSize < inputSize) {
            throw new BundleException("resize_size " + resizeSize
                    + " is smaller than input_size " + inputSize);
        }
        if (mean.length != 3 || std.length != 3) {
            throw new BundleException("mean and std must have 3 values (R, G, B)");
        }
        for (double s : std) {
            if (!(s > 0)) {
                throw new BundleException("std values must be positive, not " + s);
            }
        }
        this.inputSize = inputSize;
        this.resizeMode = resizeMode;
        this.resizeSize = resizeSize;
        this.mean = mean.clone();
        this.std = std.clone();
    }

    /** Reads and validates the "preprocess" object of {@code bundle.json}. */
    public static PreprocessSpec fromJson(Map<String, Object> body) {
        String where = "preprocess";
        for (String key : body.keySet()) {
            if (!FIELDS.contains(key)) {
                throw new BundleException("unknown preprocessing field \"" + key + "\"");
            }
        }
        String interpolation = Json.optString(body, "interpolation", where);
        String order = Json.optString(body, "channel_order", where);
        String layout = Json.optString(body, "layout", where);
        if (!"triangle".equals(orDefault(interpolation, "triangle"))
                || !"RGB".equals(orDefault(order, "RGB"))
                || !"NCHW".equals(orDefault(layout, "NCHW"))) {
            throw new BundleException("only triangle interpolation, RGB and NCHW are supported");
        }
        Integer version = Json.optInt(body, "version", where);
        if (version != null && version != CONTRACT_VERSION) {
            throw new BundleException(
                    "preprocessing contract version " + version + " is not supported");
        }
        return new PreprocessSpec(
                Json.getInt(body, "input_size", where),
                ResizeMode.fromJson(Json.getString(body, "resize_mode", where)),
                Json.optInt(body, "resize_size", where),
                Json.getDoubles(body, "mean", where),
                Json.getDoubles(body, "std", where));
    }

    /** {@code resize_size}, or {@code input_size} when it is not set. */
    public int shorterSide() {
        return resizeSize != null ? resizeSize : inputSize;
    }

    /** The scale and crop for a {@code width x height} image (Python's {@code geometry}). */
    public Plan plan(int width, int height) {
        if (width <= 0 || height <= 0) {
            throw new BundleException("image has no pixels (" + width + "x" + height + ")");
        }
        int size = inputSize;
        if (resizeMode == ResizeMode.RESIZE) {
            return new Plan(size, size, 0, 0, size);
        }
        int newH;
        int newW;
        if (resizeMode == ResizeMode.CROP && Math.min(height, width) >= size) {
            newH = height;
            newW = width;
        } else {
            int shorter = resizeMode == ResizeMode.CROP ? size : shorterSide();
            double scale = (double) shorter / Math.min(height, width);
            if (height <= width) {
                newH = shorter;
                newW = Math.max(shorter, roundHalfEven(width * scale));
            } else {
                newH = Math.max(shorter, roundHalfEven(height * scale));
                newW = shorter;
            }
        }
        // new >= size, so integer division is Python's floor division here.
        return new Plan(newW, newH, (newH - size) / 2, (newW - size) / 2, size);
    }

    /** Python's {@code round()}: ties go to the even integer (2.5 -> 2, 3.5 -> 4). */
    static int roundHalfEven(double value) {
        return (int) Math.rint(value);
    }

    private static String orDefault(String value, String fallback) {
        return value != null ? value : fallback;
    }
}
