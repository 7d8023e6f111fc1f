"""Save the Check page's results as a CSV, JSON or HTML report (the format follows the suffix).

A minimal stand-in until :mod:`core.report_export` lands (then this module should delegate to
it). Same three formats (one row per file: verdict, label, confidence, score, threshold,
margin, per-class probabilities, explanation or error message). No Qt: runs on a worker thread.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.inference import CheckResult

FORMATS = {".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}
FIELDS = ("path", "verdict", "label", "confidence", "score", "threshold", "margin", "explanation")
COLOURS = {"real": "#15803d", "fake": "#b91c1c", "unknown": "#b45309", "error": "#475569"}


def report_format(path: str | os.PathLike) -> str:
    """``csv``, ``json`` or ``html`` from the file name; UserError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{Path(path).name}: choose a .csv, .json or .html report file")
    return FORMATS[suffix]


def write_report(results: Sequence[CheckResult], path: str | os.PathLike, model: str = "") -> Path:
    """Write ``results`` to ``path`` (format from its suffix); returns the path.

    Args:
        results: the rows, in the order to write them.
        path: ``.csv``, ``.json`` or ``.html`` file (its folder must exist).
        model: one line naming the bundle that produced the verdicts.
    """
    path = Path(path)
    kind = report_format(path)
    try:
        if kind == "csv":
            _write_csv(results, path)
        elif kind == "json":
            _write_json(results, path, model)
        else:
            _write_html(results, path, model)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def class_names_of(results: Sequence[CheckResult]) -> list[str]:
    names: dict[str, None] = {}
    for result in results:
        names.update(dict.fromkeys(result.probs))
    return list(names)


def _row(result: CheckResult) -> dict[str, Any]:
    row = {key: getattr(result, key) for key in FIELDS}
    if not result.ok:
        row["explanation"] = result.message
    return row


def _write_csv(results: Sequence[CheckResult], path: Path) -> None:
    classes = class_names_of(results)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FIELDS, *(f"p_{name}" for name in classes)])
        for result in results:
            row = _row(result)
            values = ["" if row[key] is None else row[key] for key in FIELDS]
            probs = [result.probs.get(name, "") for name in classes]
            writer.writerow([*values, *probs])


def _summary(results: Sequence[CheckResult]) -> dict[str, int]:
    counts = dict.fromkeys(COLOURS, 0)
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    return counts


def _write_json(results: Sequence[CheckResult], path: Path, model: str) -> None:
    body = {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "counts": _summary(results),
        "results": [result.to_dict() for result in results],
    }
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")


def _write_html(results: Sequence[CheckResult], path: Path, model: str) -> None:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in _summary(results).items() if n)
    rows = []
    for result in results:
        row = _row(result)
        colour = COLOURS.get(result.verdict, "#475569")
        confidence = "" if result.confidence is None else f"{result.confidence:.3f}"
        label = html.escape(result.label or "")
        rows.append(
            f"<tr><td>{html.escape(result.path)}</td>"
            f"<td><span class='badge' style='background:{colour}'>"
            f"{html.escape(result.verdict)}</span> {label}</td>"
            f"<td class='num'>{confidence}</td>"
            f"<td>{html.escape(str(row['explanation'] or ''))}</td></tr>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Deepfake Studio check report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #111827; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.badge {{ color: white; border-radius: 8px; padding: 1px 8px; font-weight: 600; }}
</style></head><body>
<h1>Check report</h1>
<p>Model: {html.escape(model)}<br>{len(results)} file(s): {html.escape(counts)}</p>
<table><thead><tr><th>File</th><th>Verdict</th><th>Confidence</th><th>Explanation</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    path.write_text(page, encoding="utf-8")
