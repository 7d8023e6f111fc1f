"""Step 0 of the decision rule (docs/bundle-format.md): is there anything in an image to judge?

A network answers every input, so a blank or a thumbnail-sized image would get a confident
``real`` or ``fake``. Before the rule looks at the model's scores, an image is ``unknown`` when

* its shorter side is below :data:`MIN_SIDE` pixels (too small to judge), or
* the standard deviation of its luma is below :data:`MIN_LUMA_STD` (almost uniform: no detail).

Luma is Pillow's integer ITU-R 601 ``L`` conversion of the decoded RGB image, measured on every
``stride``-th pixel of every ``stride``-th row (:func:`sample_stride`: at most
:data:`SAMPLE_SIDE` samples per side). The sums are exact integers and the standard deviation is
one double division and square root, so the Java port (``ContentCheck.java``) gives the same
value bit for bit. The model's best guess is still computed and reported for these images.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from core.verdict import Verdict

MIN_SIDE = 16
"""Shorter side, in pixels, below which an image is too small to judge (CIFAKE's are 32)."""
MIN_LUMA_STD = 2.0
"""Luma standard deviation (0-255 scale) below which an image is almost uniform."""
SAMPLE_SIDE = 512
"""At most this many sampled pixels per side when measuring the luma."""


def sample_stride(height: int, width: int) -> int:
    """Step between sampled rows and columns: ``ceil(max(height, width) / SAMPLE_SIDE)``."""
    return max(1, -(-max(height, width) // SAMPLE_SIDE))


def luma_std(rgb: np.ndarray) -> float:
    """Population standard deviation of the luma of an ``HxWx3`` uint8 image (0-255 scale)."""
    stride = sample_stride(*rgb.shape[:2])
    sample = rgb[::stride, ::stride].astype(np.int64)
    luma = (sample @ np.array([19595, 38470, 7471]) + 0x8000) >> 16
    n, total, squares = luma.size, int(luma.sum()), int((luma * luma).sum())
    return math.sqrt(float(n * squares - total * total) / float(n * n))


def content_problem(rgb: np.ndarray) -> str | None:
    """Why the rule cannot judge this decoded ``HxWx3`` uint8 image (a sentence), or ``None``."""
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return (
            f"Unknown: {width}×{height} pixels is too small to judge "
            f"(at least {MIN_SIDE} px per side)"
        )
    if luma_std(rgb) < MIN_LUMA_STD:
        return "Unknown: the image is almost uniform (no detail to judge)"
    return None


def overrule(verdict: Verdict, problem: str | None) -> Verdict:
    """``verdict`` made ``unknown`` with ``problem`` as its explanation, when there is one; the
    label (best guess), probabilities, score and margin stay the model's."""
    if problem is None:
        return verdict
    return replace(verdict, verdict="unknown", explanation=problem)
