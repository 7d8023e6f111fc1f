"""Quality reports of the workspace (``report`` jobs) read into plain records; no Qt.

A report job writes ``NAME.html`` and its figures in ``NAME.json`` beside it
(``{"config": ..., "models": [section, ...], "leave_out_matrix": [...]}``, see
:mod:`training.report`). The Models page lists them with a few headline figures per model;
:func:`scan_reports` reads only the JSON files of one folder, newest first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runs import finite_number

REPORT_SUFFIX = ".html"


@dataclass(frozen=True)
class ReportedModel:
    """One model's headline in a report (``None`` where the report has no such figure)."""

    name: str
    accuracy: float | None
    ece: float | None
    coverage: float | None
    """Share of the report's images answered (not "unknown") at the model's threshold."""
    worst_flip: float | None
    """The highest share of verdicts flipped by one perturbation (JPEG 75, 0.5x, crop)."""
    unseen: str | None = None
    """For a leave-one-generator-out run: the class it never saw."""
    unseen_called_fake: float | None = None


@dataclass(frozen=True)
class ReportInfo:
    """A report in the workspace: the HTML file to open and what it measured."""

    html: Path
    created: float
    data: str
    split: str
    models: tuple[ReportedModel, ...]

    @property
    def name(self) -> str:
        return self.html.stem

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


def read_report(json_path: Path) -> ReportInfo | None:
    """The record of a report's JSON file; ``None`` when it is unreadable or has no HTML."""
    html = json_path.with_suffix(REPORT_SUFFIX)
    try:
        body = json.loads(json_path.read_text(encoding="utf-8"))
        created = html.stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        return None
    config = body.get("config") if isinstance(body.get("config"), dict) else {}
    models = tuple(_reported_model(s) for s in body["models"] if isinstance(s, dict))
    return ReportInfo(
        html=html,
        created=created,
        data=str(config.get("data") or ""),
        split=str(config.get("split") or "all"),
        models=models,
    )


def scan_reports(folder: Path) -> list[ReportInfo]:
    """Every readable report in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = (read_report(path) for path in folder.glob("*.json"))
    return sorted((r for r in found if r is not None), key=lambda r: r.created, reverse=True)


def _reported_model(section: dict[str, Any]) -> ReportedModel:
    metrics = section.get("metrics") or {}
    answered = (section.get("coverage_risk") or {}).get("at_threshold") or {}
    flips = [
        finite_number(figures.get("flipped"))
        for figures in (section.get("robustness") or {}).values()
        if isinstance(figures, dict)
    ]
    flips = [f for f in flips if f is not None]
    unseen = section.get("leave_out") or {}
    return ReportedModel(
        name=Path(str(section.get("model", "?"))).name,
        accuracy=finite_number(metrics.get("accuracy")),
        ece=finite_number(metrics.get("ece")),
        coverage=finite_number(answered.get("coverage")),
        worst_flip=max(flips) if flips else None,
        unseen=unseen.get("class"),
        unseen_called_fake=finite_number(unseen.get("detected_as_fake")),
    )


def selection_text(selection: dict[str, Any]) -> str:
    """One sentence on which images were scored and whether they are the training run's split."""
    text = f"Images: {selection['source']}."
    matches = selection.get("matches_training_split")
    if matches is True:
        text += f" It is the {selection['split']} split the model's training run held out."
    elif matches is False:
        text += (
            f" Warning: it is not the {selection['split']} split the model's training run held"
            " out of its data set of this name: if this is that data set, some of these images"
            " may have been training images."
        )
    return text


def group_text(figures: dict[str, Any], binary: bool = False) -> str:
    """One group of :func:`core.metrics.group_report` in words: ``805 images: accuracy 65.1 %,
    real vs fake 72.2 % (AUC 0.790)``; scored ``binary``, the two accuracies are one."""
    keys = (
        (("binary_accuracy", "real vs fake"),)
        if binary
        else (
            ("accuracy", "accuracy"),
            ("binary_accuracy", "real vs fake"),
        )
    )
    parts = [f"{word} {figures[key]:.1%}" for key, word in keys if figures.get(key) is not None]
    text = f"{figures['n']} images: " + ", ".join(parts)
    return text + (f" (AUC {figures['auc']:.3f})" if figures.get("auc") is not None else "")
