"""core.thumbnails: size, cache by content, EXIF orientation, alpha, bad files, many threads."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from test_datasets_support import add_bad_files, make_image

from core.thumbnails import lookup, make_thumbnail, thumbnail_path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_thumbnail_is_small_cached_and_keyed_by_content(tmp_path: Path) -> None:
    source = make_image(tmp_path / "big.jpg", 1, size=(640, 320), fmt="JPEG", quality=90)
    cache = tmp_path / "cache"
    digest = sha(source)
    assert lookup(cache, digest) is None
    made = make_thumbnail(source, digest, cache, size=96)
    assert made == thumbnail_path(cache, digest, 96) == cache / digest[:2] / f"{digest}-96.jpg"
    with Image.open(made) as thumb:
        assert thumb.size == (96, 48) and thumb.format == "JPEG"
    stamp = made.stat().st_mtime_ns
    source.unlink()  # a cached thumbnail never needs its source again
    assert make_thumbnail(source, digest, cache, size=96) == made
    assert made.stat().st_mtime_ns == stamp and lookup(cache, digest) == made
    assert not list(made.parent.glob(".thumb-*"))


def test_orientation_and_alpha_follow_the_preprocessing_contract(tmp_path: Path) -> None:
    tall = Image.new("RGB", (40, 80), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed 80 wide, 40 high
    tall.save(tmp_path / "rotated.jpg", exif=exif)
    made = make_thumbnail(tmp_path / "rotated.jpg", "a" * 64, tmp_path / "c", size=64)
    with Image.open(made) as thumb:
        assert thumb.size == (64, 32)

    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    made = make_thumbnail(tmp_path / "clear.png", "b" * 64, tmp_path / "c", size=64)
    with Image.open(made) as thumb:
        assert min(thumb.convert("RGB").getpixel((10, 10))) >= 250  # white, not black


def test_unreadable_files_give_none(tmp_path: Path) -> None:
    for path in add_bad_files(tmp_path / "bad").values():
        assert make_thumbnail(path, sha(path), tmp_path / "c") is None
    assert make_thumbnail(tmp_path / "missing.png", "c" * 64, tmp_path / "c") is None
    assert not list((tmp_path / "c").rglob("*.jpg"))


def test_many_threads_making_the_same_thumbnail(tmp_path: Path) -> None:
    source = make_image(tmp_path / "a.png", 3, size=(200, 200))
    digest = sha(source)
    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(lambda _: make_thumbnail(source, digest, tmp_path / "c"), range(32)))
    assert results == {thumbnail_path(tmp_path / "c", digest)}
    assert [p.name for p in (tmp_path / "c").rglob("*")] == [digest[:2], f"{digest}-96.jpg"]
