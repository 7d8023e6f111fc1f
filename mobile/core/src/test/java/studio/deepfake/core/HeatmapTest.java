package studio.deepfake.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

public class HeatmapTest {
    @Test
    public void classMapSubtractsTheMeanOfTheOtherClasses() {
        // [1, 3, 1, 2]: class 1 minus the mean of classes 0 and 2 at each of the 2 locations.
        float[] cam = {1, 3, 4, 8, 3, 1};
        assertArrayEquals(new double[] {2, 6}, Heatmap.classMap(cam, 3, 2, 1), 1e-12);
        assertArrayEquals(new double[] {1, 3}, Heatmap.classMap(new float[] {1, 3}, 1, 2, 0), 0);
    }

    @Test
    public void upsampledMapIsScaledToUnitRange() {
        // Two classes, 2x2: class 0 margin is 0, 2, 4, 6 (a ramp), upsampled to 4x4.
        float[] cam = {0, 1, 2, 3, 0, -1, -2, -3};
        Heatmap map = Heatmap.of(cam, new long[] {1, 2, 2, 2}, 0, 4, 4);
        assertEquals(16, map.values.length);
        assertEquals(0f, map.values[0], 0);
        assertEquals(1f, map.values[15], 0);
        // Row 1 of a 2 -> 4 upsampling is 0.75 * row 0 + 0.25 * row 1: margins 0 -> 4 over 0..6.
        assertEquals((0.75 * 0 + 0.25 * 4) / 6, map.values[4], 1e-6);
        // The other class's map is the mirror image.
        assertEquals(1f, Heatmap.of(cam, new long[] {1, 2, 2, 2}, 1, 4, 4).values[0], 0);
    }

    @Test
    public void flatMapGivesZerosAndColoursFollowPython() {
        Heatmap flat = Heatmap.of(new float[] {5, 5, 5, 5}, new long[] {1, 1, 2, 2}, 0, 3, 3);
        assertArrayEquals(new float[9], flat.values, 0);
        assertEquals(128, flat.toArgb(128)[0] >>> 24);
        // core.explain.colormap: 0 -> (0, 0, 128), 0.5 -> (128, 255, 128), 1 -> (128, 0, 0)
        assertEquals(0x000080, Heatmap.colour(0f));
        assertEquals(0x80FF80, Heatmap.colour(0.5f));
        assertEquals(0x800000, Heatmap.colour(1f));
    }

    @Test
    public void overlayBlendsLikePython() {
        // core.explain.overlay([[(10, 200, 30), (255, 255, 255)]], heat [[0, 0.8]], 0.5)
        // gives (10, 200, 30) and (255, 183, 153). Heat 0.8 is a 1x2 map scaled from 0 .. 1.25.
        Heatmap map = Heatmap.of(new float[] {0f, 1f}, new long[] {1, 1, 1, 2}, 0, 2, 1);
        map.values[1] = 0.8f;
        int[] argb = map.overlay(new float[] {10, 200, 30, 255, 255, 255}, 0.5f);
        assertEquals(0xFF0AC81E, argb[0]);
        assertEquals(0xFFFFB799, argb[1]);
    }

    @Test
    public void wrongShapesAreRefused() {
        assertThrows(BundleException.class, () -> Heatmap.of(new float[4], new long[] {2, 2}, 0, 4, 4));
        assertThrows(BundleException.class,
                () -> Heatmap.of(new float[4], new long[] {1, 1, 2, 2}, 1, 4, 4));
    }
}
