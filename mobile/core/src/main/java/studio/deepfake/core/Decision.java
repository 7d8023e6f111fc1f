package studio.deepfake.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The decision rule of docs/bundle-format.md, which every runtime implements exactly: {@code
 * probs = softmax(logits / T)}; score is {@code max(probs)} or {@code logsumexp(logits / T)};
 * below the threshold (or, with an energy floor, an energy below it) the verdict is unknown,
 * otherwise real or fake by the top class.
 */
public final class Decision {
    private final List<String> classNames;
    private final String realClass;
    private final Calibration calibration;

    public Decision(List<String> classNames, String realClass, Calibration calibration) {
        if (classNames.size() < 2) {
            throw new BundleException("a bundle needs at least 2 classes, not " + classNames.size());
        }
        if (!classNames.contains(realClass)) {
            throw new BundleException("real_class \"" + realClass + "\" is not one of " + classNames);
        }
        this.classNames = Collections.unmodifiableList(new ArrayList<>(classNames));
        this.realClass = realClass;
        this.calibration = calibration;
    }

    /** The rule configured by a bundle's metadata. */
    public static Decision of(BundleMeta meta) {
        return new Decision(meta.classNames, meta.realClass, meta.calibration);
    }

    /**
     * The whole rule on one image: step 0 ({@link ContentCheck}) on the decoded image, then the
     * model's logits; an image too small or uniform to judge is unknown with the model's guess.
     */
    public Verdict decide(RgbImage image, float[] logits) {
        return decide(logits).overruled(ContentCheck.problem(image));
    }

    /** Applies the rule's steps 1-5 to one image's logits. */
    public Verdict decide(float[] logits) {
        if (logits.length != classNames.size()) {
            throw new BundleException("the model gave " + logits.length + " logits for "
                    + classNames.size() + " classes");
        }
        double[] z = new double[logits.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = logits[i] / calibration.temperature;
        }
        double[] probs = softmax(z);
        int top = argmax(probs);
        double energy = logSumExp(z);
        double score = calibration.score == Calibration.Score.ENERGY ? energy : probs[top];
        String label = classNames.get(top);
        boolean unfamiliar = calibration.hasEnergyFloor() && energy < calibration.energyFloor;
        Verdict.Kind kind;
        if (score < calibration.threshold || unfamiliar) {
            kind = Verdict.Kind.UNKNOWN;
        } else {
            kind = label.equals(realClass) ? Verdict.Kind.REAL : Verdict.Kind.FAKE;
        }
        return new Verdict(kind, label, top, probs, score, calibration,
                unfamiliar ? energy : Double.NaN);
    }

    /** Numerically stable softmax. */
    public static double[] softmax(double[] z) {
        double max = max(z);
        double[] out = new double[z.length];
        double sum = 0;
        for (int i = 0; i < z.length; i++) {
            out[i] = Math.exp(z[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < z.length; i++) {
            out[i] /= sum;
        }
        return out;
    }

    /** {@code log(sum(exp(z)))} without overflow: the negative energy at temperature 1. */
    public static double logSumExp(double[] z) {
        double max = max(z);
        double sum = 0;
        for (double v : z) {
            sum += Math.exp(v - max);
        }
        return max + Math.log(sum);
    }

    /** Index of the largest value; the first one on ties (NumPy's argmax). */
    public static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double max(double[] values) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : values) {
            max = Math.max(max, v);
        }
        return max;
    }
}
