"""Confidence calibration and the reject/unknown threshold, in NumPy only.

Calibration happens once, on held-out (validation) logits, when a model is exported:

1. :func:`fit_temperature` divides logits by the ``T`` that minimises the negative
   log-likelihood (temperature scaling: over-confident models get ``T > 1``);
2. :func:`choose_threshold` picks the lowest score threshold whose selective risk (error rate
   among accepted images) is at most the user's ``target_risk``, and reports the coverage
   (share of images accepted) and risk reached there; with ``floor_keep`` it first sets an
   energy floor that keeps that share of the images (:func:`energy_floor`): below it an image is
   unlike anything the model was trained on, whatever its confidence;
3. :func:`compare_scores` tells which score (``max_softmax`` or ``energy``) separates right from
   wrong answers, or known classes from an unseen generator, better (AUROC).

The result is a :class:`Calibration`, stored in ``bundle.json``; :func:`decide` (from
:mod:`core.verdict`) applies it to new images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from core.errors import UserError
from core.metrics import roc_auc
from core.verdict import SCORES, Verdict, decide, scores_of, softmax

__all__ = [
    "Calibration",
    "Verdict",
    "choose_threshold",
    "compare_scores",
    "decide",
    "energy_floor",
    "fit_temperature",
    "heldout_auroc",
    "nll",
]

LOG_T_RANGE = (math.log(0.05), math.log(20.0))


@dataclass(frozen=True)
class Calibration:
    """How a bundle turns logits into verdicts (``bundle.json`` → ``calibration``)."""

    temperature: float = 1.0
    score: str = "max_softmax"
    threshold: float = 0.0
    target_risk: float | None = None
    coverage: float | None = None
    risk: float | None = None
    n: int = 0
    chosen_on: str = ""
    reached: bool = True
    """False when no threshold met ``target_risk``; the lowest-risk threshold was kept instead."""
    energy_floor: float | None = None
    """Images whose energy score (``logsumexp(logits / T)``) is below it are unknown whatever
    ``score`` says: unfamiliar images (an unseen generator, another domain). ``None``: no floor."""
    floor_keep: float | None = None
    """The share of held-out images at or above ``energy_floor`` when it was chosen."""

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise UserError(f"calibration score must be one of {SCORES}, not {self.score!r}")
        if not (_finite(self.temperature) and self.temperature > 0):
            raise UserError(f"calibration temperature must be positive, not {self.temperature}")
        if not _finite(self.threshold):
            raise UserError(f"calibration threshold must be a number, not {self.threshold}")
        if self.energy_floor is not None and not math.isfinite(self.energy_floor):
            raise UserError(f"calibration energy_floor must be a number, not {self.energy_floor}")

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        return {k: v for k, v in body.items() if v is not None or k not in FLOOR_FIELDS}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Calibration:
        """A bundle's calibration: the rule's own fields are required, fields this version does
        not know are ignored (docs/bundle-format.md: a later version may add some)."""
        missing = [key for key in RULE_FIELDS if key not in body]
        if missing:
            raise UserError(f"the calibration lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in body.items() if key in known})

    def summary(self) -> str:
        """One line for logs and the GUI."""
        head = f"{self.score} >= {self.threshold:.3g} (T={self.temperature:.3g})"
        if self.energy_floor is not None:
            head += f", energy >= {self.energy_floor:.3g} (keeps {self.floor_keep or 0:.0%})"
        if self.coverage is None or self.risk is None:
            return head
        result = f"accepts {self.coverage:.1%} of {self.n} images with {self.risk:.1%} errors"
        if self.target_risk is None:
            return f"{head}: {result}"
        if not self.reached:
            return f"{head}: target {self.target_risk:.1%} errors not reachable; best {result}"
        return f"{head}: {result} (target {self.target_risk:.1%})"


RULE_FIELDS = ("temperature", "score", "threshold")
"""The calibration fields every bundle must have (the decision rule cannot do without them)."""
FLOOR_FIELDS = ("energy_floor", "floor_keep")
"""Written to ``bundle.json`` only when set (bundles without a floor keep their old shape)."""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- temperature ------------------------------------------------------------------------------
def nll(logits: np.ndarray, labels: Sequence[int], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    labels = np.asarray(labels, dtype=int)
    peak = z.max(axis=1, keepdims=True)
    log_norm = peak[:, 0] + np.log(np.exp(z - peak).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: Sequence[int], iterations: int = 80) -> float:
    """The temperature in [0.05, 20] minimising NLL (golden-section search on ``log T``).

    NLL is unimodal in ``log T`` for fixed logits, so the bounded 1-D search finds the optimum.
    """
    logits = np.asarray(logits, dtype=np.float64)
    _check_pairs(logits, labels)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    low, high = LOG_T_RANGE
    a = high - ratio * (high - low)
    b = low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2.0))


# -- threshold --------------------------------------------------------------------------------
def choose_threshold(
    logits: np.ndarray,
    labels: Sequence[int],
    temperature: float = 1.0,
    score: str = "max_softmax",
    target_risk: float = 0.05,
    chosen_on: str = "",
    floor_keep: float | None = None,
) -> Calibration:
    """The lowest threshold whose selective risk on accepted samples is ``<= target_risk``.

    Candidate thresholds are the observed scores (accept every sample scoring at least that).
    When no candidate reaches the target, the one with the lowest risk (then highest coverage)
    is returned with ``reached=False``. With ``floor_keep`` the samples below
    :func:`energy_floor` count as rejected first, and the threshold is chosen among the rest
    (coverage and risk are over all samples).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    _check_pairs(logits, labels)
    if not 0.0 <= target_risk < 1.0:
        raise UserError(f"target risk must be between 0 and 1, not {target_risk}")
    probs, values = scores_of(logits, temperature, score)
    floor = None
    if floor_keep is not None:
        floor = energy_floor(logits, temperature, floor_keep)
        values = np.where(scores_of(logits, temperature, "energy")[1] >= floor, values, -np.inf)
    wrong = probs.argmax(axis=1) != labels
    order = np.argsort(-values, kind="mergesort")
    sorted_values, sorted_wrong = values[order], wrong[order]
    # Only the last index of a run of equal scores is a threshold that can be realised.
    last_of_tie = np.r_[sorted_values[1:] != sorted_values[:-1], True]
    accepted = np.arange(1, len(values) + 1)[last_of_tie]
    risks = np.cumsum(sorted_wrong)[last_of_tie] / accepted
    candidates = sorted_values[last_of_tie]
    admissible = np.isfinite(candidates)  # never "accept everything, floor included"
    candidates, accepted, risks = candidates[admissible], accepted[admissible], risks[admissible]
    meets = np.flatnonzero(risks <= target_risk)
    reached = meets.size > 0
    # Candidates are ordered by decreasing threshold, so the last one meeting it is the lowest.
    pick = int(meets[-1]) if reached else int(np.lexsort((-accepted, risks))[0])
    return Calibration(
        temperature=float(temperature),
        score=score,
        threshold=float(candidates[pick]),
        target_risk=float(target_risk),
        coverage=float(accepted[pick] / len(values)),
        risk=float(risks[pick]),
        n=len(values),
        chosen_on=chosen_on,
        reached=reached,
        energy_floor=floor,
        floor_keep=floor_keep,
    )


def energy_floor(logits: np.ndarray, temperature: float, keep: float) -> float:
    """The energy score that ``keep`` of these (known-class, held-out) images reach: the
    ``ceil(keep * n)``-th highest, so at least that share is at or above it."""
    if not 0.0 < keep <= 1.0:
        raise UserError(f"the energy floor must keep between 0 and 100% of images, not {keep}")
    values = np.sort(scores_of(logits, temperature, "energy")[1])[::-1]
    return float(values[max(0, math.ceil(keep * len(values)) - 1)])


# -- which score ------------------------------------------------------------------------------
def heldout_auroc(scores_in: Sequence[float], scores_out: Sequence[float]) -> float | None:
    """AUROC of a score telling known-class images (positive) from a held-out class's images."""
    scores_in, scores_out = np.asarray(scores_in, float), np.asarray(scores_out, float)
    y = np.r_[np.ones(len(scores_in), dtype=int), np.zeros(len(scores_out), dtype=int)]
    return roc_auc(y, np.r_[scores_in, scores_out])


def compare_scores(
    logits: np.ndarray,
    labels: Sequence[int],
    temperature: float = 1.0,
    heldout_logits: np.ndarray | None = None,
) -> dict[str, Any]:
    """AUROC of each score for right-vs-wrong answers (and known-vs-held-out images).

    Returns ``{"scores": {name: {"auroc_correct": a, "auroc_heldout": b}}, "best": name}``;
    ``best`` maximises the held-out AUROC when held-out logits are given, else the right-vs-wrong
    one. An AUROC is ``None`` when undefined (e.g. no wrong answers).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    _check_pairs(logits, labels)
    correct = (softmax(logits).argmax(axis=1) == labels).astype(int)
    table: dict[str, dict[str, float | None]] = {}
    for name in SCORES:
        _, values = scores_of(logits, temperature, name)
        row: dict[str, float | None] = {"auroc_correct": roc_auc(correct, values)}
        if heldout_logits is not None:
            _, out_values = scores_of(heldout_logits, temperature, name)
            row["auroc_heldout"] = heldout_auroc(values, out_values)
        table[name] = row
    key = "auroc_heldout" if heldout_logits is not None else "auroc_correct"
    best = max(SCORES, key=lambda name: table[name].get(key) or 0.0)
    return {"scores": table, "best": best, "by": key}


def _check_pairs(logits: np.ndarray, labels: Sequence[int]) -> None:
    if logits.ndim != 2 or len(logits) == 0:
        raise UserError("calibration needs a non-empty N x C array of logits")
    if len(labels) != len(logits):
        raise UserError(f"{len(logits)} logits but {len(labels)} labels")
