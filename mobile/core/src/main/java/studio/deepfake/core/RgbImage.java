package studio.deepfake.core;

/**
 * A decoded 8-bit RGB image, row-major, 3 interleaved bytes per pixel (Python's {@code HxWx3}
 * uint8 array). Build it from Android's {@code Bitmap.getPixels} or Java's {@code
 * BufferedImage.getRGB} ARGB integers with {@link #fromArgb}.
 */
public final class RgbImage {
    public final int width;
    public final int height;
    /** {@code rgb[(y * width + x) * 3 + c]}, unsigned. */
    public final byte[] rgb;

    public RgbImage(int width, int height, byte[] rgb) {
        if (width <= 0 || height <= 0) {
            throw new BundleException("image has no pixels (" + width + "x" + height + ")");
        }
        if (rgb.length != width * height * 3) {
            throw new IllegalArgumentException("expected " + width * height * 3 + " bytes, got "
                    + rgb.length);
        }
        this.width = width;
        this.height = height;
        this.rgb = rgb;
    }

    /**
     * Non-premultiplied ARGB pixels to RGB, compositing any transparency on white exactly as
     * Pillow's {@code alpha_composite} does in {@code core.preprocess.to_rgb}.
     */
    public static RgbImage fromArgb(int[] argb, int width, int height) {
        if (argb.length != width * height) {
            throw new IllegalArgumentException("expected " + width * height + " pixels, got "
                    + argb.length);
        }
        byte[] out = new byte[width * height * 3];
        for (int p = 0; p < argb.length; p++) {
            int pixel = argb[p];
            int alpha = pixel >>> 24;
            for (int c = 0; c < 3; c++) {
                int value = (pixel >> (16 - 8 * c)) & 0xFF;
                out[p * 3 + c] = (byte) compositeOnWhite(value, alpha);
            }
        }
        return new RgbImage(width, height, out);
    }

    /** One channel of Pillow's {@code ImagingAlphaComposite} with an opaque white background. */
    static int compositeOnWhite(int value, int alpha) {
        if (alpha == 255) {
            return value;
        }
        if (alpha == 0) {
            return 255;
        }
        final int precisionBits = 7;
        long outA255 = alpha * 255L + 255L * (255 - alpha);
        long coef1 = alpha * 255L * 255L * (1L << precisionBits) / outA255;
        long coef2 = 255L * (1L << precisionBits) - coef1;
        long tmp = value * coef1 + 255L * coef2 + (0x80L << precisionBits);
        return (int) ((((tmp >> 8) + tmp) >> 8) >> precisionBits);
    }

    /**
     * This image with an EXIF orientation (1..8) undone, pixel for pixel as Pillow's {@code
     * ImageOps.exif_transpose} in {@code core.preprocess.to_rgb}: 2 mirror, 3 rotate 180, 4 flip,
     * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise. Other
     * values (1, 0 for "missing", unknown ones) return this image.
     */
    public RgbImage oriented(int orientation) {
        if (orientation < 2 || orientation > 8) {
            return this;
        }
        boolean swap = orientation >= 5;
        int outW = swap ? height : width;
        int outH = swap ? width : height;
        byte[] out = new byte[rgb.length];
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < outW; x++) {
                int sx;
                int sy;
                switch (orientation) {
                    case 2: sx = width - 1 - x; sy = y; break;
                    case 3: sx = width - 1 - x; sy = height - 1 - y; break;
                    case 4: sx = x; sy = height - 1 - y; break;
                    case 5: sx = y; sy = x; break;
                    case 6: sx = y; sy = height - 1 - x; break;
                    case 7: sx = width - 1 - y; sy = height - 1 - x; break;
                    default: sx = width - 1 - y; sy = x; break; // 8
                }
                System.arraycopy(rgb, (sy * width + sx) * 3, out, (y * outW + x) * 3, 3);
            }
        }
        return new RgbImage(outW, outH, out);
    }

    /** The unsigned value of channel {@code c} at ({@code x}, {@code y}). */
    public int get(int x, int y, int c) {
        return rgb[(y * width + x) * 3 + c] & 0xFF;
    }
}
