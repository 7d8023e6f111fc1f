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
    /** {@code first[i]}: the first input pixel output pixel {@code i} reads. */
    final int[] first;
    /** {@code weights[i][k]}: the normalised weight of input {@code first[i] + k}. */
    final double[][] weights;
    /** {@link #weights} rounded to float, the precision the Python port multiplies in. */
    final float[][] floatWeights;

    private Resample(int inSize, int outSize) {
        if (inSize <= 0 || outSize <= 0) {
            throw new IllegalArgumentException("sizes must be positive: " + inSize + " -> " + outSize);
        }
        this.inSize = inSize;
        this.outSize = outSize;
        first = new int[outSize];
        weights = new double[outSize][];
        floatWeights = new float[outSize][];
        double scale = (double) inSize / outSize;
        double support = Math.max(scale, 1.0);
        for (int i = 0; i < outSize; i++) {
            double centre = (i + 0.5) * scale;
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
            for (int k = 0; k < row.length; k++) {
                row[k] /= sum;
                floats[k] = (float) row[k];
            }
            first[i] = lo;
            weights[i] = row;
            floatWeights[i] = floats;
        }
    }

    /** The {@code outSize x inSize} resampling of one axis. */
    public static Resample of(int inSize, int outSize) {
        return new Resample(inSize, outSize);
    }

    /** Row {@code i} as a dense array of {@code inSize} weights (for tests and inspection). */
    public double[] denseRow(int i) {
        double[] row = new double[inSize];
        System.arraycopy(weights[i], 0, row, first[i], weights[i].length);
        return row;
    }
}
