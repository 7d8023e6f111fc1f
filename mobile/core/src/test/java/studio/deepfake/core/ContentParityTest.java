package studio.deepfake.core;

import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.junit.Test;

/**
 * Step 0 of the rule against Python: system property {@code content.dir} names a folder of PNGs
 * (decoded images, lossless); this port's luma standard deviation and problem sentence for each
 * go to {@code content.report} as JSON, which tests/test_mobile_jvm.py compares with {@code
 * core.content}. Without the folder the test is skipped, unless {@code -Dparity.required=true}.
 */
public class ContentParityTest {
    @Test
    public void contentCheckOfEachImage() throws Exception {
        String dir = System.getProperty("content.dir", "");
        String message = "set -Dcontent.dir to run this parity check";
        if (Boolean.getBoolean("parity.required")) {
            assertTrue(message, !dir.isEmpty());
        }
        assumeTrue(message, !dir.isEmpty());
        File[] pngs = new File(dir).listFiles((folder, name) -> name.endsWith(".png"));
        assertTrue("no PNG in " + dir, pngs != null && pngs.length > 0);
        Arrays.sort(pngs);
        List<String> rows = new ArrayList<>();
        for (File png : pngs) {
            RgbImage image = GoldenParityTest.readPng(png);
            String problem = ContentCheck.problem(image);
            rows.add(String.format(Locale.ROOT, "\"%s\": {\"luma_std\": %.17g, \"problem\": %s}",
                    png.getName(), ContentCheck.lumaStd(image),
                    problem == null ? "null" : GoldenParityTest.jsonString(problem)));
        }
        String report = System.getProperty("content.report");
        if (report != null) {
            String json = "{" + String.join(", ", rows) + "}";
            Files.write(new File(report).toPath(), json.getBytes(StandardCharsets.UTF_8));
        }
    }
}
