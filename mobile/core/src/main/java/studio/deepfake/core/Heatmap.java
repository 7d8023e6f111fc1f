package studio.deepfake.core;

import java.util.Arrays;

/**
 * The heatmap rule of docs/bundle-format.md ({@code core/explain.py}): from a {@code cam} output
 * {@code [1, C, h, w]}, the map of class {@code k} is {@code cam[k] - mean(cam[j], j != k)},
 * upsampled with the contract's triangle filter to the region the model saw, then min-max
 * scaled to 0..1.
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

    /**
     * The heatmap of class {@code classIndex} at {@code outWidth x outHeight}.
     *
     * @param cam the {@code cam} output, row-major
     * @param shape its shape, {@code [1, C, h, w]}
     */
    public static Heatmap of(float[] cam, long[] shape, int classIndex, int outWidth, int outHeight) {
        if (shape.length != 4 || shape[0] != 1) {
            throw new BundleException("cam output must have shape [1, C, h, w], not "
                    + Arrays.toString(shape));
        }
        int classes = (int) shape[1];
        int h = (int) shape[2];
        int w = (int) shape[3];
        if (classIndex < 0 || classIndex >= classes || cam.length != classes * h * w) {
            throw new BundleException("cam output does not match its shape or the class index");
        }
        double[] map = classMap(cam, classes, h * w, classIndex);
        Resample rows = Resample.of(h, outHeight);
        Resample cols = Resample.of(w, outWidth);
        double[] heat = new double[outWidth * outHeight];
        double low = Double.POSITIVE_INFINITY;
        double high = Double.NEGATIVE_INFINITY;
        for (int y = 0; y < outHeight; y++) {
            for (int x = 0; x < outWidth; x++) {
                double sum = 0;
                for (int i = 0; i < rows.weights[y].length; i++) {
                    int row = (rows.first[y] + i) * w;
                    for (int j = 0; j < cols.weights[x].length; j++) {
                        sum += rows.weights[y][i] * cols.weights[x][j] * map[row + cols.first[x] + j];
                    }
                }
                heat[y * outWidth + x] = sum;
                low = Math.min(low, sum);
                high = Math.max(high, sum);
            }
        }
        float[] values = new float[heat.length];
        if (high - low >= 1e-12) {
            for (int i = 0; i < heat.length; i++) {
                values[i] = (float) ((heat[i] - low) / (high - low));
            }
        }
        return new Heatmap(outWidth, outHeight, values);
    }

    /** Evidence for one class over the others at each location (Python's {@code class_map}). */
    static double[] classMap(float[] cam, int classes, int plane, int index) {
        double[] map = new double[plane];
        for (int p = 0; p < plane; p++) {
            double others = 0;
            for (int c = 0; c < classes; c++) {
                if (c != index) {
                    others += cam[c * plane + p];
                }
            }
            map[p] = classes == 1 ? cam[p] : cam[index * plane + p] - others / (classes - 1);
        }
        return map;
    }

    /** ARGB pixels coloured like {@code core.explain.colormap}, with {@code alpha} 0..255. */
    public int[] toArgb(int alpha) {
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (alpha & 0xFF) << 24 | colour(values[i]);
        }
        return out;
    }

    /**
     * Blends the coloured heatmap over an {@code S x S x 3} image (floats 0..255, HWC, e.g.
     * {@link Preprocessor#geometry}), more strongly where it is hot: {@code core.explain.overlay}.
     *
     * @return opaque ARGB pixels, row-major
     */
    public int[] overlay(float[] hwc, float alpha) {
        if (hwc.length != values.length * 3) {
            throw new IllegalArgumentException("heatmap " + width + "x" + height
                    + " does not match an image of " + hwc.length / 3 + " pixels");
        }
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            float heat = Math.max(0f, Math.min(1f, values[i]));
            float weight = alpha * heat;
            int colour = colour(heat);
            int argb = 0xFF;
            for (int c = 0; c < 3; c++) {
                float hot = (colour >> (16 - 8 * c)) & 0xFF;
                float blended = hwc[i * 3 + c] * (1f - weight) + hot * weight;
                argb = argb << 8 | (int) Math.max(0f, Math.min(255f, blended + 0.5f));
            }
            out[i] = argb;
        }
        return out;
    }

    /** The jet-like RGB colour of a value in 0..1 (blue = cold, red = hot). */
    static int colour(float value) {
        float v = Math.max(0f, Math.min(1f, value));
        int rgb = 0;
        for (float centre : new float[] {3f, 2f, 1f}) {
            float level = Math.max(0f, Math.min(1f, 1.5f - Math.abs(4f * v - centre)));
            rgb = rgb << 8 | (int) (level * 255f + 0.5f);
        }
        return rgb;
    }
}
