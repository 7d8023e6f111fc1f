"""Small preview images of data set files, cached on disk by content hash.

A thumbnail is a JPEG no larger than ``size`` x ``size`` at
``cache_dir / sha[:2] / f"{sha}-{size}.jpg"``: identical files share one, a renamed file keeps
its, and a stale one is impossible because the key is the content. Decoding follows
:func:`core.preprocess.to_rgb` (EXIF orientation, alpha on white), with Pillow's JPEG draft
mode so a 12-megapixel photo decodes at 1/8 scale. Safe to call from many threads at once:
files are written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

from core.preprocess import ImageDecodeError, open_image, to_rgb

DEFAULT_SIZE = 96
QUALITY = 85


def thumbnail_path(cache_dir: Path, sha256: str, size: int = DEFAULT_SIZE) -> Path:
    """Where the thumbnail of the file with this SHA-256 lives (it may not exist yet)."""
    return Path(cache_dir) / sha256[:2] / f"{sha256}-{size}.jpg"


def lookup(cache_dir: Path, sha256: str, size: int = DEFAULT_SIZE) -> Path | None:
    """The cached thumbnail, or ``None``."""
    path = thumbnail_path(cache_dir, sha256, size)
    return path if path.is_file() else None


def make_thumbnail(
    source: Path, sha256: str, cache_dir: Path, size: int = DEFAULT_SIZE
) -> Path | None:
    """The thumbnail of ``source`` (made now unless cached); ``None`` if it cannot be decoded."""
    cached = lookup(cache_dir, sha256, size)
    if cached:
        return cached
    target = thumbnail_path(cache_dir, sha256, size)
    try:
        with open_image(source) as image:  # too many pixels: ImageDecodeError, no thumbnail
            image.draft("RGB", (size, size))
            image.load()
            small = Image.fromarray(to_rgb(image))
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        ImageDecodeError,
        Image.DecompressionBombError,
    ):
        return None
    small.thumbnail((size, size), Image.Resampling.BILINEAR)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".thumb-", suffix=".jpg", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            small.save(out, "JPEG", quality=QUALITY)
        os.replace(temporary, target)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return None
    return target
