package studio.deepfake.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.util.Arrays;
import java.util.Random;
import org.junit.Test;

/** Step 0 of the rule on hand-built images; ContentParityTest compares it with Python's. */
public class ContentCheckTest {
    private static RgbImage uniform(int width, int height, int value) {
        byte[] rgb = new byte[width * height * 3];
        Arrays.fill(rgb, (byte) value);
        return new RgbImage(width, height, rgb);
    }

    private static RgbImage noise(int width, int height, long seed) {
        byte[] rgb = new byte[width * height * 3];
        new Random(seed).nextBytes(rgb);
        return new RgbImage(width, height, rgb);
    }

    @Test
    public void lumaIsPillowsIntegerFormula() {
        assertEquals(0, ContentCheck.luma(0, 0, 0));
        assertEquals(255, ContentCheck.luma(255, 255, 255));
        assertEquals(76, ContentCheck.luma(255, 0, 0)); // Pillow: Image.new("RGB", ..., red).convert("L")
        assertEquals(150, ContentCheck.luma(0, 255, 0));
        assertEquals(29, ContentCheck.luma(0, 0, 255));
    }

    @Test
    public void strideKeepsAtMostSampleSidePerSide() {
        assertEquals(1, ContentCheck.sampleStride(32, 32));
        assertEquals(1, ContentCheck.sampleStride(300, 512));
        assertEquals(2, ContentCheck.sampleStride(513, 10));
        assertEquals(8, ContentCheck.sampleStride(3000, 4000));
    }

    @Test
    public void halfBlackHalfWhiteHasStd127AndAHalf() {
        RgbImage image = uniform(20, 20, 0);
        Arrays.fill(image.rgb, 0, image.rgb.length / 2, (byte) 255);
        assertEquals(127.5, ContentCheck.lumaStd(image), 0.0);
        assertNull(ContentCheck.problem(image));
    }

    @Test
    public void uniformImagesAreUnknown() {
        for (int value : new int[] {0, 128, 255}) {
            assertEquals(0.0, ContentCheck.lumaStd(uniform(256, 256, value)), 0.0);
            assertEquals("Unknown: the image is almost uniform (no detail to judge)",
                    ContentCheck.problem(uniform(256, 256, value)));
        }
    }

    @Test
    public void smallImagesAreUnknownWhateverTheirDetail() {
        assertEquals("Unknown: 8\u00d78 pixels is too small to judge (at least 16 px per side)",
                ContentCheck.problem(noise(8, 8, 1)));
        assertEquals("Unknown: 1\u00d71 pixels is too small to judge (at least 16 px per side)",
                ContentCheck.problem(uniform(1, 1, 90)));
        assertEquals("Unknown: 400\u00d715 pixels is too small to judge (at least 16 px per side)",
                ContentCheck.problem(noise(400, 15, 2)));
        assertNull(ContentCheck.problem(noise(16, 16, 3)));
        assertNull(ContentCheck.problem(noise(32, 32, 4)));
    }

    @Test
    public void overruledVerdictKeepsTheModelsGuess() {
        Calibration cal = new Calibration(1.0, Calibration.Score.MAX_SOFTMAX, 0.5, 0.05, 0.9, 0.04, "test");
        Decision decision = new Decision(Arrays.asList("real", "sd14"), "real", cal);
        float[] logits = {3f, 0f};
        Verdict model = decision.decide(logits);
        assertEquals(Verdict.Kind.REAL, model.kind);
        Verdict blank = decision.decide(uniform(64, 64, 128), logits);
        assertEquals(Verdict.Kind.UNKNOWN, blank.kind);
        assertEquals("unknown", blank.headline());
        assertEquals("Unknown: the image is almost uniform (no detail to judge)", blank.explanation);
        assertEquals("real", blank.label);
        assertEquals(blank.explanation, blank.problem); // judged by step 0, not by the score
        assertNull(model.problem);
        assertEquals(model.confidence, blank.confidence, 0.0);
        assertEquals(model.margin, blank.margin, 0.0);
        assertArrayEquals(model.probs, blank.probs, 0.0);
        Verdict detailed = decision.decide(noise(64, 64, 5), logits);
        assertEquals(Verdict.Kind.REAL, detailed.kind);
        assertEquals(model.explanation, detailed.explanation);
        assertNull(detailed.problem);
    }
}
