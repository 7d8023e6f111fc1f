package studio.deepfake.app

import android.content.Context
import android.net.Uri
import androidx.documentfile.provider.DocumentFile
import studio.deepfake.core.BundleException
import studio.deepfake.core.BundleFiles
import studio.deepfake.core.BundleMeta
import java.io.Closeable
import java.io.File
import java.io.FileInputStream

/**
 * Where the app keeps its model bundle: `filesDir/bundle`, filled from the APK's assets (the
 * default bundle copied in at build time), a folder the user picks, or a `.zip` the user picks.
 *
 * A new bundle is unpacked into a staging folder, verified (format, version, model sha256) and
 * opened there by the caller's `open` (the model loads and reproduces its golden vectors)
 * before it replaces the current one ([BundleFiles.replace]: the current folder is renamed to a
 * backup, the new one renamed in, then the backup deleted; renamed back when the new one cannot
 * be moved in, or by [BundleFiles.recover] on the next start when the app was stopped in
 * between). A bad pick never breaks a working app.
 * `open` must not keep reading the folder it is given once it returns: it is renamed.
 */
class BundleStore(private val context: Context) {
    private val current = File(context.filesDir, "bundle")
    private val staging = File(context.filesDir, "bundle.staging")
    private val backup = File(context.filesDir, "bundle.backup")

    /**
     * The installed bundle, opened with [open], installing the default one on first use; null
     * when there is none.
     */
    fun <T : Closeable> load(open: (File, BundleMeta) -> T): T? {
        BundleFiles.recover(current, backup)
        if (File(current, BundleMeta.FILE_NAME).isFile) {
            return open(current, verify(current))
        }
        if (BundleMeta.FILE_NAME !in context.assets.list(ASSET_DIR).orEmpty()) {
            return null
        }
        return install(open) { dest -> copyAssets(ASSET_DIR, dest) }
    }

    /** Installs the bundle in a folder picked with ACTION_OPEN_DOCUMENT_TREE. */
    fun <T : Closeable> installFromTree(tree: Uri, open: (File, BundleMeta) -> T): T = install(open) { dest ->
        val root = DocumentFile.fromTreeUri(context, tree)
            ?: throw BundleException("cannot open the picked folder")
        copyTree(root, dest)
    }

    /** Installs the bundle in a `.zip` picked with ACTION_OPEN_DOCUMENT. */
    fun <T : Closeable> installFromZip(zip: Uri, open: (File, BundleMeta) -> T): T = install(open) { dest ->
        val input = context.contentResolver.openInputStream(zip)
            ?: throw BundleException("cannot open the picked file")
        input.use { BundleFiles.unzip(it, dest) }
    }

    /**
     * Fills the staging folder, verifies and opens the bundle there, and only when that worked
     * swaps it in; whatever fails before the swap leaves the current bundle untouched.
     */
    private fun <T : Closeable> install(open: (File, BundleMeta) -> T, fill: (File) -> Unit): T {
        staging.deleteRecursively()
        staging.mkdirs()
        return try {
            fill(staging)
            val root = BundleFiles.findBundleRoot(staging)
            val opened = open(root, verify(root))
            try {
                BundleFiles.replace(root, current, backup)
            } catch (e: Throwable) {
                opened.close()
                throw e
            }
            opened
        } finally {
            staging.deleteRecursively()
        }
    }

    private fun verify(dir: File): BundleMeta {
        val meta = BundleMeta.read(dir)
        val model = File(dir, meta.model.file)
        if (!model.isFile) {
            throw BundleException("the bundle is incomplete: ${meta.model.file} is missing")
        }
        FileInputStream(model).use { meta.verifyModel(it) }
        return meta
    }

    private fun copyAssets(path: String, dest: File) {
        val children = context.assets.list(path).orEmpty()
        if (children.isEmpty()) {
            context.assets.open(path).use { input ->
                dest.outputStream().use { input.copyTo(it) }
            }
            return
        }
        dest.mkdirs()
        for (child in children) {
            copyAssets("$path/$child", File(dest, child))
        }
    }

    private fun copyTree(dir: DocumentFile, dest: File) {
        dest.mkdirs()
        for (child in dir.listFiles()) {
            val name = BundleFiles.isSafeRelative(child.name ?: continue, "file name")
            val target = File(dest, name)
            if (child.isDirectory) {
                copyTree(child, target)
            } else {
                val input = context.contentResolver.openInputStream(child.uri)
                    ?: throw BundleException("cannot read $name")
                input.use { stream -> target.outputStream().use { stream.copyTo(it) } }
            }
        }
    }

    private companion object {
        /** The folder the Gradle task `copyDefaultBundle` fills inside the APK's assets. */
        const val ASSET_DIR = "bundle"
    }
}
