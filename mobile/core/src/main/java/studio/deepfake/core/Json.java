package studio.deepfake.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal JSON reader: objects become {@link LinkedHashMap}, arrays {@link ArrayList}, numbers
 * {@link Double}, plus {@link String}, {@link Boolean} and {@code null}.
 *
 * <p>It also accepts {@code NaN}, {@code Infinity} and {@code -Infinity}, which Python's {@code
 * json.dumps} writes for undefined metrics. The typed getters throw {@link BundleException} naming
 * the missing or mistyped field.
 */
public final class Json {
    private final String text;
    private int pos;

    private Json(String text) {
        this.text = text;
    }

    /** Parses one JSON document; trailing non-space text is an error. */
    public static Object parse(String text) {
        Json parser = new Json(text);
        parser.skipSpace();
        Object value = parser.value();
        parser.skipSpace();
        if (parser.pos != text.length()) {
            throw parser.error("unexpected text after the document");
        }
        return value;
    }

    /** Parses a document that must be an object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text, String what) {
        Object value;
        try {
            value = parse(text);
        } catch (BundleException e) {
            throw new BundleException(what + " is not valid JSON: " + e.getMessage(), e);
        }
        if (!(value instanceof Map)) {
            throw new BundleException(what + " must hold a JSON object");
        }
        return (Map<String, Object>) value;
    }

    // -- typed access ------------------------------------------------------------------------

    /** The value of a required key, or a {@link BundleException} naming {@code where.key}. */
    public static Object require(Map<String, Object> obj, String key, String where) {
        if (!obj.containsKey(key) || obj.get(key) == null) {
            throw new BundleException(where + " has no \"" + key + "\"");
        }
        return obj.get(key);
    }

    public static String getString(Map<String, Object> obj, String key, String where) {
        return cast(require(obj, key, where), String.class, key, where);
    }

    /** An optional string: {@code null} when absent or JSON null. */
    public static String optString(Map<String, Object> obj, String key, String where) {
        Object value = obj.get(key);
        return value == null ? null : cast(value, String.class, key, where);
    }

    public static double getDouble(Map<String, Object> obj, String key, String where) {
        return cast(require(obj, key, where), Double.class, key, where);
    }

    /** An optional number: {@code fallback} when absent or JSON null. */
    public static double optDouble(Map<String, Object> obj, String key, double fallback, String where) {
        Object value = obj.get(key);
        return value == null ? fallback : cast(value, Double.class, key, where);
    }

    /** An optional boolean: {@code fallback} when absent or JSON null. */
    public static boolean optBoolean(Map<String, Object> obj, String key, boolean fallback,
            String where) {
        Object value = obj.get(key);
        return value == null ? fallback : cast(value, Boolean.class, key, where);
    }

    public static int getInt(Map<String, Object> obj, String key, String where) {
        return toInt(getDouble(obj, key, where), key, where);
    }

    /** An optional integer: {@code null} when absent or JSON null. */
    public static Integer optInt(Map<String, Object> obj, String key, String where) {
        Object value = obj.get(key);
        return value == null ? null : toInt(cast(value, Double.class, key, where), key, where);
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> getObject(Map<String, Object> obj, String key, String where) {
        return cast(require(obj, key, where), Map.class, key, where);
    }

    @SuppressWarnings("unchecked")
    public static List<Object> getList(Map<String, Object> obj, String key, String where) {
        return cast(require(obj, key, where), List.class, key, where);
    }

    public static List<String> getStrings(Map<String, Object> obj, String key, String where) {
        List<String> out = new ArrayList<>();
        for (Object item : getList(obj, key, where)) {
            out.add(cast(item, String.class, key + "[]", where));
        }
        return out;
    }

    public static double[] getDoubles(Map<String, Object> obj, String key, String where) {
        List<Object> items = getList(obj, key, where);
        double[] out = new double[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = cast(items.get(i), Double.class, key + "[]", where);
        }
        return out;
    }

    public static int[] getInts(Map<String, Object> obj, String key, String where) {
        double[] values = getDoubles(obj, key, where);
        int[] out = new int[values.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = toInt(values[i], key + "[]", where);
        }
        return out;
    }

    private static <T> T cast(Object value, Class<T> type, String key, String where) {
        if (!type.isInstance(value)) {
            throw new BundleException(
                    where + ": \"" + key + "\" must be " + typeName(type) + ", not " + describe(value));
        }
        return type.cast(value);
    }

    private static int toInt(double value, String key, String where) {
        if (value != Math.rint(value) || Math.abs(value) > Integer.MAX_VALUE) {
            throw new BundleException(where + ": \"" + key + "\" must be an integer, not " + value);
        }
        return (int) value;
    }

    private static String typeName(Class<?> type) {
        if (type == Double.class) return "a number";
        if (type == String.class) return "a string";
        if (type == Map.class) return "an object";
        if (type == List.class) return "a list";
        if (type == Boolean.class) return "true or false";
        return type.getSimpleName();
    }

    private static String describe(Object value) {
        if (value == null) return "null";
        if (value instanceof String) return "the string \"" + value + "\"";
        return typeName(value instanceof Map ? Map.class : value instanceof List ? List.class : value.getClass())
                + " (" + value + ")";
    }

    // -- the parser --------------------------------------------------------------------------

    private Object value() {
        if (pos >= text.length()) {
            throw error("unexpected end of input");
        }
        char c = text.charAt(pos);
        switch (c) {
            case '{':
                return object();
            case '[':
                return array();
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            case 'N':
                return literal("NaN", Double.NaN);
            case 'I':
                return literal("Infinity", Double.POSITIVE_INFINITY);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw error("unexpected character '" + c + "'");
        }
    }

    private Map<String, Object> object() {
        Map<String, Object> out = new LinkedHashMap<>();
        pos++;
        skipSpace();
        if (peek() == '}') {
            pos++;
            return out;
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw error("expected a quoted key");
            }
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            out.put(key, value());
            skipSpace();
            char c = next();
            if (c == '}') {
                return out;
            }
            if (c != ',') {
                pos--;
                throw error("expected ',' or '}'");
            }
        }
    }

    private List<Object> array() {
        List<Object> out = new ArrayList<>();
        pos++;
        skipSpace();
        if (peek() == ']') {
            pos++;
            return out;
        }
        while (true) {
            skipSpace();
            out.add(value());
            skipSpace();
            char c = next();
            if (c == ']') {
                return out;
            }
            if (c != ',') {
                pos--;
                throw error("expected ',' or ']'");
            }
        }
    }

    private String string() {
        pos++;
        StringBuilder out = new StringBuilder();
        while (true) {
            char c = next();
            if (c == '"') {
                return out.toString();
            }
            if (c < 0x20) {
                pos--;
                throw error("control character in a string");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char e = next();
            switch (e) {
                case '"': out.append('"'); break;
                case '\\': out.append('\\'); break;
                case '/': out.append('/'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'u':
                    if (pos + 4 > text.length()) {
                        throw error("truncated \\u escape");
                    }
                    try {
                        out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                    } catch (NumberFormatException ex) {
                        throw error("bad \\u escape");
                    }
                    pos += 4;
                    break;
                default:
                    pos--;
                    throw error("bad escape '\\" + e + "'");
            }
        }
    }

    private Double number() {
        int start = pos;
        if (peek() == '-') {
            pos++;
            if (text.startsWith("Infinity", pos)) {
                pos += "Infinity".length();
                return Double.NEGATIVE_INFINITY;
            }
        }
        while (pos < text.length() && "0123456789+-.eE".indexOf(text.charAt(pos)) >= 0) {
            pos++;
        }
        try {
            return Double.valueOf(text.substring(start, pos));
        } catch (NumberFormatException e) {
            pos = start;
            throw error("bad number");
        }
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, pos)) {
            throw error("unexpected character '" + text.charAt(pos) + "'");
        }
        pos += word.length();
        return value;
    }

    private void expect(char c) {
        if (next() != c) {
            pos--;
            throw error("expected '" + c + "'");
        }
    }

    private char peek() {
        return pos < text.length() ? text.charAt(pos) : '\0';
    }

    private char next() {
        if (pos >= text.length()) {
            throw error("unexpected end of input");
        }
        return text.charAt(pos++);
    }

    private void skipSpace() {
        while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
            pos++;
        }
    }

    private BundleException error(String message) {
        int line = 1;
        int column = 1;
        for (int i = 0; i < Math.min(pos, text.length()); i++) {
            if (text.charAt(i) == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        return new BundleException(message + " at line " + line + " column " + column);
    }
}
