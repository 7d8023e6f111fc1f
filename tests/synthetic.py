"""Tiny generated image sets for tests: learnable, fast, and written as real image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_set(
    root: Path,
    classes: dict[str, int] | None = None,
    *,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
    fmt: str = "PNG",
) -> Path:
    """Write a folder-per-class set where each class has its own easy pattern.

    ``real`` images are smooth noise; every other class adds a class-specific stripe pattern,
    so a tiny model separates them within an epoch or two.
    """
    classes = classes or {"real": 24, "fake": 24}
    rng = np.random.default_rng(seed)
    height, width = size
    for class_index, (name, count) in enumerate(sorted(classes.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = (rng.random((height, width, 3)) * 60 + 90).astype(np.uint8)
            if name != "real":
                step = 2 + class_index
                pixels[::step, :, class_index % 3] = 250
            ext = "jpg" if fmt == "JPEG" else fmt.lower()
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.{ext}", fmt)
    return root
