package studio.deepfake.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class BundleMetaTest {
    @Rule public TemporaryFolder tmp = new TemporaryFolder();

    static final String MODEL_SHA =
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")

    static String bundleJson(String version, String outputs) {
        return "{\"format\": \"deepfake-studio/bundle\", \"format_version\": " + version + ","
                + "\"created\": \"2026-11-23T12:00:00Z\", \"arch\": \"mobilenetv3_small_050\","
                + "\"model\": {\"file\": \"model.onnx\", \"sha256\": \"" + MODEL_SHA.toUpperCase()
                + "\", \"bytes\": 4, \"precision\": \"fp32\", \"opset\": 17, \"input\": \"image\","
                + "\"outputs\": " + outputs + "},"
                + "\"class_names\": [\"real\", \"sd14\", \"sdxl\"], \"real_class\": \"real\","
                + "\"preprocess\": {\"input_size\": 64, \"resize_mode\": \"resize_crop\","
                + "\"resize_size\": 72, \"interpolation\": \"triangle\", \"mean\": [0.5, 0.5, 0.5],"
                + "\"std\": [0.25, 0.25, 0.25], \"channel_order\": \"RGB\", \"layout\": \"NCHW\","
                + "\"version\": 1},"
                + "\"calibration\": {\"temperature\": 1.3, \"score\": \"energy\", \"threshold\": 0.8,"
                + "\"target_risk\": 0.05, \"coverage\": 0.91, \"risk\": 0.048, \"n\": 812,"
                + "\"chosen_on\": \"val\"},"
                + "\"metrics\": {\"accuracy\": 0.97, \"roc_auc\": NaN},"
                + "\"parent_run\": \"20261123-1200-finetune\", \"golden\": \"golden/golden.json\"}";
    }

    @Test
    public void readsEveryField() {
        BundleMeta meta = BundleMeta.parse(bundleJson("1", "[\"logits\", \"cam\"]"));
        assertEquals("mobilenetv3_small_050", meta.arch);
        assertEquals(Arrays.asList("real", "sd14", "sdxl"), meta.classNames);
        assertEquals("real", meta.realClass);
        assertEquals(64, meta.preprocess.inputSize);
        assertEquals(Integer.valueOf(72), meta.preprocess.resizeSize);
        assertEquals(PreprocessSpec.ResizeMode.RESIZE_CROP, meta.preprocess.resizeMode);
        assertEquals(Calibration.Score.ENERGY, meta.calibration.score);
        assertEquals(1.3, meta.calibration.temperature, 0);
        assertEquals(0.05, meta.calibration.targetRisk, 0);
        assertEquals(0.97, (Double) meta.metrics.get("accuracy"), 0);
        assertEquals("golden/golden.json", meta.golden);
        assertEquals(MODEL_SHA, meta.model.sha256);
        assertTrue(meta.hasCam());
        assertFalse(BundleMeta.parse(bundleJson("1", "[\"logits\"]")).hasCam());
    }

    @Test
    public void readsWhetherTheTargetRiskWasReached() {
        String json = bundleJson("1", "[\"logits\"]");
        assertTrue("absent means reached (docs/bundle-format.md)",
                BundleMeta.parse(json).calibration.reached);
        String field = "\"chosen_on\": \"val\"";
        assertTrue(BundleMeta.parse(json.replace(field, field + ", \"reached\": true"))
                .calibration.reached);
        assertFalse(BundleMeta.parse(json.replace(field, field + ", \"reached\": false"))
                .calibration.reached);
        BundleException e = assertThrows(BundleException.class, () -> BundleMeta.parse(
                json.replace(field, field + ", \"reached\": \"no\"")));
        assertTrue(e.getMessage(), e.getMessage().contains("\"reached\" must be true or false"));
    }

    @Test
    public void refusesUnknownVersionsFormatsAndOutputs() {
        BundleException e = assertThrows(BundleException.class,
                () -> BundleMeta.parse(bundleJson("2", "[\"logits\"]")));
        assertTrue(e.getMessage(), e.getMessage().contains("version 2 is not supported"));
        e = assertThrows(BundleException.class, () -> BundleMeta.parse("{\"format\": \"other\"}"));
        assertTrue(e.getMessage().contains("not a Deepfake Studio bundle"));
        e = assertThrows(BundleException.class,
                () -> BundleMeta.parse(bundleJson("1", "[\"scores\"]")));
        assertTrue(e.getMessage().contains("logits"));
        e = assertThrows(BundleException.class, () -> BundleMeta.parse(
                bundleJson("1", "[\"logits\"]").replace("\"model.onnx\"", "\"../model.onnx\"")));
        assertTrue(e.getMessage().contains("relative path"));
    }

    @Test
    public void checksTheModelHash() throws IOException {
        BundleMeta meta = BundleMeta.parse(bundleJson("1", "[\"logits\"]"));
        meta.verifyModel(new ByteArrayInputStream("test".getBytes(StandardCharsets.UTF_8)));
        BundleException e = assertThrows(BundleException.class, () -> meta.verifyModel(
                new ByteArrayInputStream("tampered".getBytes(StandardCharsets.UTF_8))));
        assertTrue(e.getMessage().contains("damaged or was replaced"));
    }

    private static byte[] zip(String... namesAndContents) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream out = new ZipOutputStream(bytes)) {
            for (int i = 0; i < namesAndContents.length; i += 2) {
                out.putNextEntry(new ZipEntry(namesAndContents[i]));
                out.write(namesAndContents[i + 1].getBytes(StandardCharsets.UTF_8));
                out.closeEntry();
            }
        }
        return bytes.toByteArray();
    }

    @Test
    public void unzipsABundleAndFindsItsRoot() throws IOException {
        File dest = tmp.newFolder("unzipped");
        byte[] data = zip("b/bundle.json", bundleJson("1", "[\"logits\"]"), "b/model.onnx", "test");
        assertEquals(Arrays.asList("b/bundle.json", "b/model.onnx"),
                BundleFiles.unzip(new ByteArrayInputStream(data), dest));
        File root = BundleFiles.findBundleRoot(dest);
        assertEquals(new File(dest, "b"), root);
        BundleMeta meta = BundleMeta.read(root);
        meta.verifyModel(Files.newInputStream(new File(root, "model.onnx").toPath()));
    }

    private File bundleFolder(String name, String model) throws IOException {
        File dir = tmp.newFolder(name);
        Files.write(new File(dir, "bundle.json").toPath(), "{}".getBytes(StandardCharsets.UTF_8));
        new File(dir, "golden").mkdir();
        Files.write(new File(dir, "golden/model.onnx").toPath(), model.getBytes(StandardCharsets.UTF_8));
        return dir;
    }

    private static String model(File dir) throws IOException {
        return new String(Files.readAllBytes(new File(dir, "golden/model.onnx").toPath()),
                StandardCharsets.UTF_8);
    }

    @Test
    public void replacingABundleKeepsTheOldOneUntilTheNewOneIsIn() throws IOException {
        File current = bundleFolder("bundle", "old");
        File backup = new File(tmp.getRoot(), "bundle.backup");
        BundleFiles.replace(bundleFolder("staged", "new"), current, backup);
        assertEquals("new", model(current));
        assertFalse(backup.exists());
        assertFalse(new File(tmp.getRoot(), "staged").exists());
        // A new folder that cannot be moved in: the current bundle is renamed back.
        BundleException e = assertThrows(BundleException.class, () -> BundleFiles.replace(
                new File(tmp.getRoot(), "missing"), current, backup));
        assertTrue(e.getMessage(), e.getMessage().contains("cannot install"));
        assertEquals("new", model(current));
        assertFalse(backup.exists());
        // The first bundle: nothing to move aside.
        File fresh = new File(tmp.getRoot(), "fresh");
        BundleFiles.replace(bundleFolder("first", "first"), fresh, backup);
        assertEquals("first", model(fresh));
    }

    @Test
    public void anInterruptedReplacementIsFinishedOnTheNextStart() throws IOException {
        File current = new File(tmp.getRoot(), "bundle");
        File backup = bundleFolder("bundle.backup", "old");
        BundleFiles.recover(current, backup); // stopped between the two renames
        assertEquals("old", model(current));
        assertFalse(backup.exists());
        bundleFolder("bundle.backup", "older");
        BundleFiles.recover(current, backup); // stopped before the backup was deleted
        assertEquals("old", model(current));
        assertFalse(backup.exists());
        BundleFiles.recover(current, backup); // nothing to do
        assertEquals("old", model(current));
    }

    @Test
    public void refusesZipMembersThatEscape() throws IOException {
        File dest = tmp.newFolder("evil");
        for (String name : new String[] {"../evil.txt", "/etc/evil", "a/../../evil", "C:/evil"}) {
            BundleException e = assertThrows(BundleException.class, () -> BundleFiles.unzip(
                    new ByteArrayInputStream(zip("bundle.json", "{}", name, "x")), dest));
            assertTrue(e.getMessage(), e.getMessage().contains("relative path"));
        }
        assertFalse(new File(dest.getParentFile(), "evil.txt").exists());
        BundleException e = assertThrows(BundleException.class,
                () -> BundleFiles.unzip(new ByteArrayInputStream(new byte[] {1, 2, 3}), dest));
        assertTrue(e.getMessage().contains("not a zip"));
    }
}
