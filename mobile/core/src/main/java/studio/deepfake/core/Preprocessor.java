package studio.deepfake.core;

import java.util.Arrays;

/**
 * Steps 2 and 3 of the preprocessing contract (geometry, then normalisation) on a decoded image:
 * the Java port of {@code PreprocessSpec.geometry} and {@code PreprocessSpec.normalize}.
 */
public final class Preprocessor {
    public final PreprocessSpec spec;

    public Preprocessor(PreprocessSpec spec) {
        this.spec = spec;
    }

    /** The model input: a {@code 3 x S x S} float tensor (NCHW without the batch axis). */
    public float[] apply(RgbImage image) {
        return normalize(geometry(image));
    }

    /**
     * Step 2: scale and centre-crop to an {@code S x S x 3} image of floats in 0..255 (HWC).
     *
     * <p>Resampling is separable (rows, then columns); each pass sums in double and stores
     * float, like the Python port's two float32 {@code einsum} passes.
     */
    public float[] geometry(RgbImage image) {
        PreprocessSpec.Plan plan = spec.plan(image.width, image.height);
        int size = plan.size;
        if (plan.scaledWidth == image.width && plan.scaledHeight == image.height) {
            return crop(image, plan);
        }
        // Only the kept band of each axis: a thin strip scales to a huge axis it mostly crops.
        Resample rows = Resample.band(image.height, plan.scaledHeight, plan.top, plan.top + size);
        Resample cols = Resample.band(image.width, plan.scaledWidth, plan.left, plan.left + size);
        int stride = image.width * 3;
        // Pass 1: the kept output rows, every input column.
        float[] tmp = new float[size * stride];
        double[] acc = new double[stride];
        for (int i = 0; i < size; i++) {
            Arrays.fill(acc, 0.0);
            float[] w = rows.floatWeights[i];
            int first = rows.first[i];
            for (int k = 0; k < w.length; k++) {
                if (w[k] == 0f) {
                    continue;
                }
                double weight = w[k];
                int base = (first + k) * stride;
                for (int x = 0; x < stride; x++) {
                    acc[x] += weight * (image.rgb[base + x] & 0xFF);
                }
            }
            for (int x = 0; x < stride; x++) {
                tmp[i * stride + x] = (float) acc[x];
            }
        }
        // Pass 2: the kept output columns.
        float[] out = new float[size * size * 3];
        for (int i = 0; i < size; i++) {
            for (int j = 0; j < size; j++) {
                float[] w = cols.floatWeights[j];
                int first = cols.first[j];
                double r = 0;
                double g = 0;
                double b = 0;
                for (int k = 0; k < w.length; k++) {
                    int at = i * stride + (first + k) * 3;
                    r += (double) w[k] * tmp[at];
                    g += (double) w[k] * tmp[at + 1];
                    b += (double) w[k] * tmp[at + 2];
                }
                int o = (i * size + j) * 3;
                out[o] = (float) r;
                out[o + 1] = (float) g;
                out[o + 2] = (float) b;
            }
        }
        return out;
    }

    /**
     * Step 3: {@code (pixel - 255 * mean) / (255 * std)} per channel, HWC to CHW, in float
     * arithmetic exactly as NumPy does it in float32.
     */
    public float[] normalize(float[] hwc) {
        int pixels = hwc.length / 3;
        float[] chw = new float[hwc.length];
        for (int c = 0; c < 3; c++) {
            float mean = (float) spec.mean[c] * 255.0f;
            float std = (float) spec.std[c] * 255.0f;
            for (int p = 0; p < pixels; p++) {
                chw[c * pixels + p] = (hwc[p * 3 + c] - mean) / std;
            }
        }
        return chw;
    }

    private static float[] crop(RgbImage image, PreprocessSpec.Plan plan) {
        int size = plan.size;
        float[] out = new float[size * size * 3];
        for (int i = 0; i < size; i++) {
            for (int j = 0; j < size; j++) {
                for (int c = 0; c < 3; c++) {
                    out[(i * size + j) * 3 + c] = image.get(plan.left + j, plan.top + i, c);
                }
            }
        }
        return out;
    }
}
