package studio.deepfake.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

public class HeatmapTest {
    @Test
    public void picksTheClassChannelAndScalesToUnitRange() {
        // [1, 2, 2, 2]: class 1 holds 10, 20, 30, 50.
        float[] cam = {9, 9, 9, 9, 10, 20, 30, 50};
        Heatmap map = Heatmap.of(cam, new long[] {1, 2, 2, 2}, 1);
        assertEquals(2, map.width);
        assertEquals(0f, map.values[0], 0);
        assertEquals(0.25f, map.values[1], 1e-7);
        assertEquals(1f, map.values[3], 0);
        // A flat channel gives zeros, not NaN.
        assertEquals(0f, Heatmap.of(cam, new long[] {1, 2, 2, 2}, 0).values[2], 0);
    }

    @Test
    public void resizeKeepsTheRangeAndCorners() {
        Heatmap map = Heatmap.of(new float[] {0, 1, 2, 3}, new long[] {1, 1, 2, 2}, 0).resize(8, 8);
        assertEquals(64, map.values.length);
        assertEquals(0f, map.values[0], 1e-6);
        assertEquals(1f, map.values[63], 1e-6);
        int[] argb = map.toArgb(128);
        assertEquals(128, argb[0] >>> 24);
        assertEquals(0x0000FF, Heatmap.colour(0.25f) & 0x0000FF);
        assertEquals(255, Heatmap.colour(0.75f) >> 16);
        assertEquals(128, Heatmap.colour(1f) >> 16);
    }

    @Test
    public void wrongShapesAreRefused() {
        assertThrows(BundleException.class, () -> Heatmap.of(new float[4], new long[] {2, 2}, 0));
        assertThrows(BundleException.class, () -> Heatmap.of(new float[4], new long[] {1, 1, 2, 2}, 1));
    }
}
