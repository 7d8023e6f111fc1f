package studio.deepfake.core;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** {@code bundle.json}: what a runtime needs to know before it runs {@code model.onnx}. */
public final class BundleMeta {
    public static final String FORMAT = "deepfake-studio/bundle";
    public static final int FORMAT_VERSION = 1;
    public static final String FILE_NAME = "bundle.json";

    /** The "model" object: the ONNX file and its input and outputs. */
    public static final class Model {
        public final String file;
        public final String sha256;
        public final long bytes;
        /** "fp32" or "int8". */
        public final String precision;
        public final String input;
        /** "logits", optionally followed by "cam". */
        public final List<String> outputs;

        Model(Map<String, Object> body) {
            String where = "model";
            file = BundleFiles.isSafeRelative(Json.getString(body, "file", where), "model.file");
            sha256 = Json.getString(body, "sha256", where).toLowerCase(java.util.Locale.ROOT);
            bytes = (long) Json.optDouble(body, "bytes", -1, where);
            precision = Json.optString(body, "precision", where);
            input = Json.getString(body, "input", where);
            outputs = Collections.unmodifiableList(Json.getStrings(body, "outputs", where));
            if (!outputs.contains("logits")) {
                throw new BundleException("model.outputs must include \"logits\", not " + outputs);
            }
        }
    }

    public final String arch;
    public final String created;
    public final Model model;
    public final List<String> classNames;
    public final String realClass;
    public final PreprocessSpec preprocess;
    public final Calibration calibration;
    /** Test-split metrics of the exported model, as written (numbers, strings, nested maps). */
    public final Map<String, Object> metrics;
    public final String parentRun;
    /** Path of {@code golden.json} inside the bundle, or {@code null}. */
    public final String golden;

    private BundleMeta(Map<String, Object> body) {
        String where = FILE_NAME;
        Object format = body.get("format");
        if (!FORMAT.equals(format)) {
            throw new BundleException("not a Deepfake Studio bundle (format is " + format + ")");
        }
        int version = Json.getInt(body, "format_version", where);
        if (version != FORMAT_VERSION) {
            throw new BundleException("bundle format version " + version
                    + " is not supported (this app reads version " + FORMAT_VERSION
                    + "); update the app");
        }
        arch = Json.optString(body, "arch", where);
        created = Json.optString(body, "created", where);
        model = new Model(Json.getObject(body, "model", where));
        classNames = Collections.unmodifiableList(Json.getStrings(body, "class_names", where));
        realClass = Json.getString(body, "real_class", where);
        if (!classNames.contains(realClass)) {
            throw new BundleException("real_class \"" + realClass + "\" is not one of " + classNames);
        }
        preprocess = PreprocessSpec.fromJson(Json.getObject(body, "preprocess", where));
        calibration = Calibration.fromJson(Json.getObject(body, "calibration", where));
        Object metricsValue = body.get("metrics");
        @SuppressWarnings("unchecked")
        Map<String, Object> metricsMap = metricsValue instanceof Map
                ? (Map<String, Object>) metricsValue : Collections.emptyMap();
        metrics = Collections.unmodifiableMap(metricsMap);
        parentRun = Json.optString(body, "parent_run", where);
        String goldenPath = Json.optString(body, "golden", where);
        golden = goldenPath == null ? null : BundleFiles.isSafeRelative(goldenPath, "golden");
    }

    /** Parses and validates the text of {@code bundle.json}. */
    public static BundleMeta parse(String json) {
        return new BundleMeta(Json.parseObject(json, FILE_NAME));
    }

    /** Reads {@code bundle.json} from a bundle folder. */
    public static BundleMeta read(File dir) throws IOException {
        File file = new File(dir, FILE_NAME);
        if (!file.isFile()) {
            throw new BundleException(dir + " is not a bundle: it has no " + FILE_NAME);
        }
        return parse(new String(java.nio.file.Files.readAllBytes(file.toPath()),
                StandardCharsets.UTF_8));
    }

    /** Whether the model also returns a class-activation map for the heatmap overlay. */
    public boolean hasCam() {
        return model.outputs.contains("cam");
    }

    /** Checks the model bytes against {@code model.sha256}; throws when they differ. */
    public void verifyModel(InputStream modelBytes) throws IOException {
        String actual = BundleFiles.sha256(modelBytes);
        if (!actual.equals(model.sha256)) {
            throw new BundleException(model.file + " is damaged or was replaced: its sha256 is "
                    + actual + ", bundle.json expects " + model.sha256);
        }
    }
}
