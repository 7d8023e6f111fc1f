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
 * native-resolution traces). At the bound the bitmap takes 52 MB (native memory) and the app's
 * heap at most two 39 MB RGB copies (the decoded one and, for a rotated photo, the oriented
 * one): pixels are converted row by row, never as one 52 MB `IntArray`.
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
        val orientation = open(uri).use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        return Decoded(decode(uri, sample).oriented(orientation), sample)
    }

    /**
     * Decodes at 1/[sample] size to RGB; the bitmap is recycled before the caller makes any
     * further copy.
     */
    private fun decode(uri: Uri, sample: Int): RgbImage {
        val options = BitmapFactory.Options().apply {
            inSampleSize = sample
            inPreferredConfig = Bitmap.Config.ARGB_8888
            // Straight ARGB, as RgbImage.fromArgb expects: a premultiplied bitmap would lose
            // the colour precision of semi-transparent pixels before getPixels un-premultiplies.
            inPremultiplied = false
            inScaled = false // no density scaling (it would misbehave on unpremultiplied pixels)
        }
        val bitmap = open(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw BundleException("damaged image (the decoder gave up)")
        return try {
            val width = bitmap.width
            val height = bitmap.height
            val rgb = ByteArray(width * height * 3)
            val row = IntArray(width)
            for (y in 0 until height) {
                bitmap.getPixels(row, 0, width, 0, y, width, 1)
                System.arraycopy(RgbImage.fromArgb(row, width, 1).rgb, 0, rgb, y * width * 3, width * 3)
            }
            RgbImage(width, height, rgb)
        } finally {
            bitmap.recycle()
        }
    }

    private fun open(uri: Uri) = context.contentResolver.openInputStream(uri)
        ?: throw BundleException("cannot open $uri")

    private companion object {
        /**
         * 13 MP: the usual 12 MP photos (4000x3000, 4032x3024, 4080x3072) decode at full size;
         * 48-200 MP ones at 1/2 to 1/4 (at most 13 MP: a 52 MB bitmap, 39 MB per RGB copy).
         */
        const val MAX_PIXELS = 13_000_000L
    }
}
