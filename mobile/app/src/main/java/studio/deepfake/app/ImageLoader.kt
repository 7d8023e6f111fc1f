package studio.deepfake.app

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import studio.deepfake.core.BundleException
import studio.deepfake.core.RgbImage

/**
 * Step 1 of the preprocessing contract on Android: decode to 8-bit RGB with the EXIF orientation
 * applied (as `core.preprocess.load_image` does with Pillow's `exif_transpose`).
 *
 * Images above [MAX_PIXELS] are decoded at a power-of-two reduction to bound memory; the
 * [Decoded.downsampled] flag lets the UI say so (it matters for `crop` bundles, which look at
 * native-resolution traces).
 */
class ImageLoader(private val context: Context) {
    /** A decoded image and whether it had to be reduced while decoding. */
    class Decoded(val image: RgbImage, val downsampled: Int)

    fun load(uri: Uri): Decoded {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        open(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw BundleException("not an image (unknown or unsupported format)")
        }
        var sample = 1
        while (bounds.outWidth.toLong() * bounds.outHeight / (sample.toLong() * sample) > MAX_PIXELS) {
            sample *= 2
        }
        val options = BitmapFactory.Options().apply {
            inSampleSize = sample
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val decoded = open(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw BundleException("damaged image (the decoder gave up)")
        val oriented = applyOrientation(decoded, open(uri).use { ExifInterface(it) })
        val pixels = IntArray(oriented.width * oriented.height)
        oriented.getPixels(pixels, 0, oriented.width, 0, 0, oriented.width, oriented.height)
        val image = RgbImage.fromArgb(pixels, oriented.width, oriented.height)
        if (oriented !== decoded) oriented.recycle()
        decoded.recycle()
        return Decoded(image, sample)
    }

    private fun open(uri: Uri) = context.contentResolver.openInputStream(uri)
        ?: throw BundleException("cannot open $uri")

    private companion object {
        const val MAX_PIXELS = 24_000_000L

        /** Pillow's exif_transpose as a pixel-exact matrix (no filtering). */
        fun applyOrientation(bitmap: Bitmap, exif: ExifInterface): Bitmap {
            val matrix = Matrix()
            when (exif.getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)) {
                ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> matrix.setScale(-1f, 1f)
                ExifInterface.ORIENTATION_ROTATE_180 -> matrix.setRotate(180f)
                ExifInterface.ORIENTATION_FLIP_VERTICAL -> matrix.setScale(1f, -1f)
                ExifInterface.ORIENTATION_TRANSPOSE -> { matrix.setRotate(90f); matrix.postScale(-1f, 1f) }
                ExifInterface.ORIENTATION_ROTATE_90 -> matrix.setRotate(90f)
                ExifInterface.ORIENTATION_TRANSVERSE -> { matrix.setRotate(-90f); matrix.postScale(-1f, 1f) }
                ExifInterface.ORIENTATION_ROTATE_270 -> matrix.setRotate(-90f)
                else -> return bitmap
            }
            return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, false)
        }
    }
}
