"""Batch check reports (CSV, JSON, self-contained HTML), shared by the CLI and the GUI.

:func:`write_report` picks the format from the file suffix. The HTML report needs no other file:
thumbnails (and heatmap overlays, for results that kept their ``cam``) are small JPEG data URIs,
for the first :data:`MAX_THUMBNAILS` images only, so a report on 100,000 images stays a few
megabytes; verdict counts head the page.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import UserError
from core.explain import class_map, heatmap_for_image, overlay
from core.inference import CheckResult
from core.preprocess import ImageDecodeError, PreprocessSpec, load_image
from core.workspace import nearest_existing

REPORT_FORMAT = "deepfake-studio/check-report"
REPORT_SUFFIXES = (".csv", ".json", ".html")
VERDICT_ORDER = ("real", "fake", "unknown", "error")
MAX_THUMBNAILS = 2000
THUMBNAIL_SIDE = 96
VERDICT_COLOURS = {"real": "#2e7d32", "fake": "#c62828", "unknown": "#ef6c00", "error": "#616161"}


def verdict_counts(results: Sequence[CheckResult]) -> dict[str, int]:
    """``{"real": n, "fake": n, "unknown": n, "error": n}`` (every key present)."""
    counts = dict.fromkeys(VERDICT_ORDER, 0)
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    return counts


def summary_line(results: Sequence[CheckResult]) -> str:
    """``12 images: 5 real, 4 fake, 2 unknown, 1 error``."""
    counts = verdict_counts(results)
    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER)
    return f"{len(results)} image{'s' if len(results) != 1 else ''}: {parts}"


def check_report_path(path: str | os.PathLike) -> Path:
    """The report path, or a UserError saying why it cannot be written (call before the work).

    Checks the suffix, creates the folder and writes (then removes) a scratch file in it, so a
    read-only, missing or impossible folder is reported before minutes of checking, not after.
    """
    path = Path(path)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise UserError(f"report must end in {', '.join(REPORT_SUFFIXES)}, not {path.name!r}")
    if path.is_dir():
        raise ReportWriteError(path, "that is a folder")
    _check_folder(path)
    return path


class ReportWriteError(UserError):
    """``Could not save the report to PATH: REASON``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Could not save the report to {path}: {reason}")


def _check_folder(path: Path) -> None:
    """Create ``path``'s folder and prove a file can be written in it, or raise."""
    folder = path.parent
    existing = nearest_existing(folder)
    if existing is None:
        raise ReportWriteError(path, f"no part of {folder} exists (a missing drive?)")
    if not existing.is_dir():
        raise ReportWriteError(path, f"{existing} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(
            path, f"cannot create the folder {folder} ({_reason(exc)})"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".report-"):
            pass
    except OSError as exc:
        raise ReportWriteError(path, f"cannot write in {folder} ({_reason(exc)})") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def write_report(
    results: Sequence[CheckResult],
    path: str | os.PathLike,
    *,
    model: str = "",
    preprocess: PreprocessSpec | None = None,
) -> Path:
    """Write ``results`` as CSV, JSON or HTML according to ``path``'s suffix.

    With ``preprocess`` (the model's contract), the HTML report shows a heatmap thumbnail beside
    each image whose result kept its ``cam``. Raises a :class:`ReportWriteError` (a UserError)
    when the file cannot be written.
    """
    path = check_report_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".html":
            write_html(results, path, model=model, preprocess=preprocess)
        else:
            {".csv": write_csv, ".json": write_json}[suffix](results, path, model=model)
    except OSError as exc:
        raise ReportWriteError(path, _reason(exc)) from None
    return path


def _class_names(results: Sequence[CheckResult]) -> list[str]:
    names: dict[str, None] = {}
    for result in results:
        names.update(dict.fromkeys(result.probs))
    return list(names)


def write_csv(results: Sequence[CheckResult], path: Path, *, model: str = "") -> None:
    """One row per image; ``p_<class>`` columns hold the probabilities."""
    classes = _class_names(results)
    columns = ["path", "verdict", "label", "confidence", "score", "threshold", "margin"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, *(f"p_{c}" for c in classes), "explanation", "message"])
        for result in results:
            row = [_cell(getattr(result, column)) for column in columns]
            probs = [_cell(result.probs.get(c)) for c in classes]
            writer.writerow([*row, *probs, result.explanation, result.message or ""])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_json(results: Sequence[CheckResult], path: Path, *, model: str = "") -> None:
    body = {
        "format": REPORT_FORMAT,
        "version": 1,
        "created": _now(),
        "model": model,
        "counts": verdict_counts(results),
        "results": [result.to_dict() for result in results],
    }
    path.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_thumbnail(path: str | os.PathLike, side: int = THUMBNAIL_SIDE) -> np.ndarray | None:
    """A small RGB thumbnail (longest side ``side``), or None if the file is unreadable."""
    try:
        return load_image(path, max_side=side)
    except ImageDecodeError:
        return None


def data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/jpeg;base64`` URI of a small RGB image."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(result: CheckResult, preprocess: PreprocessSpec | None) -> list[str]:
    """Data URIs for a result: its thumbnail, then the heatmap overlay when there is a map."""
    rgb = load_thumbnail(result.path) if result.ok else None
    if rgb is None:
        return []
    uris = [data_uri(rgb)]
    if result.cam is not None and preprocess is not None and result.label in result.probs:
        index = list(result.probs).index(result.label)
        heat = heatmap_for_image(
            class_map(result.cam, index), rgb.shape[:2], preprocess, result.image_size
        )
        uris.append(data_uri(overlay(rgb, heat)))
    return uris


def write_html(
    results: Sequence[CheckResult],
    path: Path,
    *,
    model: str = "",
    preprocess: PreprocessSpec | None = None,
) -> None:
    """A self-contained page: verdict counts, then one table row per image."""
    counts = verdict_counts(results)
    badges = " ".join(
        f'<span class="badge" style="background:{VERDICT_COLOURS[v]}">{counts[v]} {v}</span>'
        for v in VERDICT_ORDER
    )
    rows = []
    for index, result in enumerate(results):
        uris = thumbnails(result, preprocess) if index < MAX_THUMBNAILS else []
        thumb = "".join(f'<img src="{uri}" alt="">' for uri in uris)
        colour = VERDICT_COLOURS.get(result.verdict, "#000")
        confidence = "" if result.confidence is None else f"{result.confidence:.1%}"
        detail = result.explanation if result.ok else (result.message or "")
        rows.append(
            f"<tr><td>{thumb}</td><td>{html.escape(result.path)}</td>"
            f'<td style="color:{colour};font-weight:bold">{result.verdict}</td>'
            f"<td>{html.escape(result.label or '')}</td><td>{confidence}</td>"
            f"<td>{html.escape(detail)}</td></tr>"
        )
    skipped = max(0, sum(r.ok for r in results) - MAX_THUMBNAILS)
    note = f"<p>Thumbnails shown for the first {MAX_THUMBNAILS} images only.</p>" if skipped else ""
    page = HTML_TEMPLATE.format(
        title=html.escape(f"Deepfake Studio check: {summary_line(results)}"),
        model=html.escape(model),
        created=_now(),
        badges=badges,
        note=note,
        rows="\n".join(rows),
    )
    path.write_text(page, encoding="utf-8")


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.badge {{ color: white; padding: 0.2em 0.6em; border-radius: 0.8em; margin-right: 0.4em; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }}
img {{ max-width: 96px; max-height: 96px; margin-right: 4px; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Model: {model}<br>Created: {created}</p>
<p>{badges}</p>
{note}
<table>
<tr><th></th><th>File</th><th>Verdict</th><th>Label</th><th>Confidence</th><th>Why</th></tr>
{rows}
</table>
</body></html>
"""
