"""Classification metrics in NumPy: accuracy, per-class P/R/F1, confusion, ROC-AUC, ECE.

Inputs are integer labels ``y_true`` (N,) and class probabilities ``probs`` (N, C). Functions
return plain Python numbers/lists so results serialise to JSON as they are.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of the ECE and the reliability diagram."""


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``C x C`` counts; row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_class_prf(matrix: np.ndarray) -> dict[str, list[float]]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.astype(int).tolist(),
    }


def macro_f1(matrix: np.ndarray, f1: Sequence[float]) -> float | None:
    """Mean F1 over the classes that occur in the labels or the predictions of ``matrix``."""
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(np.mean(np.asarray(f1)[present])) if present.any() else None


def roc_auc(y_binary: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tie averaging); ``None`` if one class only."""
    y = np.asarray(y_binary, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_binary: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (for plotting)."""
    y = np.asarray(y_binary, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr


def expected_calibration_error(
    y_true: Sequence[int], probs: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE of the max-probability confidence over ``n_bins`` equal-width bins (0, 1]."""
    probs = np.asarray(probs, dtype=float)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(
    y_true: Sequence[int], probs: np.ndarray, n_bins: int = ECE_BINS
) -> list[dict]:
    """Per-bin count, mean confidence and accuracy (the reliability diagram's data)."""
    probs = np.asarray(probs, dtype=float)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = []
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        count = int(in_bin.sum())
        rows.append(
            {
                "low": float(low),
                "high": float(high),
                "count": count,
                "confidence": float(confidence[in_bin].mean()) if count else None,
                "accuracy": float(correct[in_bin].mean()) if count else None,
            }
        )
    return rows


def fake_scores(probs: np.ndarray, real_index: int) -> np.ndarray:
    """Probability that an image is fake (any non-real class)."""
    return 1.0 - np.asarray(probs, dtype=float)[:, real_index]


def classification_report(
    y_true: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    real_class: str = "real",
) -> dict[str, Any]:
    """Everything the CLI and GUI show for one evaluation, JSON-ready.

    ``auc`` is real-vs-fake ROC-AUC of the fake score; ``binary_accuracy`` counts any fake class
    predicted for any fake image as right. ``macro_f1`` averages the classes that occur among the
    labels or the predictions (as scikit-learn does): a class absent from both has no F1.
    """
    probs = np.asarray(probs, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    num_classes = len(class_names)
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    prf = per_class_prf(matrix)
    report: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "class_names": list(class_names),
        "per_class": {
            name: {key: prf[key][i] for key in ("precision", "recall", "f1", "support")}
            for i, name in enumerate(class_names)
        },
        "macro_f1": macro_f1(matrix, prf["f1"]),
        "confusion_matrix": matrix.tolist(),
        "ece": expected_calibration_error(y_true, probs) if len(y_true) else None,
        "auc": None,
        "binary_accuracy": None,
    }
    if real_class in class_names:
        real_index = list(class_names).index(real_class)
        is_fake = y_true != real_index
        report["auc"] = roc_auc(is_fake, fake_scores(probs, real_index))
        if len(y_true):
            report["binary_accuracy"] = float(((y_pred != real_index) == is_fake).mean())
    return report


def group_report(
    groups: Sequence[str],
    y_true: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    real_class: str = "real",
) -> dict[str, dict[str, Any]]:
    """Headline figures per group of images (e.g. the sub-folder a class keeps a domain in).

    For each group name: ``n``, ``accuracy``, ``binary_accuracy`` (real vs fake) and ``auc`` (real
    vs fake; ``None`` when the group holds only one side), ordered by name.
    """
    groups = np.asarray(groups, dtype=object)
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    report = {}
    for name in sorted(set(groups.tolist())):
        mask = groups == name
        full = classification_report(y_true[mask], probs[mask], class_names, real_class)
        report[name] = {k: full[k] for k in ("n", "accuracy", "binary_accuracy", "auc")}
    return report
