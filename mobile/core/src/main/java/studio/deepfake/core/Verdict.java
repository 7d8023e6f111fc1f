package studio.deepfake.core;

import java.util.Locale;

/** What the decision rule says about one image. */
public final class Verdict {
    /** The three answers a runtime can give. */
    public enum Kind {
        REAL("real"),
        FAKE("fake"),
        UNKNOWN("unknown");

        public final String jsonName;

        Kind(String jsonName) {
            this.jsonName = jsonName;
        }
    }

    public final Kind kind;
    /** {@code class_names[argmax(probs)]}: the real class or the generator (the top guess). */
    public final String label;
    /** Index of {@link #label} in the bundle's class names. */
    public final int labelIndex;
    /** {@code max(probs)}, reported in every case. */
    public final double confidence;
    /** The calibrated score compared with the threshold. */
    public final double score;
    public final double threshold;
    /** {@code score - threshold}: how far the score clears (or misses) the threshold. */
    public final double margin;
    /** The temperature-scaled softmax over the classes. */
    public final double[] probs;
    /** One or two sentences for the user. */
    public final String explanation;

    Verdict(Kind kind, String label, int labelIndex, double[] probs, double score,
            Calibration calibration) {
        this.kind = kind;
        this.label = label;
        this.labelIndex = labelIndex;
        this.probs = probs;
        this.confidence = probs[labelIndex];
        this.score = score;
        this.threshold = calibration.threshold;
        this.margin = score - calibration.threshold;
        this.explanation = explain(calibration);
    }

    /** The headline: "real", "fake (sdxl)" or "unknown". */
    public String headline() {
        return kind == Kind.FAKE ? "fake (" + label + ")" : kind.jsonName;
    }

    private String explain(Calibration calibration) {
        String goal = Double.isNaN(calibration.targetRisk) ? ""
                : String.format(Locale.ROOT, " (chosen for at most %.0f%% errors on accepted images)",
                        100 * calibration.targetRisk);
        String scoreText = String.format(Locale.ROOT, "%s score %.3f is %.3f %s the threshold %.3f%s.",
                calibration.score.jsonName, score, Math.abs(margin), margin >= 0 ? "above" : "below",
                threshold, goal);
        String confidenceText = String.format(Locale.ROOT, "%.1f%%", 100 * confidence);
        switch (kind) {
            case REAL:
                return "Looks like a real photo (" + confidenceText + "). " + scoreText;
            case FAKE:
                return "Looks AI-generated, most likely by " + label + " (" + confidenceText + "). "
                        + scoreText;
            default:
                return "Not sure: the model abstains (top guess " + label + ", " + confidenceText
                        + "). The " + scoreText;
        }
    }
}
