package studio.deepfake.app

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import studio.deepfake.core.BundleException
import studio.deepfake.core.RgbImage

/**
 * Step 1 of the preprocessing contract on Android: decode to 8-bit RGB (transparency on white,
 * [RgbImage.fromArgb]) with the EXIF orientation undone ([RgbImage.oriented]), as
 * `core.preprocess.load_image` does with Pillow; both core steps are parity-tested on the JVM.
 *
 * Images above [MAX_PIXELS] are decoded at a power-of-two reduction to bound memory; the
 * [Decoded.downsampled] factor lets the UI say so (it matters for `crop` bundles, which look at
 * native-resolution traces).
 */
class ImageLoader(private val context: Context) {
    /** A decoded image and the factor it was reduced by while decoding (1: full size). */
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
        val bitmap = open(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw BundleException("damaged image (the decoder gave up)")
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val image = RgbImage.fromArgb(pixels, bitmap.width, bitmap.height)
        bitmap.recycle()
        val orientation = open(uri).use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        return Decoded(image.oriented(orientation), sample)
    }

    private fun open(uri: Uri) = context.contentResolver.openInputStream(uri)
        ?: throw BundleException("cannot open $uri")

    private companion object {
        const val MAX_PIXELS = 24_000_000L
    }
}
