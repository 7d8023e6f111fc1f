package studio.deepfake.core;

import java.util.Locale;

/**
 * Step 0 of the decision rule (docs/bundle-format.md), the port of {@code core/content.py}: an
 * image whose shorter side is below {@link #MIN_SIDE} pixels, or whose luma standard deviation is
 * below {@link #MIN_LUMA_STD}, is unknown whatever the model says. The luma is Pillow's integer
 * ITU-R 601 {@code L}, sampled every {@link #sampleStride} pixels; the sums are exact integers, so
 * the value equals Python's bit for bit.
 */
public final class ContentCheck {
    /** Shorter side, in pixels, below which an image is too small to judge (CIFAKE's are 32). */
    public static final int MIN_SIDE = 16;
    /** Luma standard deviation (0-255 scale) below which an image is almost uniform. */
    public static final double MIN_LUMA_STD = 2.0;
    /** At most this many sampled pixels per side when measuring the luma. */
    public static final int SAMPLE_SIDE = 512;

    private ContentCheck() {}

    /** Step between sampled rows and columns: {@code ceil(max(height, width) / SAMPLE_SIDE)}. */
    public static int sampleStride(int height, int width) {
        return Math.max(1, (Math.max(height, width) + SAMPLE_SIDE - 1) / SAMPLE_SIDE);
    }

    /** Population standard deviation of the image's luma (0-255 scale), as Python's. */
    public static double lumaStd(RgbImage image) {
        int stride = sampleStride(image.height, image.width);
        long n = 0;
        long total = 0;
        long squares = 0;
        for (int y = 0; y < image.height; y += stride) {
            for (int x = 0; x < image.width; x += stride) {
                long luma = luma(image.get(x, y, 0), image.get(x, y, 1), image.get(x, y, 2));
                n++;
                total += luma;
                squares += luma * luma;
            }
        }
        return Math.sqrt((double) (n * squares - total * total) / (double) (n * n));
    }

    /** Pillow's {@code L} of one pixel: {@code (19595 R + 38470 G + 7471 B + 0x8000) >> 16}. */
    static int luma(int r, int g, int b) {
        return (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16;
    }

    /** Why the rule cannot judge this image (the explanation sentence), or null. */
    public static String problem(RgbImage image) {
        if (Math.min(image.width, image.height) < MIN_SIDE) {
            return String.format(Locale.ROOT,
                    "Unknown: %d\u00d7%d pixels is too small to judge (at least %d px per side)",
                    image.width, image.height, MIN_SIDE);
        }
        if (lumaStd(image) < MIN_LUMA_STD) {
            return "Unknown: the image is almost uniform (no detail to judge)";
        }
        return null;
    }
}
