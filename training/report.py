"""The quality report job: how good a detector is, and where it is not, as HTML + JSON.

For each model (run folder or bundle) on a data set: accuracy, per-class P/R/F1, the confusion
matrix with thumbnails of misclassified images, ROC and reliability diagrams, ECE, the rejection
rule's coverage-vs-risk curve, a robustness panel (share of verdicts that flip, or turn unknown,
under JPEG quality 75, 0.5x down-scaling and an 80% centre crop), and, for runs trained with
``leave_out`` (``deepfake-studio train --leave-out G``), the leave-one-generator-out row:
how often the unseen generator is still called fake and the rejection AUROC of each score.
"""

from __future__ import annotations

import io
import json
import random
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.datasets import Sample
from core.errors import UserError
from core.events import EventWriter
from core.metrics import classification_report, reliability_bins, roc_curve
from core.preprocess import load_image
from core.rejection import Calibration, choose_threshold, fit_temperature
from core.reports import selection_text
from core.verdict import accepts, scores_of
from training.config import read_split, resolve
from training.control import CancelToken
from training.evaluate import (
    ModelUnderTest,
    compute_logits,
    data_samples,
    evaluate_model,
    folder_breakdown,
    open_model,
    outlier_samples,
    unseen_class_report,
)
from training.report_charts import line_chart, page, table, thumbnail_uri

REPORT_DEFAULTS: dict[str, Any] = {
    "kind": "report",
    "models": None,
    "data": None,
    "split": None,
    "out": None,
    "target_risk": 0.05,
    "robustness_images": 300,
    "thumbnails": 24,
    "batch_size": 64,
    "seed": None,
    "val": None,
    "test": None,
    "threads": 0,
    "workspace": None,
}

PERTURBATIONS = ("jpeg75", "downscale0.5", "centre_crop0.8")


def perturb(rgb: np.ndarray, name: str) -> np.ndarray:
    """One of :data:`PERTURBATIONS` applied to a decoded RGB image."""
    image = Image.fromarray(rgb)
    if name == "jpeg75":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=75)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    if name == "downscale0.5":
        size = (max(8, image.width // 2), max(8, image.height // 2))
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR))
    if name == "centre_crop0.8":
        w, h = round(image.width * 0.8), round(image.height * 0.8)
        left, top = (image.width - w) // 2, (image.height - h) // 2
        return np.asarray(image.crop((left, top, left + w, top + h)))
    raise ValueError(f"unknown perturbation {name!r}")


def calibration_for(
    model: ModelUnderTest, config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> Calibration:
    """The bundle's calibration, or one fitted on a run's validation split."""
    if model.kind == "bundle":
        return model.predictor.calibration
    if model.run_split is None:
        return Calibration()
    val = read_split(model.run_split, "val")
    val = [s for s in val if s.label in model.class_names]
    logits = compute_logits(model, val, config["batch_size"], emit, cancel)
    labels = np.array([model.class_names.index(s.label) for s in val])
    temperature = fit_temperature(logits, labels)
    return choose_threshold(
        logits,
        labels,
        temperature,
        "max_softmax",
        config["target_risk"],
        chosen_on=f"val split of {model.path.name} (n={len(val)})",
    )


def coverage_risk_curve(
    logits: np.ndarray, labels: np.ndarray, calibration: Calibration
) -> dict[str, list[float]]:
    """Coverage and selective risk when accepting the top-k scores, k = 1..N (20 points), and
    ``at_threshold``: the share answered at the calibrated threshold and the errors among them."""
    probs, values = scores_of(logits, calibration.temperature, calibration.score)
    wrong = probs.argmax(axis=1) != labels
    order = np.argsort(-values, kind="mergesort")
    cumulative = np.cumsum(wrong[order]) / np.arange(1, len(order) + 1)
    picks = np.unique(np.linspace(0, len(order) - 1, 21).astype(int))
    _, answered = accepts(logits, calibration)
    return {
        "coverage": ((picks + 1) / len(order)).tolist(),
        "risk": cumulative[picks].tolist(),
        "at_threshold": {
            "coverage": float(answered.mean()),
            "risk": float(wrong[answered].mean()) if answered.any() else None,
        },
    }


def robustness(
    model: ModelUnderTest,
    samples: list[Sample],
    calibration: Calibration,
    config: dict[str, Any],
    cancel: CancelToken,
) -> dict[str, dict[str, float]]:
    """Per perturbation: share of verdicts kept, flipped (real<->fake) or turned unknown."""
    from core.verdict import decide

    rng = random.Random(config["seed"] or 0)  # the same images every time
    chosen = rng.sample(samples, min(len(samples), config["robustness_images"]))
    images = [load_image(s.path) for s in chosen]

    def verdicts(rgbs: list[np.ndarray]) -> list[str]:
        batch = np.stack([model.preprocess(rgb) for rgb in rgbs])
        logits = np.concatenate([model.logits(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        return [v.verdict for v in decide(logits, calibration, model.class_names, model.real_class)]

    base = verdicts(images)
    result = {}
    for name in PERTURBATIONS:
        if cancel.is_set():
            break
        after = verdicts([perturb(rgb, name) for rgb in images])
        pairs = list(zip(base, after, strict=True))
        n = len(pairs)
        decided = [(b, a) for b, a in pairs if b != "unknown"]
        result[name] = {
            "n": n,
            "same": sum(b == a for b, a in pairs) / n,
            "flipped": sum(a not in (b, "unknown") for b, a in decided) / max(1, len(decided)),
            "to_unknown": sum(a == "unknown" for b, a in decided) / max(1, len(decided)),
        }
    return result


def leave_out_row(
    model: ModelUnderTest, config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> dict[str, Any] | None:
    """For a run trained with ``leave_out``: detection and rejection of the unseen class."""
    if not model.left_out:
        return None
    report = evaluate_model(
        model,
        {**config, "leave_out": model.left_out, "binary": False, "latency": False},
        emit,
        cancel,
    )
    return report.get("leave_out")


def model_section(
    model: ModelUnderTest, config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> dict[str, Any]:
    """Every figure of one model (the JSON half of the report)."""
    samples, provenance = data_samples(config, model, emit, cancel)
    exposed = outlier_samples(model, samples)
    samples = [s for s in samples if s.label in model.class_names]
    if not samples:
        raise UserError(f"{model.path.name}: the data has no images of its classes")
    calibration = calibration_for(model, config, emit, cancel)
    logits = compute_logits(model, samples, config["batch_size"], emit, cancel)
    labels = np.array([model.class_names.index(s.label) for s in samples])
    probs, _ = scores_of(logits, calibration.temperature, "max_softmax")
    metrics = classification_report(labels, probs, model.class_names, model.real_class)
    by_folder = folder_breakdown(
        samples, config["data"], labels, probs, model.class_names, model.real_class
    )
    if by_folder:
        metrics["by_folder"] = by_folder
    real_index = model.class_names.index(model.real_class)
    fpr, tpr = roc_curve(labels != real_index, 1.0 - probs[:, real_index])
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)[: config["thumbnails"]]
    emit("progress", {"phase": "robustness", "done": 0, "total": 1})
    return {
        "model": str(model.path),
        "kind": model.kind,
        "selection": provenance,
        "stats": model.stats,
        "calibration": calibration.to_dict(),
        "metrics": metrics,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "reliability": reliability_bins(labels, probs, n_bins=10),
        "coverage_risk": coverage_risk_curve(logits, labels, calibration),
        "misclassified": [
            {
                "path": str(samples[i].path),
                "true": samples[i].label,
                "predicted": model.class_names[predicted[i]],
                "confidence": float(probs[i].max()),
            }
            for i in wrong
        ],
        "robustness": robustness(model, samples, calibration, config, cancel),
        "leave_out": leave_out_row(model, config, emit, cancel),
        "outliers": [
            unseen_class_report(model, config, logits, samples, (c, found), emit, cancel)
            for c, found in exposed.items()
        ],
    }


def leave_out_matrix(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run trained without a generator: who it was, detection and rejection."""
    return [
        {"model": Path(s["model"]).name, **s["leave_out"]} for s in sections if s.get("leave_out")
    ]


def leave_out_table(
    rows: list[dict[str, Any]], with_model: bool, what: str = "left out (G)"
) -> str:
    """The unseen-generator rows as a table: class, (model,) n, called fake, AUROC per score, and
    for bundles the share their own rule answers "unknown"."""
    scores = list(dict.fromkeys(k for row in rows for k in row["auroc"]))
    model = ["model"] if with_model else []
    unknown = ["unknown by its rule"] if any("verdicts" in r for r in rows) else []
    headers = [what, *model, "n", "called fake", *(f"AUROC {k}" for k in scores), *unknown]
    cells = [
        [
            r["class"],
            *([r["model"]] if with_model else []),
            r["n"],
            r["detected_as_fake"],
            *(r["auroc"].get(k) for k in scores),
            *([r.get("verdicts", {}).get("unknown")] if unknown else []),
        ]
        for r in rows
    ]
    return table(headers, cells)


def render_leave_out_matrix(rows: list[dict[str, Any]]) -> str:
    """The leave-one-generator-out table over every leave-out run of the report."""
    if not rows:
        return ""
    return (
        "<h2>Leave-one-generator-out matrix</h2><p class='note'>Each row is a model trained "
        "without generator G: the share of G's images it still calls fake, and how well each "
        "rejection score tells G from the classes it knows (AUROC, 0.5 = chance).</p>"
        + leave_out_table(rows, with_model=True)
    )


def _answered_here(point: dict[str, Any]) -> str:
    """The threshold's operating point on the report's own images, as a sentence."""
    text = f". On these images it answers {point['coverage']:.1%}"
    if point["risk"] is None:
        return text + " (none answered)"
    return text + f" with {point['risk']:.1%} errors among them; the rest is shown as unknown"


def render_section(section: dict[str, Any]) -> str:
    """The HTML half of one model's section."""
    m = section["metrics"]
    names = m["class_names"]
    name = Path(section["model"]).name
    parts = [f"<h2>{name} <span class='note'>({section['kind']})</span></h2>"]
    parts.append(f"<p class='note'>{escape(selection_text(section['selection']))}</p>")
    stats = section["stats"]
    parts.append(
        table(
            ["n", "accuracy", "macro F1", "AUC real vs fake", "ECE", "params", "MACs", "bytes"],
            [
                [
                    m["n"],
                    m["accuracy"],
                    m["macro_f1"],
                    m["auc"],
                    m["ece"],
                    stats.get("params"),
                    stats.get("macs"),
                    stats.get("size_bytes"),
                ]
            ],
        )
    )
    parts.append("<h3>Per class</h3>")
    parts.append(
        table(
            ["class", "precision", "recall", "F1", "support"],
            [
                [c, *(m["per_class"][c][k] for k in ("precision", "recall", "f1", "support"))]
                for c in names
            ],
        )
    )
    if m.get("by_folder"):
        parts.append("<h3>By sub-folder (the folder below each class folder)</h3>")
        parts.append(
            table(
                ["sub-folder", "n", "accuracy", "real vs fake", "AUC"],
                [
                    [g or "(class folder)", f["n"], f["accuracy"], f["binary_accuracy"], f["auc"]]
                    for g, f in m["by_folder"].items()
                ],
            )
        )
    parts.append("<h3>Confusion matrix (rows: true, columns: predicted)</h3>")
    parts.append(
        table(
            ["", *names], [[c, *row] for c, row in zip(names, m["confusion_matrix"], strict=True)]
        )
    )
    cal = section["calibration"]
    rel = section["reliability"]
    used = [b for b in rel if b["count"]]
    charts = [
        line_chart(
            "ROC (fake = positive)",
            [("ROC", section["roc"]["fpr"], section["roc"]["tpr"])],
            "false positive rate",
            "true positive rate",
            diagonal=True,
        ),
        line_chart(
            "Reliability",
            [("accuracy", [b["confidence"] for b in used], [b["accuracy"] for b in used])],
            "confidence",
            "accuracy",
            diagonal=True,
        ),
        line_chart(
            "Coverage vs risk",
            [
                (
                    "selective risk",
                    section["coverage_risk"]["coverage"],
                    section["coverage_risk"]["risk"],
                )
            ],
            "coverage",
            "error among accepted",
        ),
    ]
    parts.append("<div class='charts'>" + "".join(charts) + "</div>")
    parts.append(
        f"<p>Rejection: {cal['score']} score, temperature {cal['temperature']:.3f}, threshold "
        f"{cal['threshold']:.4f}"
        + (
            f", chosen for at most {cal['target_risk']:.0%} errors: coverage "
            f"{(cal.get('coverage') or 0):.1%}, risk {(cal.get('risk') or 0):.1%} "
            f"({cal.get('chosen_on', '')})"
            if cal.get("target_risk") is not None
            else ""
        )
        + _answered_here(section["coverage_risk"]["at_threshold"])
        + "</p>"
    )
    rob = section["robustness"]
    parts.append("<h3>Robustness (share of decided verdicts)</h3>")
    parts.append(
        table(
            ["perturbation", "n", "unchanged", "flipped", "became unknown"],
            [[k, v["n"], v["same"], v["flipped"], v["to_unknown"]] for k, v in rob.items()],
        )
    )
    if section["leave_out"]:
        parts.append("<h3>Unseen generator (left out of training)</h3>")
        parts.append(leave_out_table([section["leave_out"]], with_model=False))
    if section.get("outliers"):
        parts.append("<h3>Outlier classes (trained toward unknown, never named)</h3>")
        parts.append(leave_out_table(section["outliers"], with_model=False, what="outlier class"))
    if section["misclassified"]:
        parts.append("<h3>Misclassified examples</h3><div class='thumbs'>")
        for item in section["misclassified"]:
            try:
                uri = thumbnail_uri(load_image(item["path"]))
            except UserError:
                continue
            title = f"{Path(item['path']).name}: {item['true']} -> {item['predicted']} ({item['confidence']:.2f})"
            parts.append(f"<img src='{uri}' title='{title}' alt='{title}'>")
        parts.append("</div>")
    return "".join(parts)


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Build the report for every model; writes ``out`` (HTML) and ``out`` + ``.json``."""
    from training.common import set_threads

    config = resolve(config, REPORT_DEFAULTS, required=("data", "models", "out"))
    if config["split"] == "all":
        config["split"] = None  # the GUI form's word for "every image"
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    out = Path(config["out"]).expanduser()
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out must end in .html, not {out.name}")
    sections = []
    for path in config["models"]:
        model = open_model(path)
        emit.log(f"report: {model.path.name} on {config['data']}")
        sections.append(model_section(model, config, emit, cancel))
    matrix = leave_out_matrix(sections)
    body = render_leave_out_matrix(matrix) + "".join(render_section(s) for s in sections)
    note = (
        f"<p class='note'>Data: {config['data']} ({config['split'] or 'all images'}). "
        "Train a leave-one-generator-out model with <code>deepfake-studio train --leave-out G</code> "
        "(in the app: the fine-tune form's advanced option Leave out class) and add it to the "
        "report's models to fill the unseen-generator rows.</p>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page("Deepfake Studio quality report", note + body), encoding="utf-8")
    json_path = out.with_suffix(".json")
    json_path.write_text(
        json.dumps({"config": config, "models": sections, "leave_out_matrix": matrix}, indent=2),
        encoding="utf-8",
    )
    emit("artifact", {"kind": "report", "path": str(out)})
    return {
        "report": str(out),
        "json": str(json_path),
        "models": [_headline(s) for s in sections],
        "leave_out_matrix": matrix,
    }


def _headline(section: dict[str, Any]) -> dict[str, Any]:
    m = section["metrics"]
    return {
        "model": section["model"],
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "auc": m["auc"],
        "ece": m["ece"],
        "coverage": section["calibration"].get("coverage"),
        "robustness": section["robustness"],
        "leave_out": section["leave_out"],
        "outliers": section["outliers"],
    }
