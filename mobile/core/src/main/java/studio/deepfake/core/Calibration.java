package studio.deepfake.core;

import java.util.Map;

/** The "calibration" object of {@code bundle.json}: temperature, score and threshold. */
public final class Calibration {
    /** How confident the model is: the largest probability, or the negative energy. */
    public enum Score {
        MAX_SOFTMAX("max_softmax"),
        ENERGY("energy");

        public final String jsonName;

        Score(String jsonName) {
            this.jsonName = jsonName;
        }

        static Score fromJson(String name) {
            for (Score score : values()) {
                if (score.jsonName.equals(name)) {
                    return score;
                }
            }
            throw new BundleException(
                    "calibration score must be \"max_softmax\" or \"energy\", not \"" + name + "\"");
        }
    }

    public final double temperature;
    public final Score score;
    public final double threshold;
    /** The user's goal: at most this fraction of errors among accepted images (NaN if unknown). */
    public final double targetRisk;
    /** Fraction of held-out images accepted at the threshold (NaN if unknown). */
    public final double coverage;
    /** Error rate among the accepted held-out images (NaN if unknown). */
    public final double risk;
    /** Where the threshold was chosen, for display; may be {@code null}. */
    public final String chosenOn;
    /**
     * Whether some threshold met {@link #targetRisk}; false when none did and the lowest-risk
     * threshold was kept instead ({@code reached}: optional in {@code bundle.json}, default true).
     */
    public final boolean reached;
    /**
     * Images whose energy score ({@code logsumexp(logits / T)}) is below it are unknown whatever
     * the score says (unfamiliar images); NaN when the bundle has no floor.
     */
    public final double energyFloor;
    /** The share of validation images at or above the floor when it was chosen (NaN if unknown). */
    public final double floorKeep;

    public Calibration(double temperature, Score score, double threshold, double targetRisk,
            double coverage, double risk, String chosenOn) {
        this(temperature, score, threshold, targetRisk, coverage, risk, chosenOn, Double.NaN,
                Double.NaN);
    }

    public Calibration(double temperature, Score score, double threshold, double targetRisk,
            double coverage, double risk, String chosenOn, double energyFloor, double floorKeep) {
        this(temperature, score, threshold, targetRisk, coverage, risk, chosenOn, true,
                energyFloor, floorKeep);
    }

    public Calibration(double temperature, Score score, double threshold, double targetRisk,
            double coverage, double risk, String chosenOn, boolean reached, double energyFloor,
            double floorKeep) {
        if (!(temperature > 0) || Double.isInfinite(temperature)) {
            throw new BundleException("calibration temperature must be positive, not " + temperature);
        }
        if (Double.isNaN(threshold)) {
            throw new BundleException("calibration threshold is not a number");
        }
        this.temperature = temperature;
        this.score = score;
        this.threshold = threshold;
        this.targetRisk = targetRisk;
        this.coverage = coverage;
        this.risk = risk;
        this.chosenOn = chosenOn;
        this.reached = reached;
        if (Double.isInfinite(energyFloor)) {
            throw new BundleException("calibration energy_floor must be a finite number");
        }
        this.energyFloor = energyFloor;
        this.floorKeep = floorKeep;
    }

    /** Whether the bundle rejects unfamiliar images by their energy score (rule step 4). */
    public boolean hasEnergyFloor() {
        return !Double.isNaN(energyFloor);
    }

    /** Reads and validates the "calibration" object. */
    public static Calibration fromJson(Map<String, Object> body) {
        String where = "calibration";
        return new Calibration(
                Json.getDouble(body, "temperature", where),
                Score.fromJson(Json.getString(body, "score", where)),
                Json.getDouble(body, "threshold", where),
                Json.optDouble(body, "target_risk", Double.NaN, where),
                Json.optDouble(body, "coverage", Double.NaN, where),
                Json.optDouble(body, "risk", Double.NaN, where),
                Json.optString(body, "chosen_on", where),
                Json.optBoolean(body, "reached", true, where),
                Json.optDouble(body, "energy_floor", Double.NaN, where),
                Json.optDouble(body, "floor_keep", Double.NaN, where));
    }
}
