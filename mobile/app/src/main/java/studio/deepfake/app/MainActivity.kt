package studio.deepfake.app

import android.content.ActivityNotFoundException
import android.content.Intent
import android.graphics.Bitmap
import android.net.Uri
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.content.FileProvider
import studio.deepfake.core.BundleException
import studio.deepfake.core.BundleMeta
import studio.deepfake.core.Verdict
import java.io.File
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The checker: load a bundle (built-in, folder or zip), take or pick a photo, show real / fake
 * (generator) / unknown with the calibrated confidence and, when the bundle has a `cam`
 * output, the heatmap over the part of the image the model saw.
 *
 * Decoding, preprocessing and inference run on one background thread; views are only touched
 * on the UI thread.
 */
class MainActivity : ComponentActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var detector: Detector? = null
    private var pendingPhoto: Uri? = null

    private lateinit var bundleInfo: TextView
    private lateinit var verdictText: TextView
    private lateinit var confidenceText: TextView
    private lateinit var explanationText: TextView
    private lateinit var modelView: ImageView
    private lateinit var modelViewCaption: TextView

    private val pickImage = registerForActivityResult(ActivityResultContracts.GetContent()) { uri ->
        uri?.let(::checkImage)
    }
    private val takePhoto = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        pendingPhoto?.takeIf { saved }?.let(::checkImage)
    }
    private val pickFolder = registerForActivityResult(ActivityResultContracts.OpenDocumentTree()) { uri ->
        uri?.let { tree -> loadBundle { BundleStore(this).installFromTree(tree) } }
    }
    private val pickZip = registerForActivityResult(ActivityResultContracts.OpenDocument()) { uri ->
        uri?.let { zip -> loadBundle { BundleStore(this).installFromZip(zip) } }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        bundleInfo = findViewById(R.id.bundle_info)
        verdictText = findViewById(R.id.verdict)
        confidenceText = findViewById(R.id.confidence)
        explanationText = findViewById(R.id.explanation)
        modelView = findViewById(R.id.model_view)
        modelViewCaption = findViewById(R.id.model_view_caption)

        findViewById<Button>(R.id.pick_image).setOnClickListener { pickImage.launch("image/*") }
        findViewById<Button>(R.id.take_photo).setOnClickListener { launchCamera() }
        findViewById<Button>(R.id.load_folder).setOnClickListener { pickFolder.launch(null) }
        findViewById<Button>(R.id.load_zip).setOnClickListener {
            pickZip.launch(arrayOf("application/zip", "application/octet-stream"))
        }
        loadBundle { BundleStore(this).load() }
    }

    override fun onDestroy() {
        worker.execute { detector?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun launchCamera() {
        val dir = File(cacheDir, "photos").apply { mkdirs() }
        val uri = FileProvider.getUriForFile(this, "$packageName.photos", File(dir, "photo.jpg"))
        pendingPhoto = uri
        try {
            takePhoto.launch(uri)
        } catch (e: ActivityNotFoundException) {
            showError(getString(R.string.no_camera))
        }
    }

    /** Opens a bundle in the background, replacing the current detector when it is valid. */
    private fun loadBundle(open: () -> Pair<File, BundleMeta>?) {
        worker.execute {
            val message = try {
                val loaded = open()
                if (loaded == null) {
                    getString(R.string.no_bundle)
                } else {
                    detector?.close()
                    val opened = Detector(loaded.first, loaded.second)
                    detector = opened
                    describe(loaded.second) + "\n" + goldenLine(opened)
                }
            } catch (e: BundleException) {
                "Bundle refused: ${e.message}"
            } catch (e: Exception) {
                "Bundle could not be loaded: ${e.message}"
            }
            runOnUiThread { bundleInfo.text = message }
        }
    }

    private fun checkImage(uri: Uri) {
        verdictText.text = getString(R.string.working)
        confidenceText.text = ""
        explanationText.text = ""
        worker.execute {
            val current = detector
            if (current == null) {
                runOnUiThread { showError(getString(R.string.no_bundle)) }
                return@execute
            }
            try {
                val decoded = ImageLoader(this).load(uri)
                val result = current.check(decoded.image)
                val note = if (decoded.downsampled > 1) {
                    " (large photo: decoded at 1/${decoded.downsampled} size)"
                } else {
                    ""
                }
                runOnUiThread { show(result, note) }
            } catch (e: BundleException) {
                runOnUiThread { showError(e.message ?: "cannot check this image") }
            } catch (e: Exception) {
                runOnUiThread { showError("cannot check this image: ${e.message}") }
            }
        }
    }

    private fun show(result: Detector.Result, note: String) {
        val verdict = result.verdict
        verdictText.text = when (verdict.kind) {
            Verdict.Kind.REAL -> "Real photo"
            Verdict.Kind.FAKE -> "AI-generated (${verdict.label})"
            else -> "Unknown"
        }
        confidenceText.text = String.format(
            Locale.getDefault(), "Confidence %.1f%% · score %.3f (threshold %.3f)",
            100 * verdict.confidence, verdict.score, verdict.threshold,
        )
        explanationText.text = verdict.explanation + note
        val bitmap = Bitmap.createBitmap(result.view, result.size, result.size, Bitmap.Config.ARGB_8888)
        modelView.setImageBitmap(bitmap)
        modelViewCaption.setText(if (result.heatmap) R.string.heatmap_caption else R.string.model_view_caption)
    }

    private fun showError(message: String) {
        verdictText.text = message
        confidenceText.text = ""
        explanationText.text = ""
    }

    /** The bundle's golden vectors run on this phone: parity with the desktop, or why not. */
    private fun goldenLine(detector: Detector): String = try {
        val check = detector.verifyGolden()
        check.summary() + check.failures.firstOrNull()?.let { " ($it)" }.orEmpty()
    } catch (e: Exception) {
        "golden vectors not checked: ${e.message}"
    }

    private fun describe(meta: BundleMeta): String {
        val fakes = meta.classNames.filter { it != meta.realClass }
        val calibration = meta.calibration
        val target = String.format(Locale.ROOT, "%.0f%%", 100 * calibration.targetRisk)
        val risk = when {
            calibration.targetRisk.isNaN() -> ""
            calibration.reached -> ", threshold chosen for ≤$target errors"
            else -> ", the $target error target was out of reach"
        }
        return "${meta.arch} ${meta.model.precision ?: "fp32"}: ${meta.realClass} vs " +
            "${fakes.joinToString()}, ${meta.preprocess.inputSize}px ${meta.preprocess.resizeMode.jsonName}$risk"
    }
}
