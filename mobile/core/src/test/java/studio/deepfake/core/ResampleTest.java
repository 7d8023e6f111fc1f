package studio.deepfake.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

public class ResampleTest {
    private static final double EPS = 1e-12;

    @Test
    public void rowsSumToOneForManySizePairs() {
        int[] sizes = {1, 2, 3, 5, 7, 8, 31, 32, 33, 64, 100, 257, 1000};
        for (int in : sizes) {
            for (int out : sizes) {
                Resample r = Resample.of(in, out);
                for (int i = 0; i < out; i++) {
                    double sum = 0;
                    for (double w : r.denseRow(i)) {
                        sum += w;
                    }
                    assertEquals(in + "->" + out + " row " + i, 1.0, sum, EPS);
                }
            }
        }
    }

    @Test
    public void halvingAveragesNeighboursWithTriangleWeights() {
        // scale 2, support 2: centre 1.0 sees pixels at 0.5, 1.5, 2.5 with 0.75, 0.75, 0.25.
        Resample r = Resample.of(4, 2);
        assertArrayEquals(new double[] {3 / 7.0, 3 / 7.0, 1 / 7.0, 0}, r.denseRow(0), EPS);
        assertArrayEquals(new double[] {0, 1 / 7.0, 3 / 7.0, 3 / 7.0}, r.denseRow(1), EPS);
    }

    @Test
    public void doublingInterpolatesLinearly() {
        Resample r = Resample.of(2, 4);
        assertArrayEquals(new double[] {1, 0}, r.denseRow(0), EPS);
        assertArrayEquals(new double[] {0.75, 0.25}, r.denseRow(1), EPS);
        assertArrayEquals(new double[] {0.25, 0.75}, r.denseRow(2), EPS);
        assertArrayEquals(new double[] {0, 1}, r.denseRow(3), EPS);
    }

    @Test
    public void nonIntegerScaleMatchesPython() {
        // resample_matrix(5, 3) row 0: weights 0.8, 0.6 (and 0 for the pixel at the support's edge).
        Resample r = Resample.of(5, 3);
        assertArrayEquals(new double[] {4 / 7.0, 3 / 7.0, 0, 0, 0}, r.denseRow(0), EPS);
        assertArrayEquals(new double[] {0, 2 / 9.0, 5 / 9.0, 2 / 9.0, 0}, r.denseRow(1), EPS);
    }

    @Test
    public void aBandHoldsExactlyTheRowsOfTheWholeAxis() {
        int[][] cases = {{5, 3, 1, 3}, {1, 64, 0, 64}, {20, 1280, 600, 664}, {1000, 37, 0, 37},
            {33, 33, 10, 20}, {7, 5000, 4999, 5000}, {9, 4, 2, 2}};
        for (int[] c : cases) {
            Resample whole = Resample.of(c[0], c[1]);
            Resample band = Resample.band(c[0], c[1], c[2], c[3]);
            assertEquals(c[3] - c[2], band.first.length);
            for (int i = c[2]; i < c[3]; i++) {
                assertArrayEquals(c[0] + "->" + c[1] + " row " + i, whole.denseRow(i), band.denseRow(i), 0);
                assertArrayEquals(whole.floatWeights[i], band.floatWeights[i - c[2]], 0f);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Resample.band(5, 3, 2, 4));
        assertThrows(IllegalArgumentException.class, () -> Resample.band(5, 3, -1, 1));
    }

    @Test
    public void sameSizeIsIdentity() {
        Resample r = Resample.of(7, 7);
        for (int i = 0; i < 7; i++) {
            double[] expected = new double[7];
            expected[i] = 1;
            assertArrayEquals(expected, r.denseRow(i), 0);
        }
    }
}
