package studio.deepfake.core;

/**
 * A class-activation map ({@code cam} output, {@code [1, C, h, w]}) for one class, scaled to
 * 0..1, upsampled with the contract's triangle filter and coloured for an overlay.
 */
public final class Heatmap {
    public final int width;
    public final int height;
    /** {@code values[y * width + x]} in 0..1 (all 0 when the map is flat). */
    public final float[] values;

    private Heatmap(int width, int height, float[] values) {
        this.width = width;
        this.height = height;
        this.values = values;
    }

    /** Channel {@code classIndex} of a {@code [1, C, h, w]} cam tensor, min-max scaled. */
    public static Heatmap of(float[] cam, long[] shape, int classIndex) {
        if (shape.length != 4 || shape[0] != 1) {
            throw new BundleException("cam output must have shape [1, C, h, w], not "
                    + java.util.Arrays.toString(shape));
        }
        int classes = (int) shape[1];
        int h = (int) shape[2];
        int w = (int) shape[3];
        if (classIndex < 0 || classIndex >= classes || cam.length != classes * h * w) {
            throw new BundleException("cam output does not match its shape or the class index");
        }
        float[] values = new float[h * w];
        System.arraycopy(cam, classIndex * h * w, values, 0, h * w);
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (float v : values) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        float range = max - min;
        for (int i = 0; i < values.length; i++) {
            values[i] = range > 0 ? (values[i] - min) / range : 0f;
        }
        return new Heatmap(w, h, values);
    }

    /** This map resampled to {@code outWidth x outHeight} (separable triangle filter). */
    public Heatmap resize(int outWidth, int outHeight) {
        Resample rows = Resample.of(height, outHeight);
        Resample cols = Resample.of(width, outWidth);
        float[] out = new float[outWidth * outHeight];
        for (int y = 0; y < outHeight; y++) {
            for (int x = 0; x < outWidth; x++) {
                double sum = 0;
                for (int i = 0; i < rows.weights[y].length; i++) {
                    int sy = rows.first[y] + i;
                    for (int j = 0; j < cols.weights[x].length; j++) {
                        int sx = cols.first[x] + j;
                        sum += rows.weights[y][i] * cols.weights[x][j] * values[sy * width + sx];
                    }
                }
                out[y * outWidth + x] = (float) sum;
            }
        }
        return new Heatmap(outWidth, outHeight, out);
    }

    /** ARGB pixels (blue - green - yellow - red ramp), {@code alpha} 0..255 for the overlay. */
    public int[] toArgb(int alpha) {
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (alpha & 0xFF) << 24 | colour(values[i]);
        }
        return out;
    }

    /** The RGB colour of a value in 0..1. */
    static int colour(float value) {
        float v = Math.max(0f, Math.min(1f, value));
        float r = clamp(1.5f - Math.abs(4f * v - 3f));
        float g = clamp(1.5f - Math.abs(4f * v - 2f));
        float b = clamp(1.5f - Math.abs(4f * v - 1f));
        return Math.round(r * 255) << 16 | Math.round(g * 255) << 8 | Math.round(b * 255);
    }

    private static float clamp(float v) {
        return Math.max(0f, Math.min(1f, v));
    }
}
