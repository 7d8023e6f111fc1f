package studio.deepfake.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.Test;

/**
 * Parity with Python on real bundles: system property {@code bundle.dirs} lists bundle folders
 * (path-separator separated). Every golden PNG goes through this port's preprocessing and every
 * golden logit vector through its decision rule; the results must match the stored ones within
 * the bundle's tolerances. The measured differences go to {@code parity.report} as JSON when set.
 *
 * <p>{@code heatmap.dir} optionally holds {@code heatmaps.json} (cases of a {@code cam} output,
 * its class and size) with {@code NAME.cam.bin} and Python's {@code NAME.heat.bin}; the largest
 * difference goes to {@code heatmap.report}.
 *
 * <p>{@code decode.dir} optionally holds {@code NAME.in.png} / {@code NAME.expected.png} pairs:
 * the second is what Python's decoder made of the first (alpha composited on white; the EXIF
 * orientation {@code N} of files named {@code *exifN*} undone); they must match exactly.
 */
public class GoldenParityTest {
    private static List<File> dirs(String property) {
        String value = System.getProperty(property, "");
        List<File> out = new ArrayList<>();
        for (String part : value.split(File.pathSeparator)) {
            if (!part.isEmpty()) {
                out.add(new File(part));
            }
        }
        return out;
    }

    /**
     * The folders or files named by {@code property}; an empty list skips the test, unless
     * {@code -Dparity.required=true} (the pytest driver sets it) makes that a failure.
     */
    private static List<File> required(String property) {
        List<File> found = dirs(property);
        String message = "set -D" + property + " to run this parity check";
        if (Boolean.getBoolean("parity.required")) {
            assertTrue(message, !found.isEmpty());
        }
        assumeTrue(message, !found.isEmpty());
        return found;
    }

    static RgbImage readPng(File file) throws IOException {
        BufferedImage image = ImageIO.read(file);
        if (image == null) {
            throw new BundleException(file + " is not an image ImageIO can read");
        }
        int w = image.getWidth();
        int h = image.getHeight();
        return RgbImage.fromArgb(image.getRGB(0, 0, w, h, null, 0, w), w, h);
    }

    @Test
    public void goldenVectorsMatchPython() throws Exception {
        List<File> bundles = required("bundle.dirs");
        List<String> failures = new ArrayList<>();
        StringBuilder report = new StringBuilder("{\"bundles\": [");
        for (int b = 0; b < bundles.size(); b++) {
            report.append(b > 0 ? ", " : "").append(checkBundle(bundles.get(b), failures));
        }
        report.append("]}");
        String reportPath = System.getProperty("parity.report");
        if (reportPath != null) {
            Files.write(new File(reportPath).toPath(), report.toString().getBytes(StandardCharsets.UTF_8));
        }
        assertTrue(String.join("\n", failures), failures.isEmpty());
    }

    private static String checkBundle(File dir, List<String> failures) throws Exception {
        BundleMeta meta = BundleMeta.read(dir);
        File model = new File(dir, meta.model.file);
        boolean modelChecked = model.isFile();
        if (modelChecked) {
            try (InputStream in = new FileInputStream(model)) {
                meta.verifyModel(in);
            }
        }
        // No onnxruntime on this JVM: the "runtime" returns the stored logits, so the check
        // covers preprocessing from the PNG and the decision rule (Node checks the model).
        GoldenCheck.Result result = GoldenCheck.run(dir, meta, GoldenParityTest::readPng,
                (vector, input) -> vector.logits);
        List<String> explanations = new ArrayList<>();
        Decision decision = Decision.of(meta);
        for (GoldenVectors.Vector v : GoldenVectors.read(new File(dir, meta.golden)).vectors) {
            explanations.add(jsonString(decision.decide(v.logits).explanation));
        }
        for (String failure : result.failures) {
            failures.add(dir.getName() + "/" + failure);
        }
        return String.format(Locale.ROOT,
                "{\"dir\": \"%s\", \"mode\": \"%s\", \"vectors\": %d, \"max_input_diff\": %.9g,"
                        + " \"max_probs_diff\": %.9g, \"max_score_diff\": %.9g,"
                        + " \"verdicts_equal\": %d, \"model_sha256_checked\": %b,"
                        + " \"explanations\": [%s]}",
                dir.getName().replace("\"", ""), meta.preprocess.resizeMode.jsonName,
                result.vectors, result.maxInputDiff, result.maxProbsDiff, result.maxScoreDiff,
                result.verdictsEqual, modelChecked, String.join(", ", explanations));
    }

    static String jsonString(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    @Test
    public void zippedBundlesUnpackAndMatch() throws Exception {
        List<File> zips = required("bundle.zips");
        for (File zip : zips) {
            File dest = java.nio.file.Files.createTempDirectory("bundle-zip").toFile();
            try (InputStream in = new FileInputStream(zip)) {
                BundleFiles.unzip(in, dest);
            }
            File root = BundleFiles.findBundleRoot(dest);
            BundleMeta meta = BundleMeta.read(root);
            try (InputStream in = new FileInputStream(new File(root, meta.model.file))) {
                meta.verifyModel(in);
            }
            GoldenCheck.Result result = GoldenCheck.run(root, meta, GoldenParityTest::readPng,
                    (vector, input) -> vector.logits);
            assertTrue(zip.getName() + ": " + result.failures, result.ok() && result.vectors > 0);
        }
    }

    /** The golden check of the first bundle with a "runtime" whose logits {@code model} makes. */
    private static GoldenCheck.Result firstBundleWith(
            java.util.function.Function<GoldenVectors.Vector, float[]> model) throws Exception {
        File dir = required("bundle.dirs").get(0);
        return GoldenCheck.run(dir, BundleMeta.read(dir), GoldenParityTest::readPng,
                (vector, input) -> model.apply(vector));
    }

    @Test
    public void aRuntimeWithWrongLogitsIsCaught() throws Exception {
        GoldenCheck.Result result = firstBundleWith(vector -> {
            float[] off = vector.logits.clone();
            off[0] += 0.01f;
            return off;
        });
        assertTrue(result.summary(), !result.ok() && result.summary().contains("MISMATCH"));
        assertEquals(0.01, result.maxLogitsDiff, 1e-6);
        assertTrue(result.failures.toString(), result.failures.get(0).contains(": logits differs by"));
        // the numbers drifted, the decisions did not: what an INT8 model on another CPU does
        assertTrue(result.failures.toString(), result.decisionsAgree());
    }

    @Test
    public void aRuntimeThatDecidesOtherwiseDoesNotAgree() throws Exception {
        GoldenCheck.Result result = firstBundleWith(vector -> {
            float[] flipped = vector.logits.clone();  // the classes' scores reversed
            for (int i = 0; i < flipped.length; i++) {
                flipped[i] = vector.logits[vector.logits.length - 1 - i];
            }
            return flipped;
        });
        assertTrue(result.summary(), !result.ok() && !result.decisionsAgree());
        assertTrue(result.inputsMatch);
    }

    @Test
    public void heatmapsMatchPython() throws IOException {
        List<File> dirs = required("heatmap.dir");
        File dir = dirs.get(0);
        Map<String, Object> body = Json.parseObject(new String(
                Files.readAllBytes(new File(dir, "heatmaps.json").toPath()), StandardCharsets.UTF_8),
                "heatmaps.json");
        double worst = 0;
        int count = 0;
        for (Object item : Json.getList(body, "cases", "heatmaps.json")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> c = (Map<String, Object>) item;
            int[] dims = Json.getInts(c, "shape", "case");
            long[] shape = {dims[0], dims[1], dims[2], dims[3]};
            int size = Json.getInt(c, "size", "case");
            float[] cam = readFloats(new File(dir, Json.getString(c, "cam", "case")),
                    dims[0] * dims[1] * dims[2] * dims[3]);
            float[] expected = readFloats(new File(dir, Json.getString(c, "heat", "case")), size * size);
            Heatmap map = Heatmap.of(cam, shape, Json.getInt(c, "class_index", "case"), size, size);
            for (int i = 0; i < expected.length; i++) {
                worst = Math.max(worst, Math.abs(map.values[i] - expected[i]));
            }
            count++;
        }
        String report = System.getProperty("heatmap.report");
        if (report != null) {
            Files.write(new File(report).toPath(), String.format(Locale.ROOT,
                    "{\"cases\": %d, \"max_heatmap_diff\": %.9g}", count, worst)
                    .getBytes(StandardCharsets.UTF_8));
        }
        assertTrue("heatmaps differ from Python by " + worst, count > 0 && worst <= 1e-5);
    }

    private static float[] readFloats(File file, int count) throws IOException {
        try (InputStream in = new FileInputStream(file)) {
            return GoldenVectors.readFloats(in, count);
        }
    }

    @Test
    public void decodingMatchesPython() throws IOException {
        List<File> dirs = required("decode.dir");
        File[] inputs = dirs.get(0).listFiles((d, name) -> name.endsWith(".in.png"));
        assertTrue("no .in.png files in " + dirs.get(0), inputs != null && inputs.length > 0);
        for (File input : inputs) {
            Matcher exif = Pattern.compile("exif(\\d)").matcher(input.getName());
            RgbImage actual = readPng(input).oriented(exif.find() ? Integer.parseInt(exif.group(1)) : 1);
            RgbImage expected = readPng(new File(input.getPath().replace(".in.png", ".expected.png")));
            assertEquals(input.getName() + " width", expected.width, actual.width);
            assertEquals(input.getName() + " height", expected.height, actual.height);
            int mismatches = 0;
            for (int i = 0; i < actual.rgb.length; i++) {
                mismatches += actual.rgb[i] != expected.rgb[i] ? 1 : 0;
            }
            assertEquals(input.getName() + ": channel values differing from Pillow", 0, mismatches);
        }
    }
}
