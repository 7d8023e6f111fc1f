"""Learning curves: does more training data help, and how much would a target accuracy need?

A curve is a few points ``(training images n, test error e)`` of the same recipe trained on nested
shares of one train split and scored on one test split. :func:`fit_power_law` fits
``e = a * n^-b`` (least squares of log e on log n, the usual model of data-limited error) and
:func:`read_curve` says what it predicts in one sentence. Pure NumPy: no torch, no Qt.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError

MAX_SHARES = 8


def parse_shares(value: str | Sequence[float]) -> list[float]:
    """Shares of the train split, ascending: ``"0.25, 0.5, 1"`` or a list of numbers.

    Two to eight distinct shares in [0.01, 1]; anything else is a :class:`UserError` that says
    what is wrong.
    """
    if isinstance(value, str):
        items = [item for item in re.split(r"[,;\s]+", value.strip()) if item]
        try:
            numbers = [float(item) for item in items]
        except ValueError:
            raise UserError(
                f"shares must be numbers such as '0.25, 0.5, 1', not {value!r}"
            ) from None
    else:
        numbers = list(value)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise UserError(f"shares must be numbers such as [0.25, 0.5, 1], not {value!r}")
        numbers = [float(x) for x in numbers]
    if not 2 <= len(numbers) <= MAX_SHARES:
        raise UserError(f"a learning curve needs 2 to {MAX_SHARES} shares, not {len(numbers)}")
    bad = [x for x in numbers if not (math.isfinite(x) and 0.01 <= x <= 1)]
    if bad:
        raise UserError(f"each share must be between 0.01 and 1 (1 = the whole train split): {bad}")
    if len(set(numbers)) != len(numbers):
        raise UserError(f"shares must differ from each other: {numbers}")
    return sorted(numbers)


@dataclass(frozen=True)
class PowerLaw:
    """``error = a * n^-b``; ``rms_log_residual`` says how well the points follow it."""

    a: float
    b: float
    rms_log_residual: float

    def error_at(self, n: float) -> float:
        return self.a * n**-self.b

    def images_for(self, accuracy: float) -> float | None:
        """Training images that reach ``accuracy``; ``None`` when more data does not help."""
        if self.b <= 0 or not 0 < accuracy < 1:
            return None
        return (self.a / (1.0 - accuracy)) ** (1.0 / self.b)


def fit_power_law(n: Sequence[float], errors: Sequence[float]) -> PowerLaw | None:
    """Least-squares fit of log error on log n; ``None`` without two distinct n or with an error
    of 0 (a perfect score has no logarithm: the curve cannot say more)."""
    x, y = np.asarray(n, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if len(x) < 2 or len(set(x.tolist())) < 2 or (y <= 0).any() or (x <= 0).any():
        return None
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    residual = np.log(y) - (slope * np.log(x) + intercept)
    return PowerLaw(
        a=float(math.exp(intercept)),
        b=float(-slope),
        rms_log_residual=float(np.sqrt(np.mean(residual**2))),
    )


INTERVAL = (0.1, 0.9)
"""The quantiles of :func:`prediction_interval` (an 80 % interval)."""
UNBOUNDED = 1e300
"""Stands for "no amount of data" among the image counts of :func:`prediction_interval`."""


def prediction_interval(
    n: Sequence[float],
    accuracies: Sequence[float],
    test_n: Sequence[int],
    target: float | None = None,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """How far the predictions move with the test sets' sampling error.

    Each draw re-scores every point as a binomial sample of its ``test_n`` images at its
    measured accuracy, refits the law and predicts again; the result holds the
    :data:`INTERVAL` quantiles of ``accuracy_at_2x`` and ``images_for_target`` over the draws.
    A draw in which more data does not help counts as needing unboundedly many images, so an
    upper bound past every finite draw comes back as ``None`` (more than the curve can say).
    """
    rng = np.random.default_rng(seed)
    x = np.log(np.asarray(n, dtype=np.float64))
    acc = np.asarray(accuracies, dtype=np.float64)
    sizes = np.asarray(test_n, dtype=np.int64)
    errors = rng.binomial(sizes, 1.0 - acc, size=(draws, len(sizes))) / sizes
    errors = errors[(errors > 0).all(axis=1)]
    y = np.log(errors)
    xc = x - x.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    intercept = y.mean(axis=1) - slope * x.mean()
    b = -slope
    at_2x = 1.0 - np.exp(intercept + slope * math.log(2 * max(n)))
    low, high = INTERVAL
    body: dict[str, Any] = {
        "level": high - low,
        "draws": len(b),
        "accuracy_at_2x": [float(np.quantile(at_2x, low)), float(np.quantile(at_2x, high))],
    }
    if target is not None:
        with np.errstate(divide="ignore", over="ignore"):
            needed = np.where(b > 0, np.exp((intercept - math.log(1.0 - target)) / b), np.inf)
        needed = np.minimum(needed, UNBOUNDED)  # quantiles of inf are not defined
        bounds = [float(np.quantile(needed, q)) for q in (low, high)]
        body["images_for_target"] = [v if v < UNBOUNDED else None for v in bounds]
    return body


def read_curve(
    n: Sequence[float],
    accuracies: Sequence[float],
    target: float | None = None,
    test_n: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The fit and its predictions for points ``(n, accuracy)``, with a one-line ``verdict``.

    Keys: ``fit`` (``a``, ``b``, ``rms_log_residual`` or ``None``), ``accuracy_at_2x`` (twice the
    largest n), ``target`` and ``images_for_target`` (when a target is given), ``verdict``; with
    each point's test-set size ``test_n`` also ``interval`` (:func:`prediction_interval`), which
    the verdict quotes.
    """
    errors = [1.0 - acc for acc in accuracies]
    fit = fit_power_law(n, errors)
    largest = max(n)
    body: dict[str, Any] = {"fit": None, "accuracy_at_2x": None, "target": target}
    if target is not None:
        body["images_for_target"] = None
    if fit is None:
        body["verdict"] = (
            "no error left to fit: the test split is scored perfectly"
            if any(e <= 0 for e in errors)
            else "the points cannot be fitted (fewer than two sizes)"
        )
        return body
    body["fit"] = {"a": fit.a, "b": fit.b, "rms_log_residual": fit.rms_log_residual}
    if fit.b <= 0.02:
        body["verdict"] = (
            f"more data did not lower the error on these points (exponent {fit.b:.2f}): "
            "look at the recipe or the model, not the amount of data"
        )
        return body
    at_2x = 1.0 - fit.error_at(2 * largest)
    body["accuracy_at_2x"] = at_2x
    interval = prediction_interval(n, accuracies, test_n, target) if test_n else None
    if interval is not None:
        body["interval"] = interval
    verdict = (
        f"the error falls as n^-{fit.b:.2f}: twice the data ({2 * largest:,.0f} training images) "
        f"would give about {100 * at_2x:.1f} %"
    )
    if interval is not None:
        low, high = interval["accuracy_at_2x"]
        verdict += f" ({100 * low:.1f}-{100 * high:.1f} %)"
    if target is not None:
        needed = fit.images_for(target)
        body["images_for_target"] = needed
        if needed is not None and needed <= largest:
            verdict += f"; {100 * target:.2f} % is within reach of the data there is"
        elif needed is not None:
            verdict += f"; {100 * target:.2f} % needs about {needed:,.0f} training images"
            if interval is not None:
                low, high = interval["images_for_target"]
                upper = f"{high:,.0f}" if high is not None else "more than the curve can say"
                verdict += f" ({low:,.0f} to {upper})"
            verdict += f", {needed / largest:.1f}x the largest point"
    if interval is not None:
        verdict += f". Ranges: {100 * interval['level']:.0f} % intervals for the test sets' size"
    body["verdict"] = verdict
    return body


CURVE_FILE = "curve.json"
"""What a learning curve's folder holds beside its point runs (training/curve.py writes it)."""


@dataclass(frozen=True)
class CurveInfo:
    """A learning curve as the Models page lists it."""

    folder: str
    data: str
    arch: str
    shares: tuple[float, ...]
    n_train: tuple[int, ...]
    test_acc: tuple[float, ...]
    fit: PowerLaw | None
    target: float | None
    verdict: str

    @property
    def name(self) -> str:
        return Path(self.folder).name


def read_curve_file(folder: str | Path) -> CurveInfo | None:
    """The curve in ``folder`` (its ``curve.json``); ``None`` when absent or unreadable."""
    try:
        body = json.loads((Path(folder) / CURVE_FILE).read_text(encoding="utf-8"))
        scored = [p for p in body["points"] if p.get("test_acc") is not None]
        fit = body.get("fit")
        return CurveInfo(
            folder=str(folder),
            data=str(body.get("data") or ""),
            arch=str(body.get("arch") or ""),
            shares=tuple(float(s) for s in body["shares"]),
            n_train=tuple(int(p["n_train"]) for p in scored),
            test_acc=tuple(float(p["test_acc"]) for p in scored),
            fit=PowerLaw(float(fit["a"]), float(fit["b"]), float(fit["rms_log_residual"]))
            if fit
            else None,
            target=body.get("target"),
            verdict=str(body.get("verdict") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def scan_curves(root: str | Path) -> list[CurveInfo]:
    """Every learning curve in a folder directly inside ``root``, by folder name."""
    try:
        folders = sorted(p for p in Path(root).iterdir() if (p / CURVE_FILE).is_file())
    except OSError:
        return []
    curves = (read_curve_file(folder) for folder in folders)
    return [curve for curve in curves if curve is not None]
