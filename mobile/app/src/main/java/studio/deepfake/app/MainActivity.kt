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
        uri?.let { tree -> loadBundle { store -> store.installFromTree(tree, ::Detector) } }
    }
    private val pickZip = registerForActivityResult(ActivityResultContracts.OpenDocument()) { uri ->
        uri?.let { zip -> loadBundle { store -> store.installFromZip(zip, ::Detector) } }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        // The camera app may run while this activity is destroyed: its result needs the uri.
        pendingPhoto = savedInstanceState?.getString(KEY_PENDING_PHOTO)?.let(Uri::parse)
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
            pickZip.launch(arrayOf("application/zip", "application/x-zip-compressed", "application/octet-stream"))
        }
        loadBundle { store -> store.load(::Detector) }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        pendingPhoto?.let { outState.putString(KEY_PENDING_PHOTO, it.toString()) }
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

    /**
     * Opens a bundle in the background (model loaded, golden vectors reproduced) and only then
     * makes it the current detector, closing the previous one; a bundle that fails to open
     * leaves the previous one in use.
     */
    private fun loadBundle(open: (BundleStore) -> Detector?) {
        worker.execute {
            val message = try {
                val opened = open(BundleStore(this))
                if (opened == null) {
                    getString(R.string.no_bundle)
                } else {
                    val previous = detector
                    detector = opened
                    previous?.close()
                    describe(opened.meta) + "\n" + goldenLine(opened)
                }
            } catch (e: BundleException) {
                "Bundle refused: ${e.message}" + stillInUse()
            } catch (e: OutOfMemoryError) {
                "Bundle could not be loaded: not enough memory on this phone" + stillInUse()
            } catch (e: Exception) {
                "Bundle could not be loaded: ${e.message}" + stillInUse()
            }
            runOnUiThread { bundleInfo.text = message }
        }
    }

    /** After a refused bundle: the one still in use, if any. Worker thread only. */
    private fun stillInUse(): String = detector?.let { "\nStill using " + describe(it.meta) }.orEmpty()

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
            } catch (e: OutOfMemoryError) {
                // The decoded photo and its copies are unreachable once this is thrown.
                runOnUiThread { showError(getString(R.string.too_large)) }
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
        val problem = verdict.problem
        if (problem != null) {
            // Step 0 (too small, almost uniform): not judged, so no confidence to show.
            confidenceText.text = problem.removePrefix("Unknown: ").replaceFirstChar { it.uppercase() }
            explanationText.text = note.trim()
        } else {
            confidenceText.text = String.format(
                Locale.getDefault(), "Confidence %.1f%% · score %.3f (threshold %.3f)",
                100 * verdict.confidence, verdict.score, verdict.threshold,
            )
            explanationText.text = verdict.explanation + note
        }
        val bitmap = Bitmap.createBitmap(result.view, result.size, result.size, Bitmap.Config.ARGB_8888)
        modelView.setImageBitmap(bitmap)
        modelViewCaption.setText(if (result.heatmap) R.string.heatmap_caption else R.string.model_view_caption)
    }

    private fun showError(message: String) {
        verdictText.text = message
        confidenceText.text = ""
        explanationText.text = ""
    }

    /** The bundle's golden vectors run on this phone (a bundle deciding otherwise was refused). */
    private fun goldenLine(detector: Detector): String {
        val check = detector.golden ?: return "golden vectors not checked: the bundle has none"
        if (check.ok()) {
            return check.summary()
        }
        return check.summary() + " (the same verdicts: this phone's arithmetic differs slightly)"
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

    private companion object {
        const val KEY_PENDING_PHOTO = "pending_photo"
    }
}
