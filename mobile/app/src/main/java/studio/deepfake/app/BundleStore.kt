package studio.deepfake.app

import android.content.Context
import android.net.Uri
import androidx.documentfile.provider.DocumentFile
import studio.deepfake.core.BundleException
import studio.deepfake.core.BundleFiles
import studio.deepfake.core.BundleMeta
import java.io.File
import java.io.FileInputStream

/**
 * Where the app keeps its model bundle: `filesDir/bundle`, filled from the APK's assets (the
 * default bundle copied in at build time), a folder the user picks, or a `.zip` the user picks.
 * A new bundle is unpacked into a staging folder and verified (format, version, model sha256)
 * before it replaces the current one, so a bad pick never breaks a working app.
 */
class BundleStore(private val context: Context) {
    private val current = File(context.filesDir, "bundle")
    private val staging = File(context.filesDir, "bundle.staging")

    /** The installed bundle's folder and metadata, installing the default one on first use. */
    fun load(): Pair<File, BundleMeta>? {
        if (!File(current, BundleMeta.FILE_NAME).isFile && !installFromAssets()) {
            return null
        }
        return current to verify(current)
    }

    /** Installs the bundle in a folder picked with ACTION_OPEN_DOCUMENT_TREE. */
    fun installFromTree(tree: Uri): Pair<File, BundleMeta> = install { dest ->
        val root = DocumentFile.fromTreeUri(context, tree)
            ?: throw BundleException("cannot open the picked folder")
        copyTree(root, dest)
    }

    /** Installs the bundle in a `.zip` picked with ACTION_OPEN_DOCUMENT. */
    fun installFromZip(zip: Uri): Pair<File, BundleMeta> = install { dest ->
        val input = context.contentResolver.openInputStream(zip)
            ?: throw BundleException("cannot open the picked file")
        input.use { BundleFiles.unzip(it, dest) }
    }

    private fun installFromAssets(): Boolean {
        val files = context.assets.list(ASSET_DIR).orEmpty()
        if (BundleMeta.FILE_NAME !in files) {
            return false
        }
        install { dest -> copyAssets(ASSET_DIR, dest) }
        return true
    }

    private fun install(fill: (File) -> Unit): Pair<File, BundleMeta> {
        staging.deleteRecursively()
        staging.mkdirs()
        try {
            fill(staging)
            val root = BundleFiles.findBundleRoot(staging)
            verify(root)
            current.deleteRecursively()
            if (!root.renameTo(current)) {
                throw BundleException("cannot install the bundle in ${current.path}")
            }
        } finally {
            staging.deleteRecursively()
        }
        return current to verify(current)
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
