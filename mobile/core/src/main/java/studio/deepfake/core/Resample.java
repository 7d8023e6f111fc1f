package studio.deepfake.core;

/**
 * The antialiased triangle-filter resampling matrix of {@code core/preprocess.py}'s
 * {@code resample_matrix}, stored sparsely (each output pixel only reads a window of inputs).
 *
 * <p>Output pixel {@code i} has centre {@code c = (i + 0.5) * in/out}; the support is {@code
 * s = max(in/out, 1)}; input pixel {@code j} gets weight {@code max(0, 1 - |j + 0.5 - c| / s)};
 * each row is divided by its sum. Weights are computed in double and used as float, as in Python.
 */
public final class Resample {
    public final int inSize;
    public final int outSize;
    /** The first output pixel held: row {@code k} of the arrays is output pixel {@code start + k}. */
    public final int start;
    /** {@code first[k]}: the first input pixel output pixel {@code start + k} reads. */
    final int[] first;
    /** {@code weights[k][t]}: the normalised weight of input {@code first[k] + t}. */
    final double[][] weights;
    /** {@link #weights} rounded to float, the precision the Python port multiplies in. */
    final float[][] floatWeights;

    private Resample(int inSize, int outSize, int start, int stop) {
        if (inSize <= 0 || outSize <= 0) {
            throw new IllegalArgumentException("sizes must be positive: " + inSize + " -> " + outSize);
        }
        if (start < 0 || stop > outSize || start > stop) {
            throw new IllegalArgumentException("band " + start + ":" + stop + " is not inside 0:"
                    + outSize);
        }
        this.inSize = inSize;
        this.outSize = outSize;
        this.start = start;
        int rows = stop - start;
        first = new int[rows];
        weights = new double[rows][];
        floatWeights = new float[rows][];
        double scale = (double) inSize / outSize;
        double support = Math.max(scale, 1.0);
        for (int k = 0; k < rows; k++) {
            double centre = (start + k + 0.5) * scale;
            int lo = Math.max(0, (int) Math.floor(centre - support - 0.5));
            int hi = Math.min(inSize - 1, (int) Math.ceil(centre + support - 0.5));
            double[] row = new double[hi - lo + 1];
            double sum = 0;
            for (int j = lo; j <= hi; j++) {
                double w = Math.max(0.0, 1.0 - Math.abs(j + 0.5 - centre) / support);
                row[j - lo] = w;
                sum += w;
            }
            float[] floats = new float[row.length];
            for (int t = 0; t < row.length; t++) {
                row[t] /= sum;
                floats[t] = (float) row[t];
            }
            first[k] = lo;
            weights[k] = row;
            floatWeights[k] = floats;
        }
    }

    /** The {@code outSize x inSize} resampling of one axis. */
    public static Resample of(int inSize, int outSize) {
        return new Resample(inSize, outSize, 0, outSize);
    }

    /**
     * Output pixels {@code start .. stop - 1} of {@link #of}{@code (inSize, outSize)}, with the same
     * weights, and nothing else (Python's {@code resample_band}): a crop of a hugely scaled axis,
     * such as a 20000x1 strip scaled to 1280000x64, costs only the pixels it keeps.
     */
    public static Resample band(int inSize, int outSize, int start, int stop) {
        return new Resample(inSize, outSize, start, stop);
    }

    /** Output pixel {@code i}'s weights as a dense array of {@code inSize} (tests, inspection). */
    public double[] denseRow(int i) {
        double[] row = new double[inSize];
        System.arraycopy(weights[i - start], 0, row, first[i - start], weights[i - start].length);
        return row;
    }
}
