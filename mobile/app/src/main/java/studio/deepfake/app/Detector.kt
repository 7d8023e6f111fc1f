package studio.deepfake.app

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import studio.deepfake.core.BundleException
import studio.deepfake.core.BundleMeta
import studio.deepfake.core.Decision
import studio.deepfake.core.GoldenCheck
import studio.deepfake.core.Heatmap
import studio.deepfake.core.Preprocessor
import studio.deepfake.core.RgbImage
import studio.deepfake.core.Verdict
import java.io.Closeable
import java.io.File
import java.nio.FloatBuffer

/**
 * One loaded bundle: the shared Java core preprocesses and decides, onnxruntime-android runs
 * `model.onnx`. Opening it proves it works on this phone: the model loads and reproduces the
 * bundle's golden vectors, or the constructor throws (a [BundleException] for a mismatch) and
 * leaves nothing open. `dir` is only read while constructing (the bundle folder may be renamed
 * afterwards). Thread-confined: use it from one background thread.
 */
class Detector(dir: File, val meta: BundleMeta) : Closeable {
    /** A verdict, what the model saw (ARGB, `size x size`) and whether a heatmap is drawn on it. */
    class Result(val verdict: Verdict, val view: IntArray, val size: Int, val heatmap: Boolean)

    private val preprocessor = Preprocessor(meta.preprocess)
    private val decision = Decision.of(meta)
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = OrtSession.SessionOptions().use { options ->
        options.setIntraOpNumThreads(2)
        env.createSession(File(dir, meta.model.file).path, options)
    }

    /**
     * The bundle's golden vectors run on this phone when it was opened; null when the bundle has
     * none. Their verdicts always agree (a bundle that decides otherwise here is refused); the
     * model's numbers may differ beyond the tolerance (INT8 kernels differ between processors).
     */
    val golden: GoldenCheck.Result? = try {
        verifyGolden(dir)
    } catch (e: Throwable) {
        session.close()
        throw e
    }

    /** Checks one decoded image: the whole decision rule, step 0 (too small or uniform) included. */
    fun check(image: RgbImage): Result {
        val size = meta.preprocess.inputSize
        val hwc = preprocessor.geometry(image)
        val shape = longArrayOf(1, 3, size.toLong(), size.toLong())
        return infer(preprocessor.normalize(hwc), shape) { outputs ->
            val verdict = decision.decide(image, outputs.floats("logits"))
            val cam = if (meta.hasCam()) outputs.get("cam").orElse(null) as OnnxTensor? else null
            if (cam == null) {
                Result(verdict, opaque(hwc), size, heatmap = false)
            } else {
                val map = Heatmap.of(cam.floatBuffer.toArray(), cam.info.shape, verdict.labelIndex, size, size)
                Result(verdict, map.overlay(hwc, 0.5f), size, heatmap = true)
            }
        }
    }

    /**
     * Runs the bundle's golden vectors on this phone: this app's decoding and preprocessing of
     * each golden PNG, onnxruntime-android's logits and the decision rule, against Python's.
     */
    private fun verifyGolden(dir: File): GoldenCheck.Result? {
        if (meta.golden == null) {
            return null
        }
        val check = GoldenCheck.run(
            dir,
            meta,
            { png -> readPng(png) },
            { vector, input -> infer(input, vector.shape.map { it.toLong() }.toLongArray()) { it.floats("logits") } },
        )
        if (!check.decisionsAgree()) {
            throw BundleException(
                "the model does not reproduce its golden vectors on this phone: " +
                    "${check.summary()} (${check.failures.first()})",
            )
        }
        return check // numbers beyond tolerance with the same verdicts: kept, and said so
    }

    override fun close() {
        session.close()
    }

    private fun <T> infer(input: FloatArray, shape: LongArray, read: (OrtSession.Result) -> T): T =
        OnnxTensor.createTensor(env, FloatBuffer.wrap(input), shape).use { tensor ->
            session.run(mapOf(meta.model.input to tensor)).use(read)
        }

    private companion object {
        fun FloatBuffer.toArray(): FloatArray = FloatArray(remaining()).also { get(it) }

        fun OrtSession.Result.floats(name: String): FloatArray =
            (get(name).orElseThrow { BundleException("the model has no \"$name\" output") } as OnnxTensor)
                .floatBuffer.toArray()

        fun readPng(png: File): RgbImage {
            val options = BitmapFactory.Options().apply {
                inPreferredConfig = Bitmap.Config.ARGB_8888
                inPremultiplied = false // RgbImage.fromArgb composites straight (unpremultiplied) ARGB
                inScaled = false
            }
            val bitmap = BitmapFactory.decodeFile(png.path, options)
                ?: throw BundleException("cannot decode the golden image ${png.name}")
            val pixels = IntArray(bitmap.width * bitmap.height)
            bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
            return RgbImage.fromArgb(pixels, bitmap.width, bitmap.height).also { bitmap.recycle() }
        }

        fun opaque(hwc: FloatArray): IntArray = IntArray(hwc.size / 3) { i ->
            var argb = 0xFF
            for (c in 0 until 3) {
                argb = argb shl 8 or (hwc[i * 3 + c] + 0.5f).toInt().coerceIn(0, 255)
            }
            argb
        }
    }
}
