package studio.deepfake.app

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import studio.deepfake.core.BundleMeta
import studio.deepfake.core.Decision
import studio.deepfake.core.Heatmap
import studio.deepfake.core.Preprocessor
import studio.deepfake.core.RgbImage
import studio.deepfake.core.Verdict
import java.io.Closeable
import java.io.File
import java.nio.FloatBuffer

/**
 * One loaded bundle: the shared Java core preprocesses and decides, onnxruntime-android runs
 * `model.onnx`. Thread-confined: call [check] from one background thread.
 */
class Detector(dir: File, val meta: BundleMeta) : Closeable {
    /** A verdict, what the model saw (ARGB, `size x size`) and whether a heatmap is drawn on it. */
    class Result(val verdict: Verdict, val view: IntArray, val size: Int, val heatmap: Boolean)

    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = env.createSession(
        File(dir, meta.model.file).path,
        OrtSession.SessionOptions().apply { setIntraOpNumThreads(2) },
    )
    private val preprocessor = Preprocessor(meta.preprocess)
    private val decision = Decision.of(meta)

    fun check(image: RgbImage): Result {
        val size = meta.preprocess.inputSize
        val hwc = preprocessor.geometry(image)
        val input = preprocessor.normalize(hwc)
        val shape = longArrayOf(1, 3, size.toLong(), size.toLong())
        OnnxTensor.createTensor(env, FloatBuffer.wrap(input), shape).use { tensor ->
            session.run(mapOf(meta.model.input to tensor)).use { outputs ->
                val logits = (outputs.get("logits").get() as OnnxTensor).floatBuffer.toArray()
                val verdict = decision.decide(logits)
                val cam = if (meta.hasCam()) outputs.get("cam").orElse(null) as OnnxTensor? else null
                if (cam == null) {
                    return Result(verdict, opaque(hwc), size, heatmap = false)
                }
                val map = Heatmap.of(cam.floatBuffer.toArray(), cam.info.shape, verdict.labelIndex, size, size)
                return Result(verdict, map.overlay(hwc, 0.5f), size, heatmap = true)
            }
        }
    }

    override fun close() {
        session.close()
    }

    private companion object {
        fun FloatBuffer.toArray(): FloatArray = FloatArray(remaining()).also { get(it) }

        fun opaque(hwc: FloatArray): IntArray = IntArray(hwc.size / 3) { i ->
            var argb = 0xFF
            for (c in 0 until 3) {
                argb = argb shl 8 or (hwc[i * 3 + c] + 0.5f).toInt().coerceIn(0, 255)
            }
            argb
        }
    }
}
