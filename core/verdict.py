"""The decision rule of docs/bundle-format.md, in NumPy: logits to real / fake / unknown.

Every runtime (this checker, the Android app) implements exactly these steps, after the rule's
step 0 on the decoded image (:mod:`core.content`: too small or almost uniform is ``unknown``):

1. ``z = logits / temperature``; ``probs = softmax(z)``;
2. ``score = max(probs)`` (``max_softmax``) or ``score = logsumexp(z)`` (``energy``: the negative
   free energy, higher means more familiar);
3. ``score < threshold`` gives ``unknown``, and so does ``logsumexp(z) < energy_floor`` when the
   calibration has a floor (an unfamiliar image, however confident); otherwise the top class
   decides: ``real`` when it is the real class, else ``fake`` (the label names the generator);
4. ``confidence = max(probs)`` and ``label = class_names[argmax(probs)]`` (the first maximum, the
   best guess) are reported in every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.rejection import Calibration

SCORES = ("max_softmax", "energy")
VERDICTS = ("real", "fake", "unknown")
SCORE_WORDS = {"max_softmax": "confidence", "energy": "familiarity score"}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``N x C`` values, computed stably in float64."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def logsumexp(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log(sum(exp(z)))`` of ``N x C`` values, computed stably in float64."""
    z = np.asarray(z, dtype=np.float64)
    peak = z.max(axis=-1, keepdims=True)
    return (peak + np.log(np.exp(z - peak).sum(axis=-1, keepdims=True)))[..., 0]


def scores_of(logits: np.ndarray, temperature: float, score: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 of the rule: ``(probs N x C, score N)`` of raw logits."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, not {score!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    z = np.atleast_2d(np.asarray(logits, dtype=np.float64)) / temperature
    probs = softmax(z)
    values = probs.max(axis=1) if score == "max_softmax" else logsumexp(z)
    return probs, values


def accepts(logits: np.ndarray, calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """``(probs N x C, answered N)``: which rows step 3 of the rule answers (real or fake)."""
    probs, values = scores_of(logits, calibration.temperature, calibration.score)
    accepted = values >= calibration.threshold
    if calibration.energy_floor is not None:
        energies = scores_of(logits, calibration.temperature, "energy")[1]
        accepted &= energies >= calibration.energy_floor
    return probs, accepted


@dataclass(frozen=True)
class Verdict:
    """The checker's answer for one image (see the module docstring for the rule)."""

    verdict: str
    """``real``, ``fake`` or ``unknown``."""
    label: str
    """The top class (the generator's name for fakes); the best guess when ``unknown``."""
    confidence: float
    probs: dict[str, float]
    score: float
    threshold: float
    margin: float
    """``score - threshold``: negative means rejected as unknown."""
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    logits: np.ndarray,
    calibration: Calibration,
    class_names: Sequence[str],
    real_class: str,
) -> list[Verdict]:
    """Apply the bundle's decision rule to ``N x C`` logits (one :class:`Verdict` per row)."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    if logits.shape[1] != len(class_names):
        raise ValueError(f"logits have {logits.shape[1]} classes, the model {len(class_names)}")
    probs, values = scores_of(logits, calibration.temperature, calibration.score)
    floor = calibration.energy_floor
    energies = scores_of(logits, calibration.temperature, "energy")[1]
    verdicts = []
    for row, value, energy in zip(probs, values, energies, strict=True):
        top = int(np.argmax(row))
        label = class_names[top]
        unfamiliar = floor is not None and energy < floor
        if value < calibration.threshold or unfamiliar:
            kind = "unknown"
        elif label == real_class:
            kind = "real"
        else:
            kind = "fake"
        verdicts.append(
            Verdict(
                verdict=kind,
                label=label,
                confidence=float(row[top]),
                probs={name: float(p) for name, p in zip(class_names, row, strict=True)},
                score=float(value),
                threshold=float(calibration.threshold),
                margin=float(value - calibration.threshold),
                explanation=explain_verdict(
                    kind, label, float(value), calibration, float(energy) if unfamiliar else None
                ),
            )
        )
    return verdicts


def telling_digits(value: float, line: float) -> int:
    """Decimals (2 to 6) that show ``value`` and the ``line`` it is compared with as different
    numbers (``0.729 is below 0.733``, not ``0.73 is below 0.73``)."""
    digits = 2
    while digits < 6 and f"{value:.{digits}f}" == f"{line:.{digits}f}":
        digits += 1
    return digits


def explain_verdict(
    kind: str,
    label: str,
    value: float,
    calibration: Calibration,
    below_floor: float | None = None,
) -> str:
    """One human sentence, e.g. ``Unknown: confidence 0.61 is below the 0.80 threshold ...``;
    ``below_floor``: the energy score of an image rejected by the calibration's energy floor."""
    if below_floor is not None and calibration.energy_floor is not None:
        keeps = ""
        if calibration.floor_keep is not None:
            keeps = f", which {calibration.floor_keep:.0%} of validation images reach"
        digits = telling_digits(below_floor, calibration.energy_floor)
        return (
            f"Unknown: unlike the images the model learnt from (familiarity score "
            f"{below_floor:.{digits}f} is below the floor {calibration.energy_floor:.{digits}f}"
            f"{keeps}; best guess: {label})"
        )
    word = SCORE_WORDS[calibration.score]
    digits = telling_digits(value, calibration.threshold)
    goal = ""
    if calibration.target_risk is not None and not calibration.reached:
        goal = f" (the {calibration.target_risk:.0%} error target was out of reach)"
    elif calibration.target_risk is not None:
        goal = f" chosen for at most {calibration.target_risk:.0%} errors"
    threshold = f"the {calibration.threshold:.{digits}f} threshold{goal}"
    if kind == "unknown":
        return f"Unknown: {word} {value:.{digits}f} is below {threshold} (best guess: {label})"
    head = "Real" if kind == "real" else f"Fake ({label})"
    return f"{head}: {word} {value:.{digits}f} is at or above {threshold}"
