package studio.deepfake.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void parsesNestedValues() {
        Map<String, Object> obj = Json.parseObject(
                "{\"a\": [1, -2.5e3, true, null], \"b\": {\"c\": \"x\\\"y\\u00e9\\n\"}, \"d\": []}", "t");
        List<Object> a = Json.getList(obj, "a", "t");
        assertEquals(Arrays.asList(1.0, -2500.0, true, null), a);
        assertEquals("x\"y\u00e9\n", Json.getString(Json.getObject(obj, "b", "t"), "c", "t"));
        assertTrue(Json.getList(obj, "d", "t").isEmpty());
    }

    @Test
    public void acceptsPythonNonFiniteNumbers() {
        Map<String, Object> obj = Json.parseObject("{\"auc\": NaN, \"hi\": Infinity, \"lo\": -Infinity}", "t");
        assertTrue(Double.isNaN(Json.getDouble(obj, "auc", "t")));
        assertEquals(Double.POSITIVE_INFINITY, Json.getDouble(obj, "hi", "t"), 0);
        assertEquals(Double.NEGATIVE_INFINITY, Json.getDouble(obj, "lo", "t"), 0);
    }

    @Test
    public void errorsSayWhereAndWhat() {
        BundleException e = assertThrows(BundleException.class,
                () -> Json.parseObject("{\n  \"a\": [1, 2,, 3]\n}", "bundle.json"));
        assertTrue(e.getMessage(), e.getMessage().contains("bundle.json is not valid JSON"));
        assertTrue(e.getMessage(), e.getMessage().contains("line 2"));
        assertThrows(BundleException.class, () -> Json.parse("{\"a\": 1} x"));
        assertThrows(BundleException.class, () -> Json.parse("\"open"));
        Map<String, Object> obj = Json.parseObject("{\"n\": \"3\", \"k\": 2.5}", "meta");
        e = assertThrows(BundleException.class, () -> Json.getInt(obj, "n", "meta"));
        assertEquals("meta: \"n\" must be a number, not the string \"3\"", e.getMessage());
        e = assertThrows(BundleException.class, () -> Json.getInt(obj, "k", "meta"));
        assertTrue(e.getMessage().contains("integer"));
        e = assertThrows(BundleException.class, () -> Json.getString(obj, "missing", "meta"));
        assertEquals("meta has no \"missing\"", e.getMessage());
        assertNull(Json.optInt(obj, "missing", "meta"));
    }
}
