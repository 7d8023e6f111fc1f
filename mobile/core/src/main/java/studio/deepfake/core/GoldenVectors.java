package studio.deepfake.core;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** {@code golden/golden.json}: the vectors any runtime must reproduce, and their tolerances. */
public final class GoldenVectors {
    /** Largest absolute differences allowed on the input tensor, the logits and the probs. */
    public static final class Tolerance {
        public final double input;
        public final double logits;
        public final double probs;

        Tolerance(Map<String, Object> body) {
            String where = "golden tolerance";
            input = Json.getDouble(body, "input", where);
            logits = Json.getDouble(body, "logits", where);
            probs = Json.getDouble(body, "probs", where);
        }
    }

    /** One golden vector: an image, its input tensor and the expected outputs. */
    public static final class Vector {
        public final String name;
        public final String image;
        public final String input;
        public final int[] shape;
        public final float[] logits;
        public final double[] probs;
        public final double score;
        public final String verdict;
        /** The top class; may be {@code null} for an unknown verdict. */
        public final String label;
        public final String source;

        Vector(Map<String, Object> body) {
            name = Json.getString(body, "name", "golden vector");
            String where = "golden vector " + name;
            image = BundleFiles.isSafeRelative(Json.getString(body, "image", where), where + " image");
            input = BundleFiles.isSafeRelative(Json.getString(body, "input", where), where + " input");
            shape = Json.getInts(body, "shape", where);
            double[] values = Json.getDoubles(body, "logits", where);
            logits = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                logits[i] = (float) values[i];
            }
            probs = Json.getDoubles(body, "probs", where);
            score = Json.getDouble(body, "score", where);
            verdict = Json.getString(body, "verdict", where);
            label = Json.optString(body, "label", where);
            source = Json.optString(body, "source", where);
        }

        /** Number of floats in the input tensor. */
        public int inputLength() {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }
    }

    public final Tolerance tolerance;
    public final List<Vector> vectors;

    private GoldenVectors(Map<String, Object> body) {
        tolerance = new Tolerance(Json.getObject(body, "tolerance", "golden.json"));
        List<Vector> list = new ArrayList<>();
        for (Object item : Json.getList(body, "vectors", "golden.json")) {
            if (!(item instanceof Map)) {
                throw new BundleException("golden.json: every vector must be an object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> vector = (Map<String, Object>) item;
            list.add(new Vector(vector));
        }
        vectors = Collections.unmodifiableList(list);
    }

    public static GoldenVectors parse(String json) {
        return new GoldenVectors(Json.parseObject(json, "golden.json"));
    }

    public static GoldenVectors read(File goldenJson) throws IOException {
        if (!goldenJson.isFile()) {
            throw new BundleException("golden vectors not found: " + goldenJson);
        }
        return parse(new String(java.nio.file.Files.readAllBytes(goldenJson.toPath()),
                StandardCharsets.UTF_8));
    }

    /** The input tensor of {@code vector}, read from the folder holding {@code golden.json}. */
    public static float[] readInput(File goldenDir, Vector vector) throws IOException {
        File file = new File(goldenDir, vector.input);
        long expected = 4L * vector.inputLength();
        if (file.length() != expected) {
            throw new BundleException(file + " has " + file.length() + " bytes, shape "
                    + java.util.Arrays.toString(vector.shape) + " needs " + expected);
        }
        try (InputStream in = new FileInputStream(file)) {
            return readFloats(in, vector.inputLength());
        }
    }

    /** Reads {@code count} little-endian float32 values. */
    public static float[] readFloats(InputStream in, int count) throws IOException {
        byte[] bytes = new byte[4 * count];
        try {
            new DataInputStream(in).readFully(bytes);
        } catch (EOFException e) {
            throw new BundleException("tensor file is shorter than " + count + " floats", e);
        }
        float[] out = new float[count];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }
}
