package studio.deepfake.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * Proves that a runtime reproduces a bundle's golden vectors: this port's preprocessing of each
 * golden PNG against {@code *.input.bin}, the runtime's logits on the stored input against the
 * golden logits, and the decision rule against the stored probabilities, score and verdict.
 * The Android app runs it on every bundle it loads; the JVM tests run it with the stored logits.
 */
public final class GoldenCheck {
    /** Decodes a golden PNG (lossless RGB) to an image. */
    public interface ImageReader {
        RgbImage read(File png) throws IOException;
    }

    /** The runtime under test: logits of one stored input tensor ({@code vector.shape}). */
    public interface Model {
        float[] logits(GoldenVectors.Vector vector, float[] input) throws Exception;
    }

    /** The largest differences found, and what did not match. */
    public static final class Result {
        public final int vectors;
        public final double maxInputDiff;
        public final double maxLogitsDiff;
        public final double maxProbsDiff;
        public final double maxScoreDiff;
        public final int verdictsEqual;
        /** Every golden image preprocessed by this runtime within the input tolerance. */
        public final boolean inputsMatch;
        public final List<String> failures;

        Result(int vectors, double[] diffs, int verdictsEqual, boolean inputsMatch,
                List<String> failures) {
            this.vectors = vectors;
            this.inputsMatch = inputsMatch;
            this.maxInputDiff = diffs[0];
            this.maxLogitsDiff = diffs[1];
            this.maxProbsDiff = diffs[2];
            this.maxScoreDiff = diffs[3];
            this.verdictsEqual = verdictsEqual;
            this.failures = Collections.unmodifiableList(failures);
        }

        public boolean ok() {
            return failures.isEmpty();
        }

        /**
         * Whether this runtime decides as the exporter did: every golden image preprocessed
         * within tolerance and every verdict and label the same. Only the model's numbers may
         * have drifted beyond the logits tolerance (an INT8 model's kernels differ between
         * processors), which {@link #ok()} reports and a user of the verdicts can live with.
         */
        public boolean decisionsAgree() {
            return inputsMatch && verdictsEqual == vectors;
        }

        /** One line, e.g. "golden vectors OK: 6, max |diff| input 6.0e-07, logits 0.0e+00 ...". */
        public String summary() {
            return String.format(Locale.ROOT,
                    "golden vectors %s: %d, max |diff| input %.1e, logits %.1e, probs %.1e",
                    ok() ? "OK" : "MISMATCH", vectors, maxInputDiff, maxLogitsDiff, maxProbsDiff);
        }
    }

    private GoldenCheck() {
    }

    /** Checks every golden vector of the bundle in {@code dir}. */
    public static Result run(File dir, BundleMeta meta, ImageReader images, Model model)
            throws Exception {
        if (meta.golden == null) {
            throw new BundleException("the bundle has no golden vectors to check");
        }
        File goldenFile = new File(dir, meta.golden);
        File folder = goldenFile.getParentFile();
        GoldenVectors golden = GoldenVectors.read(goldenFile);
        Preprocessor pre = new Preprocessor(meta.preprocess);
        Decision decision = Decision.of(meta);
        GoldenVectors.Tolerance tol = golden.tolerance;
        double[] worst = new double[4];
        int verdicts = 0;
        List<String> failures = new ArrayList<>();
        for (GoldenVectors.Vector v : golden.vectors) {
            float[] stored = GoldenVectors.readInput(folder, v);
            float[] mine = pre.apply(images.read(new File(folder, v.image)));
            double inputDiff = maxAbsDiff(mine, stored);
            float[] logits = model.logits(v, stored);
            double logitDiff = maxAbsDiff(logits, v.logits);
            Verdict verdict = decision.decide(logits);
            double probDiff = 0;
            for (int i = 0; i < v.probs.length && i < verdict.probs.length; i++) {
                probDiff = Math.max(probDiff, Math.abs(verdict.probs[i] - v.probs[i]));
            }
            double scoreDiff = Math.abs(verdict.score - v.score);
            worst[0] = Math.max(worst[0], inputDiff);
            worst[1] = Math.max(worst[1], logitDiff);
            worst[2] = Math.max(worst[2], probDiff);
            worst[3] = Math.max(worst[3], scoreDiff);
            expect(failures, v.name, "input", inputDiff, tol.input);
            expect(failures, v.name, "logits", logitDiff, tol.logits);
            expect(failures, v.name, "probs", probDiff, tol.probs);
            expect(failures, v.name, "score", scoreDiff, tol.probs);
            boolean same = verdict.kind.jsonName.equals(v.verdict)
                    && (v.label == null || v.label.equals(verdict.label));
            if (same) {
                verdicts++;
            } else {
                failures.add(v.name + ": verdict " + verdict.kind.jsonName + "/" + verdict.label
                        + ", golden " + v.verdict + "/" + v.label);
            }
        }
        return new Result(golden.vectors.size(), worst, verdicts, worst[0] <= tol.input,
                failures);
    }

    private static void expect(List<String> failures, String name, String what, double diff,
            double tolerance) {
        if (!(diff <= tolerance)) {
            failures.add(name + ": " + what + " differs by " + diff + " > " + tolerance);
        }
    }

    /** Largest absolute difference; infinite when the lengths differ. */
    static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            return Double.POSITIVE_INFINITY;
        }
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs((double) a[i] - b[i]));
        }
        return worst;
    }
}
