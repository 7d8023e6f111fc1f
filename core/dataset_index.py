"""The facts a data set index keeps about each file, and the SQLite table that holds them.

:func:`analyse_file` reads a file once and returns a :class:`FileFacts`: size, modification time,
SHA-256 of the bytes, Pillow format, width and height, a perceptual hash (``imagehash.phash``) for
near duplicates, a JPEG quality estimate from the quantisation tables, and the decode error when
the file is not a readable image.

Every file is **decoded**, not just its header: reading only headers would be about 3x faster on
small JPEGs but misses truncated files, which would then break training much later, and the
perceptual hash needs the pixels anyway. Decoding follows :func:`core.preprocess.load_image`
(same decompression-bomb limit, EXIF and mode handling, and its error messages), except that a
JPEG whose shorter side is at least ``2 * ANALYSIS_SIDE`` is decoded at 1/2 to 1/8 scale (libjpeg
DCT scaling): the whole stream is still read, so damage is still found, and the hash only looks at
32x32 pixels. Width and height are the stored size (before EXIF rotation).

Measured on the 2-core machine: 0.6-0.9 ms per 32x32 JPEG (cifake; Python overhead dominates),
55 ms per 12-megapixel JPEG (920 ms with a full decode), about 1 s per 12-megapixel PNG.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from core.preprocess import ImageDecodeError, load_image, open_image, to_rgb

SCHEMA_VERSION = 2
"""Bumped when the analysis changes: an index of another version is analysed again."""
ANALYSIS_SIDE = 256
"""Pixels are analysed at about this shorter side: larger JPEGs decode at 1/2-1/8 scale and
larger images of any format are shrunk before the perceptual hash."""

# Luminance table of the IJG reference encoder at quality 50 (any coefficient order: only sums
# are compared).
_IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


@dataclass(frozen=True)
class FileFacts:
    """One row of the ``files`` table. ``error`` is ``None`` for a readable image."""

    relpath: str
    label: str
    bytes: int
    mtime_ns: int
    sha256: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    phash: str | None = None
    jpeg_quality: int | None = None
    error: str | None = None
    split: str | None = None
    """Set by the index (:meth:`core.datasets.DatasetIndex.make_splits`), never by analysis."""


COLUMNS = tuple(f.name for f in fields(FileFacts) if f.name != "split")
"""The analysed columns, in :class:`FileFacts` order (``split`` excluded)."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    relpath TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    format TEXT,
    phash TEXT,
    jpeg_quality INTEGER,
    error TEXT,
    split TEXT
);
CREATE INDEX IF NOT EXISTS files_label ON files (label, relpath);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha256);
CREATE INDEX IF NOT EXISTS files_split ON files (split);
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
"""

UPSERT = (
    f"INSERT INTO files ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (relpath) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "relpath")
    + ", split = NULL"
)


def connect(db_path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A new connection; open one per thread (SQLite connections are not shared across threads).

    With ``create`` the folder, the WAL journal and the schema are set up (the writer does this),
    and the rows of an index made by another :data:`SCHEMA_VERSION` are dropped; readers never
    write, so they do not wait on a running index build.
    """
    if create:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=30.0)
    if create:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version != str(SCHEMA_VERSION):  # facts of an older analysis: start again
            conn.execute("DELETE FROM files")
            conn.execute("DELETE FROM meta WHERE key != 'root'")
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            conn.commit()
    return conn


def row_values(facts: FileFacts) -> tuple:
    """The values of ``facts`` in :data:`COLUMNS` order, for :data:`UPSERT`."""
    return astuple(facts)[: len(COLUMNS)]


def estimate_jpeg_quality(tables: dict[int, list[int]] | None) -> int | None:
    """The IJG quality (1-100) whose luminance table best matches ``tables[0]``, or ``None``.

    The IJG encoder scales its reference table by ``s = 5000 / q`` (q < 50) or ``200 - 2q``, so
    ``s`` is about ``100 * sum(table) / sum(reference)``; invert that for ``q``.
    """
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    scale = 100.0 * sum(tables[0]) / sum(_IJG_LUMA)
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(min(100, max(1, round(quality))))


def analyse_file(root: Path, relpath: str, label: str) -> FileFacts:
    """Read, hash and decode ``root / relpath``; never raises for a bad image."""
    path = root / relpath
    try:
        stat = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        return FileFacts(relpath, label, 0, 0, "", error=f"cannot read ({exc.strerror or exc})")
    base = {
        "relpath": relpath,
        "label": label,
        "bytes": len(data),
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if not data:
        return FileFacts(**base, error="file is empty")
    try:
        rgb, fmt, size, quality = _decode(data)
    except ImageDecodeError as exc:
        return FileFacts(**base, error=str(exc).removeprefix("<bytes>: "))
    return FileFacts(
        **base,
        width=size[0],
        height=size[1],
        format=fmt,
        phash=perceptual_hash(rgb),
        jpeg_quality=quality,
    )


def _decode(data: bytes) -> tuple[np.ndarray, str | None, tuple[int, int], int | None]:
    """Decoded RGB pixels, format, stored ``(width, height)`` and JPEG quality of an image.

    Large JPEGs take the fast path (see the module docstring); anything else, and anything the
    fast path fails on, goes through :func:`core.preprocess.load_image`, whose ImageDecodeError
    names the problem.
    """
    fmt = size = quality = None
    try:
        with open_image(io.BytesIO(data), "<data>") as image:  # too many pixels: an error
            fmt, size = image.format, image.size
            if fmt == "JPEG":
                quality = estimate_jpeg_quality(getattr(image, "quantization", None))
                if min(image.size) >= 2 * ANALYSIS_SIDE:
                    image.draft("RGB", (ANALYSIS_SIDE, ANALYSIS_SIDE))
                    image.load()
                    return to_rgb(image), fmt, size, quality
    except Exception:  # load_image below raises the error, with its reason
        pass
    rgb = load_image(data)
    return rgb, fmt, size or (rgb.shape[1], rgb.shape[0]), quality


def perceptual_hash(rgb: np.ndarray) -> str:
    """``imagehash.phash`` as 16 hex digits, of the image shrunk by an integer factor to a
    shorter side of :data:`ANALYSIS_SIDE` or more first (the hash only sees 32x32 pixels)."""
    image = Image.fromarray(rgb)
    factor = min(image.size) // ANALYSIS_SIDE
    if factor > 1:
        image = image.reduce(factor)
    return str(imagehash.phash(image))
