"""Helpers (no tests) that build tiny folder-per-class data sets with PIL for the data set tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_image(
    path: Path, seed: int, size: tuple[int, int] = (16, 16), fmt: str = "PNG", **save
) -> Path:
    """A random-noise RGB image (distinct content per seed) saved at ``path``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt, **save)
    return path


def make_dataset(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<class>_<i>.png`` with distinct random images; returns ``root``."""
    for offset, (name, count) in enumerate(sorted(classes.items())):
        for i in range(count):
            make_image(root / name / f"{name}_{i:03d}.png", seed * 100_000 + offset * 1000 + i)
    return root


def add_bad_files(folder: Path) -> dict[str, Path]:
    """A truncated JPEG, a text file named .jpg and a zero-byte .png in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    good = make_image(folder / "tmp_good.jpg", 999, size=(64, 64), fmt="JPEG", quality=90)
    data = good.read_bytes()
    good.unlink()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"truncated": truncated, "text": text, "empty": empty}


def copy_file(source: Path, target: Path) -> Path:
    """An exact duplicate of ``source`` at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
