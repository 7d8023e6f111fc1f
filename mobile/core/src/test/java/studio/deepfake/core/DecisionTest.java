package studio.deepfake.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class DecisionTest {
    private static final List<String> CLASSES = Arrays.asList("real", "sd14", "sdxl");

    private static Decision decision(double temperature, Calibration.Score score, double threshold) {
        Calibration cal = new Calibration(temperature, score, threshold, 0.05, 0.9, 0.04, "test");
        return new Decision(CLASSES, "real", cal);
    }

    @Test
    public void softmaxOfKnownLogits() {
        assertArrayEquals(new double[] {0.09003057317038046, 0.24472847105479767, 0.6652409557748219},
                Decision.softmax(new double[] {1, 2, 3}), 1e-12);
        // Shifting the logits changes nothing; huge logits do not overflow.
        assertArrayEquals(Decision.softmax(new double[] {1, 2, 3}),
                Decision.softmax(new double[] {1001, 1002, 1003}), 1e-12);
    }

    @Test
    public void energyScoreIsLogSumExpOfScaledLogits() {
        assertEquals(3.40760596444438, Decision.logSumExp(new double[] {1, 2, 3}), 1e-12);
        Verdict v = decision(1.5, Calibration.Score.ENERGY, 1.0).decide(new float[] {2f, -1f, 0.5f});
        assertEquals(1.7409392977777136, v.score, 1e-6);
        assertArrayEquals(new double[] {0.66524096, 0.09003057, 0.24472847}, v.probs, 1e-7);
        assertEquals(Verdict.Kind.REAL, v.kind);
        assertEquals(0.66524096, v.confidence, 1e-7);
        assertEquals(0.7409392977777136, v.margin, 1e-6);
    }

    @Test
    public void temperatureFlattensTheProbabilities() {
        float[] logits = {0f, 0f, 2f};
        Verdict sharp = decision(1.0, Calibration.Score.MAX_SOFTMAX, 0.5).decide(logits);
        Verdict flat = decision(4.0, Calibration.Score.MAX_SOFTMAX, 0.5).decide(logits);
        double e2 = Math.exp(2);
        assertEquals(e2 / (2 + e2), sharp.confidence, 1e-12);
        assertEquals(Math.exp(0.5) / (2 + Math.exp(0.5)), flat.confidence, 1e-12);
        assertEquals(Verdict.Kind.FAKE, sharp.kind);
        assertEquals("sdxl", sharp.label);
        assertEquals("fake (sdxl)", sharp.headline());
        assertEquals(Verdict.Kind.UNKNOWN, flat.kind);
        assertEquals("sdxl", flat.label);
        assertTrue(flat.margin < 0);
        assertEquals("Unknown: confidence 0.45 is below the 0.50 threshold chosen for at most 5% errors"
                + " (best guess: sdxl)", flat.explanation);
        assertEquals("Fake (sdxl): confidence 0.79 is at or above the 0.50 threshold chosen for at"
                + " most 5% errors", sharp.explanation);
    }

    @Test
    public void anUnreachedTargetIsSaidAsThePythonCheckerSaysIt() {
        // core.verdict.explain_verdict with Calibration(reached=False): no "chosen for" claim.
        Calibration unreached = new Calibration(1.0, Calibration.Score.MAX_SOFTMAX, 0.5, 0.05, 0.9,
                0.12, "test", false, Double.NaN, Double.NaN);
        assertTrue(!unreached.reached);
        Decision rule = new Decision(CLASSES, "real", unreached);
        assertEquals("Unknown: confidence 0.45 is below the 0.50 threshold (the 5% error target"
                + " was out of reach) (best guess: sdxl)", rule.decide(new float[] {0f, 0f, 0.5f}).explanation);
        assertEquals("Fake (sdxl): confidence 0.79 is at or above the 0.50 threshold (the 5% error"
                + " target was out of reach)", rule.decide(new float[] {0f, 0f, 2f}).explanation);
        // Without a target there is nothing to reach or miss.
        Calibration noTarget = new Calibration(1.0, Calibration.Score.MAX_SOFTMAX, 0.5, Double.NaN,
                Double.NaN, Double.NaN, null, false, Double.NaN, Double.NaN);
        assertEquals("Fake (sdxl): confidence 0.79 is at or above the 0.50 threshold",
                new Decision(CLASSES, "real", noTarget).decide(new float[] {0f, 0f, 2f}).explanation);
    }

    @Test
    public void numbersAreRoundedAsPythonFormatsThem() {
        // f"{v:.Nf}" / f"{v:.0%}" in Python: the exact binary value, ties to even.
        assertEquals("0.12", Verdict.fixed(0.125, 2));
        assertEquals("1.00", Verdict.fixed(1.005, 2));
        assertEquals("2", Verdict.fixed(100 * 0.025, 0));
        assertEquals("4", Verdict.fixed(3.5, 0));
        assertEquals("0.46", Verdict.fixed(0.455, 2));
        assertEquals("-0.00", Verdict.fixed(-0.001, 2));
        assertEquals("-0.00", Verdict.fixed(-0.0, 2));
        assertEquals("0.00", Verdict.fixed(0.0, 2));
        assertEquals("-3.142", Verdict.fixed(-Math.PI, 3));
        assertEquals("-inf", Verdict.fixed(Double.NEGATIVE_INFINITY, 2));
    }

    @Test
    public void scoreEqualToThresholdIsAccepted() {
        // probs are exactly 0.5 / 0.5 / 0: argmax takes the first (real), score 0.5 is not < 0.5.
        Verdict v = decision(1.0, Calibration.Score.MAX_SOFTMAX, 0.5)
                .decide(new float[] {0f, 0f, Float.NEGATIVE_INFINITY});
        assertEquals(Verdict.Kind.REAL, v.kind);
        assertEquals(0, v.labelIndex);
        assertEquals(0.0, v.margin, 0);
    }

    @Test
    public void anEnergyFloorRejectsUnfamiliarImagesHoweverConfident() {
        // logits {4, 0, 0}: confidence 0.9647, energy log(e^4 + 2) = 4.0360
        Calibration floored = new Calibration(1.0, Calibration.Score.MAX_SOFTMAX, 0.5, 0.05, 0.9,
                0.04, "test", 4.5, 0.9);
        Verdict v = new Decision(CLASSES, "real", floored).decide(new float[] {4f, 0f, 0f});
        assertEquals(Verdict.Kind.UNKNOWN, v.kind);
        assertTrue(v.margin > 0); // the confidence alone would have answered
        assertEquals("Unknown: unlike the images the model learnt from (familiarity score 4.04 is"
                + " below the floor 4.50, which 90% of validation images reach; best guess: real)",
                v.explanation);
        Verdict familiar = new Decision(CLASSES, "real", floored).decide(new float[] {5f, 0f, 0f});
        assertEquals(Verdict.Kind.REAL, familiar.kind);
        // energy 4.0360 against a floor of 4.038: as many decimals as tell them apart
        Calibration close = new Calibration(1.0, Calibration.Score.MAX_SOFTMAX, 0.5, 0.05, 0.9,
                0.04, "test", 4.038, 0.9);
        assertEquals("Unknown: unlike the images the model learnt from (familiarity score 4.036 is"
                + " below the floor 4.038, which 90% of validation images reach; best guess: real)",
                new Decision(CLASSES, "real", close).decide(new float[] {4f, 0f, 0f}).explanation);
        assertTrue(floored.hasEnergyFloor());
        assertTrue(!new Calibration(1, Calibration.Score.MAX_SOFTMAX, 0.5, 0.05, 0.9, 0.04, "test")
                .hasEnergyFloor());
    }

    @Test
    public void wrongNumberOfLogitsIsAClearError() {
        BundleException e = assertThrows(BundleException.class,
                () -> decision(1, Calibration.Score.MAX_SOFTMAX, 0.5).decide(new float[] {1f, 2f}));
        assertTrue(e.getMessage().contains("2 logits for 3 classes"));
        Calibration cal = new Calibration(1, Calibration.Score.ENERGY, 0, 0.05, 1, 0, null);
        e = assertThrows(BundleException.class, () -> new Decision(CLASSES, "photo", cal));
        assertTrue(e.getMessage().contains("photo"));
    }
}
