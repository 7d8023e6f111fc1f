package studio.deepfake.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class PreprocessorTest {
    private static final double[] MEAN = {0.485, 0.456, 0.406};
    private static final double[] STD = {0.229, 0.224, 0.225};

    private static PreprocessSpec spec(int size, PreprocessSpec.ResizeMode mode, Integer resize) {
        return new PreprocessSpec(size, mode, resize, MEAN, STD);
    }

    private static RgbImage gradient(int width, int height) {
        byte[] rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int p = (y * width + x) * 3;
                rgb[p] = (byte) (x * 7 + y);
                rgb[p + 1] = (byte) (y * 5);
                rgb[p + 2] = (byte) 200;
            }
        }
        return new RgbImage(width, height, rgb);
    }

    private static void assertPlan(String expected, PreprocessSpec spec, int width, int height) {
        assertEquals(expected, spec.plan(width, height).toString());
    }

    @Test
    public void centreCropOffsetsFloorForOddMargins() {
        // crop mode, 45x33 image, input 32: no scaling; margins 13 and 1 floor to 6 and 0.
        assertPlan("Plan[45x33 crop 32 at top=0 left=6]",
                spec(32, PreprocessSpec.ResizeMode.CROP, null), 45, 33);
        // resize_crop to 37 then 32: a 37x50 (w x h) portrait image is not scaled; top = 18/2 = 9.
        assertPlan("Plan[37x50 crop 32 at top=9 left=2]",
                spec(32, PreprocessSpec.ResizeMode.RESIZE_CROP, 37), 37, 50);
    }

    @Test
    public void scaledSideRoundsHalfToEvenLikePython() {
        // 18x16 -> shorter side 20: the long side is 22.5, which Python's round() makes 22.
        assertPlan("Plan[22x20 crop 20 at top=0 left=1]",
                spec(20, PreprocessSpec.ResizeMode.RESIZE_CROP, null), 18, 16);
        assertEquals(4, PreprocessSpec.roundHalfEven(3.5));
        assertEquals(2, PreprocessSpec.roundHalfEven(2.5));
    }

    @Test
    public void cropModeScalesSmallImagesUpFirst() {
        // A 20x10 image with input 16: shorter side 10 -> 16, long side 32.
        assertPlan("Plan[32x16 crop 16 at top=0 left=8]",
                spec(16, PreprocessSpec.ResizeMode.CROP, null), 20, 10);
    }

    @Test
    public void resizeIgnoresAspect() {
        assertPlan("Plan[24x24 crop 24 at top=0 left=0]",
                spec(24, PreprocessSpec.ResizeMode.RESIZE, null), 300, 17);
    }

    @Test
    public void uniformImageNormalisesToTheSameValueEverywhere() {
        byte[] rgb = new byte[50 * 30 * 3];
        for (int p = 0; p < 50 * 30; p++) {
            rgb[p * 3] = (byte) 255;
            rgb[p * 3 + 1] = (byte) 128;
            rgb[p * 3 + 2] = 0;
        }
        Preprocessor pre = new Preprocessor(spec(16, PreprocessSpec.ResizeMode.RESIZE_CROP, 20));
        float[] x = pre.apply(new RgbImage(50, 30, rgb));
        assertEquals(3 * 16 * 16, x.length);
        double[] expected = {(1 - 0.485) / 0.229, (128 / 255.0 - 0.456) / 0.224, -0.406 / 0.225};
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < 256; p++) {
                assertEquals(expected[c], x[c * 256 + p], 1e-5);
            }
        }
    }

    @Test
    public void plainCropCopiesPixelsIntoChannelPlanes() {
        RgbImage image = gradient(45, 33);
        PreprocessSpec s = spec(32, PreprocessSpec.ResizeMode.CROP, null);
        float[] hwc = new Preprocessor(s).geometry(image);
        // output (row 3, col 5) is input (x 6 + 5, y 0 + 3)
        for (int c = 0; c < 3; c++) {
            assertEquals(image.get(11, 3, c), hwc[(3 * 32 + 5) * 3 + c], 0);
        }
        float[] chw = new Preprocessor(s).normalize(hwc);
        float std = (float) STD[1] * 255f;
        float mean = (float) MEAN[1] * 255f;
        assertEquals((image.get(11, 3, 1) - mean) / std, chw[32 * 32 + 3 * 32 + 5], 0);
    }

    @Test
    public void downscalingAveragesBlocks() {
        // A 2x2 checkerboard of 4x4 blocks halved: each output pixel averages its block's
        // neighbourhood; all outputs stay within the input range and the mean is preserved.
        RgbImage image = gradient(64, 48);
        float[] hwc = new Preprocessor(spec(24, PreprocessSpec.ResizeMode.RESIZE, null)).geometry(image);
        for (float v : hwc) {
            assertTrue(v >= 0f && v <= 255f);
        }
        float[] blue = new float[24 * 24];
        for (int p = 0; p < blue.length; p++) {
            assertEquals(200f, hwc[p * 3 + 2], 1e-3);
        }
    }

    /**
     * The geometry step as it was before it computed bands: both axes' whole resampling
     * matrices ({@link Resample#of}), then the kept window. The band version must equal it.
     */
    private static float[] wholeAxisGeometry(PreprocessSpec spec, RgbImage image) {
        PreprocessSpec.Plan plan = spec.plan(image.width, image.height);
        Resample rows = Resample.of(image.height, plan.scaledHeight);
        Resample cols = Resample.of(image.width, plan.scaledWidth);
        int size = plan.size;
        int stride = image.width * 3;
        float[] tmp = new float[size * stride];
        for (int i = 0; i < size; i++) {
            double[] acc = new double[stride];
            float[] w = rows.floatWeights[plan.top + i];
            for (int k = 0; k < w.length; k++) {
                int base = (rows.first[plan.top + i] + k) * stride;
                for (int x = 0; x < stride; x++) {
                    acc[x] += (w[k] == 0f ? 0.0 : (double) w[k]) * (image.rgb[base + x] & 0xFF);
                }
            }
            for (int x = 0; x < stride; x++) {
                tmp[i * stride + x] = (float) acc[x];
            }
        }
        float[] out = new float[size * size * 3];
        for (int i = 0; i < size; i++) {
            for (int j = 0; j < size; j++) {
                float[] w = cols.floatWeights[plan.left + j];
                for (int c = 0; c < 3; c++) {
                    double sum = 0;
                    for (int k = 0; k < w.length; k++) {
                        sum += (double) w[k] * tmp[i * stride + (cols.first[plan.left + j] + k) * 3 + c];
                    }
                    out[(i * size + j) * 3 + c] = (float) sum;
                }
            }
        }
        return out;
    }

    @Test
    public void keptBandsGiveTheWholeAxisValues() {
        int[][] shapes = {{2000, 1}, {1, 900}, {3, 1500}, {45, 33}, {300, 17}, {17, 300}, {640, 480}};
        for (int[] shape : shapes) {
            RgbImage image = gradient(shape[0], shape[1]);
            for (PreprocessSpec s : new PreprocessSpec[] {
                spec(32, PreprocessSpec.ResizeMode.RESIZE_CROP, 40),
                spec(24, PreprocessSpec.ResizeMode.RESIZE, null),
                spec(16, PreprocessSpec.ResizeMode.CROP, null)}) {
                assertArrayEquals(shape[0] + "x" + shape[1] + " " + s.resizeMode,
                        wholeAxisGeometry(s, image), new Preprocessor(s).geometry(image), 0f);
            }
        }
    }

    @Test
    public void aThinStripCostsOnlyTheKeptBand() {
        // 20000x1 with a 64 px resize_crop is scaled to 1280000x64 and cropped to 64x64: the
        // weights of all 1.28 M columns took ~120 MB (OutOfMemoryError at -Xmx256m). Now the
        // only large buffer is the 64 x 20000 x 3 row pass (15 MB), as in Python's _resize.
        RgbImage strip = gradient(20000, 1);
        Preprocessor pre = new Preprocessor(spec(64, PreprocessSpec.ResizeMode.RESIZE_CROP, null));
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long before = threads.getCurrentThreadAllocatedBytes();
        float[] hwc = pre.geometry(strip);
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertTrue("the geometry of a 20000x1 strip allocated " + (allocated >> 20) + " MiB",
                allocated < 24L << 20);
        assertEquals(64 * 64 * 3, hwc.length);
        // One input row: every output row is the same, and blue (200 everywhere) stays 200.
        for (int i = 0; i < 64; i++) {
            for (int x = 0; x < 64 * 3; x++) {
                assertEquals(hwc[x], hwc[i * 64 * 3 + x], 0f);
            }
            assertEquals(200f, hwc[i * 64 * 3 + 2], 1e-4f);
        }
    }

    @Test
    public void invalidSpecsAreRefusedWithAReason() {
        BundleException e = assertThrows(BundleException.class,
                () -> spec(32, PreprocessSpec.ResizeMode.RESIZE_CROP, 16));
        assertTrue(e.getMessage().contains("smaller than input_size"));
        assertThrows(BundleException.class, () -> spec(4, PreprocessSpec.ResizeMode.RESIZE, null));
        e = assertThrows(BundleException.class, () -> PreprocessSpec.fromJson(
                Json.parseObject("{\"input_size\": 32, \"resize_mode\": \"zoom\", \"mean\": [0,0,0],"
                        + " \"std\": [1,1,1]}", "test")));
        assertTrue(e.getMessage().contains("resize_mode"));
        e = assertThrows(BundleException.class, () -> PreprocessSpec.fromJson(
                Json.parseObject("{\"input_size\": 32, \"resize_mode\": \"resize\", \"mean\": [0,0,0],"
                        + " \"std\": [1,1,1], \"interpolation\": \"bicubic\"}", "test")));
        assertTrue(e.getMessage().contains("triangle"));
    }

    @Test
    public void exifOrientationsMatchPillow() {
        // A 3x2 image whose red channel is 0, 30, 60 / 90, 120, 150; expected rows from
        // core.preprocess.load_image of the same image saved with each EXIF orientation.
        byte[] rgb = new byte[18];
        for (int p = 0; p < 6; p++) {
            rgb[p * 3] = (byte) (p * 30);
        }
        RgbImage image = new RgbImage(3, 2, rgb);
        int[][] expected = {
            {0, 30, 60, 90, 120, 150}, {0, 30, 60, 90, 120, 150}, {60, 30, 0, 150, 120, 90},
            {150, 120, 90, 60, 30, 0}, {90, 120, 150, 0, 30, 60}, {0, 90, 30, 120, 60, 150},
            {90, 0, 120, 30, 150, 60}, {150, 60, 120, 30, 90, 0}, {60, 150, 30, 120, 0, 90}};
        for (int orientation = 0; orientation <= 8; orientation++) {
            RgbImage out = image.oriented(orientation);
            assertEquals(orientation >= 5 ? 2 : 3, out.width);
            int[] red = new int[6];
            for (int p = 0; p < 6; p++) {
                red[p] = out.get(p % out.width, p / out.width, 0);
            }
            assertArrayEquals("orientation " + orientation, expected[orientation], red);
        }
    }

    @Test
    public void alphaIsCompositedOnWhiteLikePillow() {
        // Values from Pillow: Image.new("RGBA", (1, 1), (v, v, v, a)) through core.preprocess.to_rgb.
        int[][] cases = {{0, 128, 127}, {200, 1, 255}, {10, 254, 11}, {100, 127, 178}, {37, 200, 84},
            {99, 255, 99}, {99, 0, 255}};
        for (int[] c : cases) {
            assertEquals("value " + c[0] + " alpha " + c[1], c[2], RgbImage.compositeOnWhite(c[0], c[1]));
        }
        RgbImage image = RgbImage.fromArgb(new int[] {0x80102030}, 1, 1);
        assertEquals(RgbImage.compositeOnWhite(0x10, 0x80), image.get(0, 0, 0));
        assertEquals(RgbImage.compositeOnWhite(0x30, 0x80), image.get(0, 0, 2));
    }
}
