package studio.deepfake.core;

import java.math.BigDecimal;
import java.math.RoundingMode;

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
    /**
     * Why the rule's step 0 ({@link ContentCheck}) made this verdict unknown before the model's
     * score was looked at (too small, almost uniform), or {@code null} when the score decided.
     * A UI shows this instead of a confidence: the model's numbers are only its unused guess.
     */
    public final String problem;

    /**
     * @param belowFloor the energy score of an image rejected by the calibration's energy floor
     *     (NaN otherwise)
     */
    Verdict(Kind kind, String label, int labelIndex, double[] probs, double score,
            Calibration calibration, double belowFloor) {
        this.kind = kind;
        this.label = label;
        this.labelIndex = labelIndex;
        this.probs = probs;
        this.confidence = probs[labelIndex];
        this.score = score;
        this.threshold = calibration.threshold;
        this.margin = score - calibration.threshold;
        this.explanation = Double.isNaN(belowFloor) ? explain(calibration)
                : explainUnfamiliar(calibration, belowFloor);
        this.problem = null;
    }

    private Verdict(Verdict model, String problem) {
        this.kind = Kind.UNKNOWN;
        this.label = model.label;
        this.labelIndex = model.labelIndex;
        this.probs = model.probs;
        this.confidence = model.confidence;
        this.score = model.score;
        this.threshold = model.threshold;
        this.margin = model.margin;
        this.explanation = problem;
        this.problem = problem;
    }

    /**
     * This verdict made unknown by the rule's step 0 ({@link ContentCheck#problem}), with the
     * problem as its explanation and the model's guess, probabilities and score kept; this
     * verdict itself when {@code problem} is null.
     */
    public Verdict overruled(String problem) {
        return problem == null ? this : new Verdict(this, problem);
    }

    /** The headline: "real", "fake (sdxl)" or "unknown". */
    public String headline() {
        return kind == Kind.FAKE ? "fake (" + label + ")" : kind.jsonName;
    }

    /** The same sentence as {@code core.verdict.explain_verdict}. */
    private String explain(Calibration calibration) {
        String word = calibration.score == Calibration.Score.ENERGY ? "familiarity score" : "confidence";
        int digits = tellingDigits(score, threshold);
        String goal = "";
        if (!Double.isNaN(calibration.targetRisk)) {
            String target = fixed(100 * calibration.targetRisk, 0) + "%";
            goal = calibration.reached ? " chosen for at most " + target + " errors"
                    : " (the " + target + " error target was out of reach)";
        }
        String thresholdText = "the " + fixed(threshold, digits) + " threshold" + goal;
        if (kind == Kind.UNKNOWN) {
            return "Unknown: " + word + " " + fixed(score, digits) + " is below " + thresholdText
                    + " (best guess: " + label + ")";
        }
        String head = kind == Kind.REAL ? "Real" : "Fake (" + label + ")";
        return head + ": " + word + " " + fixed(score, digits) + " is at or above " + thresholdText;
    }

    /** The sentence for an image below the energy floor, as {@code core.verdict.explain_verdict}. */
    private String explainUnfamiliar(Calibration calibration, double energy) {
        String keeps = Double.isNaN(calibration.floorKeep) ? ""
                : ", which " + fixed(100 * calibration.floorKeep, 0) + "% of validation images reach";
        int digits = tellingDigits(energy, calibration.energyFloor);
        return "Unknown: unlike the images the model learnt from (familiarity score "
                + fixed(energy, digits) + " is below the floor "
                + fixed(calibration.energyFloor, digits) + keeps + "; best guess: " + label + ")";
    }

    /** Decimals (2 to 6) that show a value and the line it is compared with as different numbers. */
    static int tellingDigits(double value, double line) {
        int digits = 2;
        while (digits < 6 && fixed(value, digits).equals(fixed(line, digits))) {
            digits++;
        }
        return digits;
    }

    /**
     * Python's {@code f"{value:.{digits}f}"}: the exact binary value rounded half to even (Java's
     * {@code %.2f} rounds the shortest decimal half up: 0.125 gives 0.13, Python 0.12), with
     * Python's minus sign on a negative value that rounds to zero.
     */
    static String fixed(double value, int digits) {
        if (!Double.isFinite(value)) {
            return Double.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
        }
        String text = new BigDecimal(value).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
        boolean negative = value < 0 || (value == 0 && 1 / value < 0);
        return negative && !text.startsWith("-") ? "-" + text : text;
    }
}
