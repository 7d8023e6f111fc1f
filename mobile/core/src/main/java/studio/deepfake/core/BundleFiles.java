package studio.deepfake.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/** File helpers a bundle loader needs on the desktop JVM and on Android alike. */
public final class BundleFiles {
    /** Refuse zips that would unpack to more than this (a zip bomb or not a bundle). */
    public static final long MAX_UNZIPPED_BYTES = 1L << 30;

    private BundleFiles() {
    }

    /** The lowercase hex sha256 of a stream, read to its end. */
    public static String sha256(InputStream in) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is not available", e);
        }
        byte[] buffer = new byte[1 << 16];
        for (int n; (n = in.read(buffer)) > 0; ) {
            digest.update(buffer, 0, n);
        }
        StringBuilder hex = new StringBuilder();
        for (byte b : digest.digest()) {
            hex.append(String.format("%02x", b & 0xFF));
        }
        return hex.toString();
    }

    /**
     * Returns {@code path} when it is a plain relative path inside a bundle; throws for absolute
     * paths, drive letters and {@code ..} components.
     */
    public static String isSafeRelative(String path, String what) {
        String normal = path.replace('\\', '/');
        boolean bad = normal.isEmpty() || normal.startsWith("/") || normal.matches("^[A-Za-z]:.*");
        for (String part : normal.split("/")) {
            bad |= part.equals("..");
        }
        if (bad) {
            throw new BundleException(what + " \"" + path + "\" must be a relative path inside the bundle");
        }
        return path;
    }

    /**
     * Unpacks a bundle zip into {@code dest}, refusing members with absolute paths or {@code ..}
     * before writing anything of theirs. Returns the member names written.
     */
    public static List<String> unzip(InputStream zip, File dest) throws IOException {
        List<String> names = new ArrayList<>();
        String root = dest.getCanonicalPath() + File.separator;
        long total = 0;
        byte[] buffer = new byte[1 << 16];
        try (ZipInputStream in = new ZipInputStream(zip)) {
            for (ZipEntry entry; (entry = in.getNextEntry()) != null; ) {
                String name = isSafeRelative(entry.getName(), "zip member");
                File target = new File(dest, name);
                if (!target.getCanonicalPath().startsWith(root)) {
                    throw new BundleException("zip member \"" + name + "\" points outside the bundle");
                }
                if (entry.isDirectory()) {
                    mkdirs(target);
                    continue;
                }
                mkdirs(target.getParentFile());
                try (OutputStream out = new FileOutputStream(target)) {
                    for (int n; (n = in.read(buffer)) > 0; ) {
                        total += n;
                        if (total > MAX_UNZIPPED_BYTES) {
                            throw new BundleException("zip unpacks to more than "
                                    + (MAX_UNZIPPED_BYTES >> 20) + " MiB: not a model bundle");
                        }
                        out.write(buffer, 0, n);
                    }
                }
                names.add(name);
            }
        }
        if (names.isEmpty()) {
            throw new BundleException("the zip is empty or not a zip file");
        }
        return names;
    }

    /**
     * The folder holding {@code bundle.json}: {@code dir} itself, or its only sub-folder (a zip of
     * the folder rather than of its contents).
     */
    public static File findBundleRoot(File dir) {
        if (new File(dir, BundleMeta.FILE_NAME).isFile()) {
            return dir;
        }
        File[] children = dir.listFiles(File::isDirectory);
        if (children != null && children.length == 1
                && new File(children[0], BundleMeta.FILE_NAME).isFile()) {
            return children[0];
        }
        throw new BundleException("no " + BundleMeta.FILE_NAME + " found: not a model bundle");
    }

    /**
     * Makes the verified bundle folder {@code root} the installed one, {@code current}: {@code
     * current} is renamed to {@code backup}, {@code root} renamed to {@code current}, then the
     * backup deleted. When {@code root} cannot be moved in, the backup is renamed back and a
     * {@link BundleException} thrown. Each step is one rename (all three in one folder), so an
     * interruption leaves a whole bundle behind, which {@link #recover} puts back in place.
     */
    public static void replace(File root, File current, File backup) throws IOException {
        recover(current, backup);
        deleteTree(backup);
        if (current.exists() && !current.renameTo(backup)) {
            throw new BundleException("cannot move the current bundle aside to " + backup);
        }
        if (!root.renameTo(current)) {
            if (backup.exists() && !backup.renameTo(current)) {
                throw new BundleException("cannot install the bundle in " + current
                        + ", and the previous one stays in " + backup + " until the next start");
            }
            throw new BundleException("cannot install the bundle in " + current);
        }
        deleteTree(backup);
    }

    /**
     * Finishes a {@link #replace} that was interrupted: restores {@code backup} when {@code
     * current} holds no bundle, deletes it when {@code current} does.
     */
    public static void recover(File current, File backup) throws IOException {
        if (!backup.exists()) {
            return;
        }
        if (new File(current, BundleMeta.FILE_NAME).isFile()) {
            deleteTree(backup);
        } else {
            deleteTree(current);
            if (!backup.renameTo(current)) {
                throw new IOException("cannot restore the bundle " + backup + " to " + current);
            }
        }
    }

    /** Deletes a folder and everything in it (links themselves, never what they point to). */
    public static void deleteTree(File dir) throws IOException {
        Path top = dir.toPath();
        if (!Files.exists(top, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Files.walkFileTree(top, new SimpleFileVisitor<Path>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path folder, IOException e) throws IOException {
                if (e != null) {
                    throw e;
                }
                Files.delete(folder);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    private static void mkdirs(File dir) throws IOException {
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
    }
}
