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
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from core.datasets import Sample
from core.errors import UserError
from core.events import EventWriter
from core.metrics import ECE_BINS, classification_report, reliability_bins, roc_curve
from core.preprocess import load_image
from core.rejection import Calibration, choose_threshold, fit_temperature
from core.reports import selection_text
from core.verdict import accepts, scores_of
from training.config import check_range, read_split, resolve
from training.control import CancelToken
from training.evaluate import (
    ModelUnderTest,
    compute_logits,
    data_samples,
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
    """Coverage and selective risk when accepting the top-k scores, k = 1..N (21 points), and
    ``at_threshold``: the share answered at the calibrated threshold and the errors among them.
    With an energy floor only the images at or above it can be answered, as by the rule, so the
    curve ends at their share and passes through the threshold's point."""
    probs, values = scores_of(logits, calibration.temperature, calibration.score)
    wrong = probs.argmax(axis=1) != labels
    eligible = np.ones(len(values), dtype=bool)
    if calibration.energy_floor is not None:
        energies = scores_of(logits, calibration.temperature, "energy")[1]
        eligible = energies >= calibration.energy_floor
    order = np.argsort(-values, kind="mergesort")
    order = order[eligible[order]]
    cumulative = np.cumsum(wrong[order]) / np.arange(1, len(order) + 1)
    picks = np.unique(np.linspace(0, len(order) - 1, 21).astype(int)) if len(order) else order
    _, answered = accepts(logits, calibration)
    return {
        "coverage": ((picks + 1) / len(values)).tolist(),
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
) -> dict[str, dict[str, float | int | None]]:
    """Per perturbation, of the ``decided`` verdicts (real or fake) on the clean images: the
    share kept (``same``), flipped (real <-> fake) and turned unknown (``to_unknown``), which sum
    to 1; and of the ``unknown`` ones, the share the perturbation turned into an answer."""
    from core.verdict import decide

    rng = random.Random(config["seed"] or 0)  # the same images every time
    chosen = rng.sample(samples, min(len(samples), config["robustness_images"]))
    if not chosen:
        return {}
    images = [load_image(s.path) for s in chosen]

    def verdicts(rgbs: list[np.ndarray]) -> list[str]:
        batch = np.stack([model.preprocess(rgb) for rgb in rgbs])
        logits = np.concatenate([model.logits(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        return [v.verdict for v in decide(logits, calibration, model.class_names, model.real_class)]

    def share(count: int, of: int) -> float | None:
        return count / of if of else None

    base = verdicts(images)
    result = {}
    for name in PERTURBATIONS:
        if cancel.is_set():
            break
        after = verdicts([perturb(rgb, name) for rgb in images])
        pairs = list(zip(base, after, strict=True))
        decided = [(b, a) for b, a in pairs if b != "unknown"]
        undecided = [a for b, a in pairs if b == "unknown"]
        result[name] = {
            "n": len(pairs),
            "decided": len(decided),
            "same": share(sum(b == a for b, a in decided), len(decided)),
            "flipped": share(sum(a not in (b, "unknown") for b, a in decided), len(decided)),
            "to_unknown": share(sum(a == "unknown" for _, a in decided), len(decided)),
            "from_unknown": share(sum(a != "unknown" for a in undecided), len(undecided)),
        }
    return result


class DataRoles(NamedTuple):
    """The images of a data set as one model sees them, by class."""

    known: list[Sample]
    """Images of the model's classes: the accuracy, ROC, calibration and robustness figures."""
    left_out: list[Sample]
    """Images of the class the run was trained without (its leave-one-generator-out row)."""
    outliers: dict[str, list[Sample]]
    """Images of classes its training pushed toward "unknown" (outlier exposure)."""
    unseen: dict[str, list[Sample]]
    """Images of any other class the model was never trained on (scored as unseen)."""


def data_roles(model: ModelUnderTest, samples: list[Sample]) -> DataRoles:
    """Sort ``samples`` into :class:`DataRoles` for ``model``."""
    outliers = outlier_samples(model, samples, model.left_out)
    known = [s for s in samples if s.label in model.class_names]
    left_out = [s for s in samples if model.left_out and s.label == model.left_out]
    unseen: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.label not in {*model.class_names, *outliers, model.left_out}:
            unseen.setdefault(sample.label, []).append(sample)
    return DataRoles(known, left_out, outliers, dict(sorted(unseen.items())))


def no_known_images(model: ModelUnderTest, samples: list[Sample]) -> UserError:
    """The error for data that hold none of the model's classes, naming both sides."""
    found = sorted({s.label for s in samples})
    text = (
        f"{model.path.name}: none of the data's classes {found} is one of the model's "
        f"{model.class_names}"
    )
    lowered = {c.lower() for c in model.class_names}
    if any(c.lower() in lowered for c in found):
        text += " (class folder names must match exactly, upper and lower case included)"
    return UserError(text)


def role_notes(model: ModelUnderTest, roles: DataRoles) -> list[str]:
    """What the report did with images that are not of the model's classes, in sentences."""
    notes = []
    if roles.unseen:
        listed = ", ".join(f"{c} ({len(images)})" for c, images in roles.unseen.items())
        notes.append(
            f"Classes the model was not trained on: {listed} images. They are not in the "
            "accuracy, ROC or calibration figures; the unseen-classes table says how often they "
            "are called fake and how well the rejection scores tell them apart."
        )
    if model.left_out and not roles.left_out:
        notes.append(
            f"The run was trained without {model.left_out!r}, but these data hold no images of "
            "it: no leave-one-generator-out row."
        )
    return notes


def spread_over_cells(
    labels: np.ndarray, predicted: np.ndarray, count: int
) -> tuple[list[int], int]:
    """Up to ``count`` misclassified rows taken in turn from each (true, predicted) cell, so
    every kind of error shows; and how many rows are misclassified in all."""
    wrong = np.flatnonzero(predicted != labels)
    cells: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        cells.setdefault((int(labels[i]), int(predicted[i])), []).append(int(i))
    queues = [cells[key] for key in sorted(cells)]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(count, len(wrong)):
        picked += [queue[depth] for queue in queues if depth < len(queue)][: count - len(picked)]
        depth += 1
    return sorted(picked), len(wrong)


def model_section(
    model: ModelUnderTest, config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> dict[str, Any]:
    """Every figure of one model (the JSON half of the report)."""
    samples, provenance = data_samples({**config, "leave_out": model.left_out}, model, emit, cancel)
    roles = data_roles(model, samples)
    if not roles.known:
        raise no_known_images(model, samples)
    calibration = calibration_for(model, config, emit, cancel)
    logits = compute_logits(model, roles.known, config["batch_size"], emit, cancel)
    labels = np.array([model.class_names.index(s.label) for s in roles.known])
    probs, _ = scores_of(logits, calibration.temperature, "max_softmax")
    metrics = classification_report(labels, probs, model.class_names, model.real_class)
    by_folder = folder_breakdown(
        roles.known, config["data"], labels, probs, model.class_names, model.real_class
    )
    if by_folder:
        metrics["by_folder"] = by_folder
    real_index = model.class_names.index(model.real_class)
    fpr, tpr = roc_curve(labels != real_index, 1.0 - probs[:, real_index])
    predicted = probs.argmax(axis=1)
    shown, wrong = spread_over_cells(labels, predicted, config["thumbnails"])

    def unseen_rows(groups: dict[str, list[Sample]]) -> list[dict[str, Any]]:
        return [
            unseen_class_report(model, config, logits, roles.known, item, emit, cancel)
            for item in groups.items()
        ]

    emit("progress", {"phase": "robustness", "done": 0, "total": 1})
    return {
        "model": str(model.path),
        "kind": model.kind,
        "selection": provenance,
        "notes": role_notes(model, roles),
        "stats": model.stats,
        "calibration": calibration.to_dict(),
        "metrics": metrics,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()} if metrics["auc"] is not None else None,
        "reliability": reliability_bins(labels, probs, n_bins=ECE_BINS),
        "coverage_risk": coverage_risk_curve(logits, labels, calibration),
        "misclassified_total": wrong,
        "misclassified": [
            {
                "path": str(roles.known[i].path),
                "true": roles.known[i].label,
                "predicted": model.class_names[predicted[i]],
                "confidence": float(probs[i].max()),
            }
            for i in shown
        ],
        "robustness": robustness(model, roles.known, calibration, config, cancel),
        "leave_out": unseen_rows({model.left_out: roles.left_out})[0] if roles.left_out else None,
        "outliers": unseen_rows(roles.outliers),
        "unseen": unseen_rows(roles.unseen),
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


def _charts(section: dict[str, Any]) -> str:
    """ROC (when the data have real and fake images), reliability and coverage-vs-risk."""
    m = section["metrics"]
    charts = []
    if section["roc"]:
        charts.append(
            line_chart(
                "ROC (fake = positive)",
                [(f"AUC {m['auc']:.3f}", section["roc"]["fpr"], section["roc"]["tpr"])],
                "false positive rate",
                "true positive rate",
                diagonal=True,
                legend_below=True,
            )
        )
    used = [b for b in section["reliability"] if b["count"]]
    charts.append(
        line_chart(
            f"Reliability ({len(section['reliability'])} bins, as the ECE)",
            [
                (
                    f"ECE {m['ece']:.3f}",
                    [b["confidence"] for b in used],
                    [b["accuracy"] for b in used],
                )
            ],
            "confidence",
            "accuracy",
            diagonal=True,
        )
    )
    curve = section["coverage_risk"]
    point = curve["at_threshold"]
    top = max([r for r in curve["risk"] if r is not None] + [point["risk"] or 0.0, 0.01])
    charts.append(
        line_chart(
            "Coverage vs risk",
            [("by score", curve["coverage"], curve["risk"])],
            "coverage",
            "error among accepted",
            y_max=float(np.ceil(top * 10) / 10),
            marks=[("threshold", point["coverage"], point["risk"])]
            if point["risk"] is not None
            else [],
        )
    )
    note = (
        ""
        if section["roc"]
        else "<p class='note'>No ROC: the data hold only real or only fake images.</p>"
    )
    return note + "<div class='charts'>" + "".join(charts) + "</div>"


def _rejection_text(section: dict[str, Any]) -> str:
    cal = section["calibration"]
    return (
        f"<p>Rejection: {escape(cal['score'])} score, temperature {cal['temperature']:.3f}, "
        f"threshold {cal['threshold']:.4f}"
        + (
            f", chosen for at most {cal['target_risk']:.0%} errors: coverage "
            f"{(cal.get('coverage') or 0):.1%}, risk {(cal.get('risk') or 0):.1%} "
            f"({escape(cal.get('chosen_on', ''))})"
            if cal.get("target_risk") is not None
            else ""
        )
        + (
            f", energy floor {cal['energy_floor']:.3f}"
            if cal.get("energy_floor") is not None
            else ""
        )
        + _answered_here(section["coverage_risk"]["at_threshold"])
        + "</p>"
    )


def _robustness_table(rob: dict[str, dict[str, Any]]) -> str:
    if not rob:
        return "<p class='note'>Robustness not measured (no images asked for).</p>"
    return (
        "<p class='note'>Of the images' decided verdicts (real or fake): the share unchanged, "
        "flipped between real and fake, or turned unknown by the perturbation (they add up to "
        "1); of their unknown verdicts, the share the perturbation turned into an answer.</p>"
        + table(
            [
                "perturbation",
                "images",
                "decided",
                "unchanged",
                "flipped",
                "became unknown",
                "unknown became answered",
            ],
            [
                [
                    k,
                    v["n"],
                    v["decided"],
                    v["same"],
                    v["flipped"],
                    v["to_unknown"],
                    v["from_unknown"],
                ]
                for k, v in rob.items()
            ],
        )
    )


def _thumbnails(section: dict[str, Any]) -> str:
    items = section["misclassified"]
    if not items:
        return ""
    total = section.get("misclassified_total", len(items))
    parts = [
        f"<h3>Misclassified examples</h3><p class='note'>{len(items)} of {total} misclassified "
        "images, taken in turn from each cell of the confusion matrix.</p><div class='thumbs'>"
    ]
    for item in items:
        try:
            uri = thumbnail_uri(load_image(item["path"]))
        except UserError:
            continue
        title = escape(
            f"{Path(item['path']).name}: {item['true']} -> {item['predicted']} "
            f"({item['confidence']:.2f})",
            quote=True,
        )
        parts.append(f'<img src="{uri}" title="{title}" alt="{title}">')
    parts.append("</div>")
    return "".join(parts)


def _per_class_table(m: dict[str, Any]) -> str:
    """P/R/F1 per class; a dash for a class with no images here that was never predicted."""
    matrix = np.array(m["confusion_matrix"])
    absent = (matrix.sum(axis=0) + matrix.sum(axis=1)) == 0
    rows = []
    for i, name in enumerate(m["class_names"]):
        figures = m["per_class"][name]
        prf = [None] * 3 if absent[i] else [figures[k] for k in ("precision", "recall", "f1")]
        rows.append([name, *prf, figures["support"]])
    return (
        "<h3>Per class</h3><p class='note'>A dash: the class has no images here and was never "
        "predicted (left out of the macro F1).</p>"
        + table(["class", "precision", "recall", "F1", "support"], rows)
    )


def render_section(section: dict[str, Any]) -> str:
    """The HTML half of one model's section."""
    m = section["metrics"]
    names = m["class_names"]
    name = Path(section["model"]).name
    parts = [f"<h2>{escape(name)} <span class='note'>({escape(section['kind'])})</span></h2>"]
    parts.append(f"<p class='note'>{escape(selection_text(section['selection']))}</p>")
    parts += [f"<p class='note'>{escape(note)}</p>" for note in section.get("notes", [])]
    stats = section["stats"]
    parts.append(
        table(
            [
                "n",
                "accuracy",
                "macro F1",
                "AUC real vs fake",
                f"ECE ({ECE_BINS} bins)",
                "params",
                "MACs",
                "bytes",
            ],
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
    parts.append(_per_class_table(m))
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
    parts.append(_charts(section))
    parts.append(_rejection_text(section))
    parts.append("<h3>Robustness</h3>")
    parts.append(_robustness_table(section["robustness"]))
    if section["leave_out"]:
        parts.append("<h3>Unseen generator (left out of training)</h3>")
        parts.append(leave_out_table([section["leave_out"]], with_model=False))
    if section.get("outliers"):
        parts.append("<h3>Outlier classes (trained toward unknown, never named)</h3>")
        parts.append(leave_out_table(section["outliers"], with_model=False, what="outlier class"))
    if section.get("unseen"):
        parts.append("<h3>Classes the model was not trained on</h3>")
        parts.append(leave_out_table(section["unseen"], with_model=False, what="class"))
    parts.append(_thumbnails(section))
    return "".join(parts)


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Build the report for every model; writes ``out`` (HTML) and ``out`` + ``.json``."""
    from training.common import set_threads

    config = resolve(config, REPORT_DEFAULTS, required=("data", "models", "out"))
    check_range(config, "robustness_images", 0, 100_000)
    if config["split"] == "all":
        config["split"] = None  # the GUI form's word for "every image"
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    out = Path(config["out"]).expanduser()
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out must end in .html, not {out.name}")
    models = list(dict.fromkeys(str(Path(m).expanduser().resolve()) for m in config["models"]))
    if len(models) < len(config["models"]):
        emit.log("a model was given more than once: it is scored once", "warning")
    sections = []
    for path in models:
        model = open_model(path)
        emit.log(f"report: {model.path.name} on {config['data']}")
        sections.append(model_section(model, config, emit, cancel))
    matrix = leave_out_matrix(sections)
    body = render_leave_out_matrix(matrix) + "".join(render_section(s) for s in sections)
    note = (
        f"<p class='note'>Data: {escape(str(config['data']))} ({config['split'] or 'all images'}). "
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
        "coverage": section["calibration"].get("coverage"),  # where the threshold was chosen
        "answered_here": section["coverage_risk"]["at_threshold"],  # on the report's images
        "robustness": section["robustness"],
        "leave_out": section["leave_out"],
        "outliers": section["outliers"],
        "unseen": section["unseen"],
    }
