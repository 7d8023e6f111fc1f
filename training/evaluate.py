"""The evaluate job: metrics of one or more models (run folders or bundles) on a data set.

For every model: accuracy, per-class P/R/F1, confusion matrix, ROC-AUC (real vs fake), ECE, ``n``,
and the model's params, MACs, size in bytes and single-image latency. ``binary`` maps every class
not named ``real`` to ``fake`` when the data's classes differ from the model's; ``leave_out`` treats
one class of the data as an unseen generator and reports how well each rejection score separates
it from the known classes (AUROC), and how often it is still called fake. A model trained with
outlier classes (``train --outlier-class``) gets the same row for each of them found in the data
(``outliers``): they are not its classes, they are meant to come out unknown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.datasets import DatasetIndex, Sample
from core.errors import UserError
from core.events import EventWriter
from core.inference import BasePredictor
from core.metrics import classification_report, group_report
from core.preprocess import PreprocessSpec
from core.rejection import compare_scores, fit_temperature
from core.splits import split_fingerprint
from core.verdict import VERDICTS, decide, softmax
from core.workspace import Workspace
from training.config import outlier_classes, read_split, resolve, split_paths
from training.control import Cancelled, CancelToken

EVALUATE_DEFAULTS: dict[str, Any] = {
    "kind": "evaluate",
    "models": None,
    "data": None,
    "split": None,
    "binary": False,
    "flip_average": False,
    "leave_out": None,
    "seed": None,
    "val": None,
    "test": None,
    "batch_size": 64,
    "latency": True,
    "threads": 0,
    "workspace": None,
    "out": None,
}


@dataclass
class ModelUnderTest:
    """A run folder (torch) or a bundle (onnxruntime) with the figures the lineage compares."""

    path: Path
    kind: str
    predictor: BasePredictor
    stats: dict[str, Any] = field(default_factory=dict)
    run_split: Path | None = None
    flip_average: bool = False
    """Whether each image is scored together with its mirror image."""
    training_split: dict[str, Any] | None = None
    """A bundle's record of its parent run's split (``training_split``), when it has one."""
    outlier_classes: tuple[str, ...] = ()
    """The classes its training exposed as outliers (trained toward unknown, never named)."""
    left_out: str | None = None
    """A run's ``leave_out`` class (trained without it), from its config."""

    @property
    def class_names(self) -> list[str]:
        return list(self.predictor.class_names)

    @property
    def real_class(self) -> str:
        return self.predictor.real_class

    @property
    def preprocess(self) -> PreprocessSpec:
        return self.predictor.preprocess

    @property
    def temperature(self) -> float:
        """The bundle's calibrated temperature (what the app shows); 1 for a raw run."""
        if self.kind == "bundle":
            return float(self.predictor.bundle.calibration.temperature)
        return 1.0

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.predictor.predict_batch(batch)[0]


def open_model(path: str | Path, flip_average: bool = False) -> ModelUnderTest:
    """A run folder (with model.json) or a bundle folder/zip (with bundle.json).

    ``flip_average`` scores a run's network averaged with its mirror-image pass, as
    ``export --flip-average`` would ship it; a bundle's averaging was fixed when it was exported.
    """
    from core.inference import TorchPredictor, open_predictor

    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise UserError(f"model {path} does not exist")
    predictor = open_predictor(path)
    if isinstance(predictor, TorchPredictor):
        from core.models import model_stats

        if flip_average:
            from core.flip_average import flip_averaged
            from core.models import ModelDescription

            predictor = TorchPredictor(flip_averaged(predictor.model), ModelDescription.load(path))
        stats = model_stats(predictor.model, predictor.preprocess.input_size)
        stats["size_bytes"] = (path / "best.safetensors").stat().st_size
        split = path / "split.json"
        config_path = path / "config.json"
        run_config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
        return ModelUnderTest(
            path,
            "run",
            predictor,
            stats,
            split if split.is_file() else None,
            flip_average,
            outlier_classes=tuple(outlier_classes(run_config)),
            left_out=run_config.get("leave_out"),
        )
    bundle = predictor.bundle
    bundle_flips = bool(bundle.meta.get("export", {}).get("flip_average"))
    if flip_average and not bundle_flips:
        raise UserError(
            f"{path.name} was exported without mirror averaging; a bundle's averaging is fixed "
            "at export (export --flip-average), --flip-average applies to run folders"
        )
    stats = {
        "size_bytes": bundle.model_path.stat().st_size,
        "params": bundle.meta.get("stats", {}).get("params"),
        "macs": bundle.meta.get("stats", {}).get("macs"),
        "precision": bundle.meta.get("model", {}).get("precision"),
    }
    parent_split = Path(str(bundle.meta.get("parent_run") or "")) / "split.json"
    training_split = bundle.meta.get("training_split")
    return ModelUnderTest(
        path,
        "bundle",
        predictor,
        stats,
        parent_split if parent_split.is_file() else None,
        bundle_flips,
        training_split,
        tuple(outlier_classes(training_split or {})),
    )


DEFAULT_SHARE = 0.1
"""The val and test share of a data set split here when nothing recorded says otherwise."""


class Selection(NamedTuple):
    """The images to evaluate and where their split came from (the report's ``selection``)."""

    samples: list[Sample]
    provenance: dict[str, Any]


def data_samples(config: dict[str, Any], model: ModelUnderTest, emit, cancel) -> Selection:
    """The images to evaluate: the run's recorded split when ``data`` is the run's data set
    (for a bundle: its parent run's, when that folder is here), else the data set's own seeded
    split (or every image without ``split``).

    A bundle records its parent run's seed, shares and split fingerprints (``training_split``):
    without its parent run folder the same seed and shares re-make the same split (it depends
    only on file contents), the fingerprint tells whether it did, and a mismatch is logged
    because test images may then have been training images.

    A ``leave_out`` class and the model's outlier classes never appear in a run's recorded val or
    test split (left out of training, or trained toward unknown), so their images the run never
    trained on are added: all of them for a left-out class, the val and test share of an outlier
    class.
    """
    root = Path(config["data"]).expanduser().resolve()
    split = config["split"]
    if not split:
        samples = _index(root, config, emit, cancel).samples()
        return Selection(_non_empty(samples, root, split), {"split": "all", "source": "all images"})
    if model.run_split is not None:
        recorded_root = json.loads(model.run_split.read_text(encoding="utf-8"))["root"]
        if Path(recorded_root).resolve() == root:
            samples = read_split(model.run_split, split)
            unseen = {config.get("leave_out"), *model.outlier_classes} - {None}
            unseen -= {s.label for s in samples}
            if unseen:
                trained = split_paths(model.run_split, "train")
                samples += [
                    s
                    for s in _index(root, config, emit, cancel).samples()
                    if s.label in unseen and s.path not in trained
                ]
            source = f"the recorded split of run {model.run_split.parent}"
            return Selection(samples, {"split": split, "source": source})
    seed, val, test = split_shares(config, model)
    index = _index(root, config, emit, cancel)
    samples = _non_empty(index.split_samples(split, seed, val, test), root, split)
    provenance = {
        "split": split,
        "source": f"seeded split of {root.name} (seed {seed}, val {val}, test {test})",
        "matches_training_split": _matches_training(model, split, samples, root, config),
    }
    if provenance["matches_training_split"] is False:
        emit.log(
            f"warning: this {split} split of {root.name} is not the {split} split "
            f"{model.path.name} recorded for its training data of that name (other files or "
            "other shares): if this is that data set, its images may have been training "
            "images and the figures may be optimistic",
            level="warning",
        )
    return Selection(samples, provenance)


def split_shares(config: dict[str, Any], model: ModelUnderTest) -> tuple[int, float, float]:
    """Seed, val and test share for splitting the data here: those given in ``config``, else
    those of the bundle's parent run (``training_split``), else seed 0 and :data:`DEFAULT_SHARE`.
    """
    recorded = model.training_split or {}

    def pick(key: str, fallback: Any) -> Any:
        for value in (config.get(key), recorded.get(key)):
            if value is not None:
                return value
        return fallback

    return (
        int(pick("seed", 0)),
        float(pick("val", DEFAULT_SHARE)),
        float(pick("test", DEFAULT_SHARE)),
    )


def _matches_training(
    model: ModelUnderTest, split: str, samples: list[Sample], root: Path, config: dict[str, Any]
) -> bool | None:
    """Whether ``samples`` are exactly the bundle's recorded ``split`` (``None``: nothing
    recorded for this data set). Classes the model does not know (a ``leave_out`` class, its
    training's outlier class, generators scored ``binary``) are not part of the comparison."""
    recorded = model.training_split or {}
    expected = recorded.get("fingerprints", {}).get(split)
    if expected is None or recorded.get("data") != root.name:
        return None
    known = set(model.class_names) - {config.get("leave_out")}
    kept = [s for s in samples if s.label in known]
    found = split_fingerprint((s.path.relative_to(root).as_posix(), s.label) for s in kept)
    return found == expected


def _non_empty(samples: list[Sample], root: Path, split: str | None) -> list[Sample]:
    if not samples:
        raise UserError(f"no readable images in {root}" + (f" ({split} split)" if split else ""))
    return samples


def _index(root: Path, config: dict[str, Any], emit, cancel) -> DatasetIndex:
    def progress(done: int, total: int) -> None:
        emit("progress", {"phase": "index", "done": done, "total": total})

    return DatasetIndex.build(
        root, Workspace.resolve(config.get("workspace")), progress=progress, cancel=cancel
    )


def compute_logits(
    model: ModelUnderTest,
    samples: list[Sample],
    batch_size: int,
    emit: EventWriter,
    cancel: CancelToken,
) -> np.ndarray:
    """Logits of every sample, decoding with a small thread pool, batch by batch."""
    from concurrent.futures import ThreadPoolExecutor

    out = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(samples), batch_size):
            if cancel.is_set():
                raise Cancelled
            chunk = samples[start : start + batch_size]
            batch = np.stack(list(pool.map(lambda s: model.preprocess.from_file(s.path), chunk)))
            out.append(model.logits(batch))
            emit(
                "progress",
                {"phase": "evaluate", "done": start + len(chunk), "total": len(samples)},
            )
    return np.concatenate(out) if out else np.zeros((0, len(model.class_names)))


def measure_latency_ms(model: ModelUnderTest, sample: Sample, repeats: int = 20) -> float:
    """Median time of one preprocessed image through the model (batch 1), in milliseconds."""
    batch = model.preprocess.from_file(sample.path)[None]
    model.logits(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.logits(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def evaluate_model(
    model: ModelUnderTest, config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> dict[str, Any]:
    """The JSON report of one model on the configured data."""
    samples, provenance = data_samples(config, model, emit, cancel)
    leave_out = config["leave_out"]
    heldout = [s for s in samples if s.label == leave_out] if leave_out else []
    exposed = outlier_samples(model, samples, leave_out)
    known = [s for s in samples if s.label != leave_out and s.label not in exposed]
    data_classes = sorted({s.label for s in known})
    unknown = [c for c in data_classes if c not in model.class_names]
    binary = bool(config["binary"])
    if unknown and not binary:
        raise UserError(
            f"the data has classes {unknown} the model does not know ({model.class_names}); "
            "use --binary to score real vs fake, or --leave-out CLASS to test rejection"
        )
    if leave_out and not heldout:
        raise UserError(f"--leave-out {leave_out!r}: the data has no images of that class")
    logits = compute_logits(model, known, config["batch_size"], emit, cancel)
    probs = softmax(logits / model.temperature)
    if binary:
        real_index = model.class_names.index(model.real_class)
        p_real = probs[:, real_index]
        probs = np.stack([p_real, 1.0 - p_real], axis=1)
        names = [model.real_class, "fake"]
        labels = np.array([0 if s.label == model.real_class else 1 for s in known])
    else:
        names = model.class_names
        labels = np.array([model.class_names.index(s.label) for s in known])
    report = classification_report(labels, probs, names, model.real_class)
    by_folder = folder_breakdown(known, config["data"], labels, probs, names, model.real_class)
    if by_folder:
        report["by_folder"] = by_folder
    report.update(
        {
            "model": str(model.path),
            "model_kind": model.kind,
            "data": str(Path(config["data"]).expanduser().resolve()),
            "split": config["split"] or "all",
            "selection": provenance,
            "binary": binary,
            "flip_average": model.flip_average,
            "temperature": model.temperature,
            **model.stats,
        }
    )
    if config["latency"] and known:
        report["latency_ms"] = measure_latency_ms(model, known[0])
    if heldout:
        report["leave_out"] = unseen_class_report(
            model, config, logits, known, (leave_out, heldout), emit, cancel
        )
    if exposed and not unknown:  # trained toward unknown: told from the known classes?
        report["outliers"] = [
            unseen_class_report(model, config, logits, known, item, emit, cancel)
            for item in exposed.items()
        ]
    return report


def outlier_samples(
    model: ModelUnderTest, samples: list[Sample], leave_out: str | None = None
) -> dict[str, list[Sample]]:
    """The images of each of the model's outlier classes among ``samples`` (classes with none,
    and a ``leave_out`` class, which has a row of its own, are not keys)."""
    found = {c: [s for s in samples if s.label == c] for c in model.outlier_classes}
    return {c: images for c, images in found.items() if images and c != leave_out}


def folder_breakdown(
    samples: list[Sample],
    data: str | Path,
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    real_class: str,
) -> dict[str, dict[str, Any]] | None:
    """:func:`core.metrics.group_report` by the sub-folder each image lies in below its class
    folder of ``data`` (``real/faces/x.jpg``: ``faces``; ``""`` directly in the class folder), or
    ``None`` when the data has fewer than two such sub-folders (nothing to break down)."""
    root = Path(data).expanduser().resolve()
    groups = []
    for sample in samples:
        try:
            parts = sample.path.relative_to(root).parts
        except ValueError:
            parts = ()
        groups.append(parts[1] if len(parts) > 2 else "")
    if len(set(groups) - {""}) < 2:
        return None
    return group_report(groups, labels, probs, class_names, real_class)


def unseen_class_report(
    model: ModelUnderTest,
    config: dict[str, Any],
    logits: np.ndarray,
    known: list[Sample],
    heldout: tuple[str, list[Sample]],
    emit: EventWriter,
    cancel: CancelToken,
) -> dict[str, Any]:
    """How well each score tells the held-out class ``(name, samples)`` from known classes, after
    calibration; for a bundle also what its own rule makes of them (``verdicts``: shares)."""
    name, samples = heldout
    labels = np.array([model.class_names.index(s.label) for s in known])
    temperature = fit_temperature(logits, labels)
    out_logits = compute_logits(model, samples, config["batch_size"], emit, cancel)
    comparison = compare_scores(logits, labels, temperature, heldout_logits=out_logits)
    real_index = model.class_names.index(model.real_class)
    called_fake = float((softmax(out_logits).argmax(axis=1) != real_index).mean())
    report = {
        "class": name,
        "n": len(samples),
        "temperature": temperature,
        "auroc": {k: v["auroc_heldout"] for k, v in comparison["scores"].items()},
        "best_score": comparison["best"],
        "detected_as_fake": called_fake,
    }
    if model.kind == "bundle":
        report["verdicts"] = verdict_shares(model, out_logits)
    return report


def verdict_shares(model: ModelUnderTest, logits: np.ndarray) -> dict[str, float]:
    """The share of real / fake / unknown verdicts a bundle's own rule gives these logits."""
    rule = decide(logits, model.predictor.bundle.calibration, model.class_names, model.real_class)
    return {kind: sum(v.verdict == kind for v in rule) / max(1, len(rule)) for kind in VERDICTS}


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Evaluate every model in ``config['models']``; one report, or ``{"models": [...]}``."""
    from training.common import set_threads

    config = resolve(config, EVALUATE_DEFAULTS, required=("data", "models"))
    if not config["models"]:
        raise UserError("an evaluate job needs at least one model (run folder or bundle)")
    data = Path(config["data"]).expanduser()
    if not data.is_dir():
        raise UserError(f"data folder {data} does not exist or is not a folder")
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    reports = []
    for path in config["models"]:
        model = open_model(path, flip_average=bool(config["flip_average"]))
        emit.log(f"evaluating {model.path.name} on {data}")
        reports.append(evaluate_model(model, config, emit, cancel))
    result = reports[0] if len(reports) == 1 else {"models": reports}
    if config["out"]:
        Path(config["out"]).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
