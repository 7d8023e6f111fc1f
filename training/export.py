"""The export job: a training run folder to a verified model bundle (docs/bundle-format.md).

``run(config, emit, cancel)`` goes through four phases, each reported by ``progress`` events:

1. **export**: the run's weights (``core.models.load_model``, pruned runs included) to ONNX with
   the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): it takes well under a
   second where the dynamo exporter takes seconds and, offline, fails to convert its graph to the
   requested opset. Input ``image`` ``[batch, 3, S, S]``, outputs ``logits`` and, for networks
   with a "pool + linear" head, ``cam`` (:class:`core.explain.CamModel`); dynamic batch axis;
   checked with ``onnx.checker`` (full check).
2. **quantize** (``int8``): static INT8 with onnxruntime (:mod:`training.quantize`), calibrated on
   ``calib_images`` training images.
3. **calibrate**: the shipped model's logits on the run's val split give the temperature, the
   score (``auto`` picks the one with the higher right-vs-wrong AUROC,
   :func:`core.rejection.compare_scores`) and the threshold for ``target_risk``; how they were
   chosen is stored in ``bundle.json`` as ``calibration_choice``; ``energy_floor`` (a share, e.g.
   0.8) first sets an energy floor that keeps that share of the val images (unfamiliar images
   below it are unknown whatever the score) and the threshold is chosen above it. The
   temperature stays 1 when
   the val split has no wrong answers (the likelihood then keeps rising as ``T -> 0`` and every
   probability would round to 1, making the threshold meaningless).
4. **verify**: torch, ONNX FP32 and ONNX INT8 on the same test images (:mod:`training.verify`):
   parity, accuracy, agreement, sizes and latency, plus the golden vectors re-checked through
   :func:`core.bundle.verify_golden` with :class:`core.inference.OnnxPredictor`.

The export **fails** (UserError; the CLI exits 2) when torch and ONNX FP32 differ by more than
``tolerance`` (default 1e-3 on logits and ``cam``) on the golden vectors or the test images, when
INT8 test accuracy is more than ``max_int8_drop`` (default 0.02, i.e. 2 points) below FP32, or when
the written bundle does not reproduce its golden vectors. The bundle is assembled in a hidden
folder beside ``out`` and only renamed into place once everything passed, so a failed export never
leaves a bundle that looks valid (an older bundle at ``out`` stays untouched); the failed report is
written to ``<out>.verification-failed.json``.

``flip_average`` wraps the network in :func:`core.flip_average.flip_averaged` before phase 1:
the graph averages the logits of each image and its mirror image (test-time augmentation inside
the model, so apps need nothing new); torch, ONNX and the calibration all see the wrapped model,
and ``stats.macs`` doubles.

With ``int8`` the INT8 model is shipped as ``model.onnx`` and the FP32 figures stay in the report;
without it only FP32 is made. ``bundle.json`` ``metrics`` are the shipped model's test-split
metrics as the app shows them (probabilities with the calibrated temperature; ``ece_raw`` is the
ECE before it) plus ``coverage`` / ``selective_risk`` of its threshold on the test split.
``verification.json`` (the report) is written inside the bundle folder; ``zip`` also writes
``<out>.zip``.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from core.datasets import Sample
from core.errors import UserError
from core.events import EventWriter
from core.rejection import Calibration
from training.config import check_range, read_split, resolve, split_record
from training.control import Cancelled, CancelToken
from training.verify import MAX_INT8_DROP, PARITY_TOLERANCE

if TYPE_CHECKING:
    import torch

    from core.models import ModelDescription

Splits = dict[str, list[Sample]]
"""The run's recorded ``train`` / ``val`` / ``test`` samples."""

SCORE_CHOICES = ("auto", "max_softmax", "energy")
OPSET_RANGE = (13, 20)
"""QDQ per-channel needs opset 13; the TorchScript exporter stops at 20."""
GOLDEN_MAX_PIXELS = 1024 * 1024
"""Golden images larger than this are skipped when smaller ones exist (the PNG ships)."""
VERIFICATION_FILE = "verification.json"
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"

EXPORT_DEFAULTS: dict[str, Any] = {
    "kind": "export",
    "run": None,
    "out": None,
    "weights": "best",
    "int8": False,
    "flip_average": False,
    "zip": False,
    "target_risk": 0.05,
    "score": "auto",
    "energy_floor": None,
    "calib_images": 200,
    "opset": 17,
    "golden": 6,
    "tolerance": PARITY_TOLERANCE,
    "max_int8_drop": MAX_INT8_DROP,
    "verify_images": 0,
    "latency_repeats": 50,
    "batch_size": 64,
    "threads": 0,
    "seed": 0,
    "workspace": None,
}


# -- configuration ----------------------------------------------------------------------------
def validate_export(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and the run folder checked, before any work starts."""
    config = resolve(config, EXPORT_DEFAULTS, required=("run",))
    check_range(config, "target_risk", 0.0, 0.99)
    check_range(config, "calib_images", 1, 100_000)
    check_range(config, "opset", *OPSET_RANGE)
    check_range(config, "golden", 4, 8)
    check_range(config, "tolerance", 1e-9, 1.0)
    check_range(config, "max_int8_drop", 0.0, 1.0)
    check_range(config, "verify_images", 0, 10_000_000)
    check_range(config, "latency_repeats", 1, 10_000)
    check_range(config, "batch_size", 1, 4096)
    if config["energy_floor"] is not None:  # the share of val images the floor keeps
        check_range(config, "energy_floor", 0.01, 1.0)
    if config["score"] not in SCORE_CHOICES:
        raise UserError(f"score must be one of {SCORE_CHOICES}, not {config['score']!r}")
    if not isinstance(config["flip_average"], bool):
        raise UserError(f"flip_average must be true or false, not {config['flip_average']!r}")
    run_dir = Path(config["run"]).expanduser().resolve()
    check_run_folder(run_dir, config["weights"])
    config["run"] = str(run_dir)
    out = Path(config["out"]).expanduser() if config["out"] else default_out(config, run_dir)
    config["out"] = str(check_out(out.resolve(), run_dir))
    return config


def check_run_folder(run_dir: Path, weights: str) -> None:
    """A clear UserError unless ``run_dir`` is a finished run with weights and splits."""
    from training.common import require_run

    if (run_dir / "bundle.json").is_file():
        raise UserError(f"{run_dir} is already a bundle; export takes a training run folder")
    require_run(run_dir, "the", weights)


def default_out(config: dict[str, Any], run_dir: Path) -> Path:
    from core.workspace import Workspace

    precision = "int8" if config["int8"] else "fp32"
    return Workspace.resolve(config.get("workspace")).bundles / f"{run_dir.name}-{precision}"


def check_out(out: Path, run_dir: Path) -> Path:
    """``out`` must be new, empty or an older bundle (replaced only when the export succeeds)."""
    if out == run_dir or run_dir in out.parents:
        raise UserError(f"--out {out} is inside the run folder; choose a folder outside it")
    if out.is_file():
        raise UserError(f"--out {out} is a file; give a folder for the bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / "bundle.json").is_file():
        raise UserError(f"--out {out} exists and is not a bundle; choose another folder")
    return out


# -- the job ----------------------------------------------------------------------------------
def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Export ``config['run']`` to a verified bundle at ``config['out']``; returns the summary."""
    config = validate_export(config)
    cancel = cancel or CancelToken()
    from training.common import set_threads

    set_threads(config["threads"])
    try:
        return _export(config, emit, cancel)
    except Cancelled:
        emit.log("export cancelled; no bundle written")
        return {"cancelled": True, "bundle": None}


def _export(config: dict[str, Any], emit: EventWriter, cancel: CancelToken) -> dict[str, Any]:
    from core.models import load_model
    from training.common import subset

    run_dir, out = Path(config["run"]), Path(config["out"])
    model, description = load_model(run_dir, config["weights"])
    if config["flip_average"]:
        from core.flip_average import flip_averaged

        model = flip_averaged(model)
        emit.log("flip averaging: the bundle averages each image with its mirror image")
    split_file = run_dir / "split.json"
    classes = description.class_names
    splits = {name: read_split(split_file, name, classes) for name in ("train", "val", "test")}
    if not splits["val"]:
        raise UserError(f"{run_dir} has an empty val split: nothing to calibrate the threshold on")
    verify_split = "test" if splits["test"] else "val"
    if verify_split == "val":
        emit.log("the run has no test split: verifying on the val split instead", "warning")
    verify_samples = subset(splits[verify_split], config["verify_images"] or None, config["seed"])
    golden = pick_golden(verify_samples, description.class_names, config["golden"], config["seed"])
    emit.log(
        f"exporting {description.arch} from {run_dir.name} ({len(splits['val'])} val, "
        f"{len(verify_samples)} {verify_split} images)"
    )
    with tempfile.TemporaryDirectory(prefix="export-") as tmp, staged(out) as stage:
        variants, quantization = _make_models(
            model, description, splits, Path(tmp), config, emit, cancel
        )
        shipped = "int8" if config["int8"] else "fp32"
        calibration, choice, val_logits = _calibrate(
            variants[shipped], splits["val"], description, run_dir, config, emit, cancel
        )
        golden += pick_boundary(splits["val"], val_logits, calibration, golden)
        checked = _verify(
            model, description, variants, verify_samples, golden, config, emit, cancel
        )
        report = checked.report
        report.update(
            split=verify_split,
            run=str(run_dir),
            subset=len(verify_samples) < len(splits[verify_split]),
        )
        report.pop("metrics")
        metrics = shipped_metrics(checked.shipped_logits, checked.labels, calibration, description)
        _fail_if_broken(report, out)
        from core.bundle import write_bundle
        from core.models import model_stats

        write_bundle(
            stage,
            variants[shipped],
            arch=description.arch,
            class_names=description.class_names,
            real_class=description.real_class,
            preprocess=description.preprocess,
            calibration=calibration,
            metrics=metrics,
            parent_run=str(run_dir),
            golden_vectors=checked.golden,
            precision=shipped,
            extra={
                "stats": model_stats(model, description.preprocess.input_size),
                "calibration_choice": choice,
                "export": export_info(config, quantization),
                "training_split": split_record(run_dir),
            },
        )
        report["golden"] = _check_golden(stage, config)
        _fail_if_broken(report, out)
        (stage / VERIFICATION_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
        commit(stage, out)
    return _finish(out, config, report, calibration, choice, emit)


def _phase(emit: EventWriter, phase: str, done: int, total: int = 1) -> None:
    emit("progress", {"phase": phase, "done": done, "total": total})


def _check_cancel(cancel: CancelToken) -> None:
    if cancel.is_set():
        raise Cancelled


# -- phase 1: ONNX ----------------------------------------------------------------------------
def _make_models(
    model: torch.nn.Module,
    description: ModelDescription,
    splits: Splits,
    work: Path,
    config: dict[str, Any],
    emit: EventWriter,
    cancel: CancelToken,
) -> tuple[dict[str, Path], dict[str, Any] | None]:
    """Phases 1 and 2: ``({"fp32": path[, "int8": path]}, quantisation settings or None)``."""
    _phase(emit, "export", 0)
    fp32_path = work / "model.fp32.onnx"
    outputs = export_onnx(model, description.preprocess.input_size, fp32_path, config["opset"])
    _phase(emit, "export", 1)
    emit.log(f"ONNX opset {config['opset']}, outputs {outputs} ({EXPORTER})")
    if not config["int8"]:
        return {"fp32": fp32_path}, None
    int8_path, quantization = _quantize(fp32_path, work, splits, description, config, emit, cancel)
    return {"fp32": fp32_path, "int8": int8_path}, quantization


def export_onnx(model: torch.nn.Module, input_size: int, path: Path, opset: int = 17) -> list[str]:
    """Write ``model`` as ONNX (see the module docstring); returns the output names."""
    import onnx
    import torch

    from core.explain import CamModel, supports_cam

    has_cam = supports_cam(model, input_size)
    module = CamModel(model, input_size).eval() if has_cam else model.eval()
    outputs = ["logits", "cam"] if has_cam else ["logits"]
    batch = {0: "batch"}
    example = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={name: batch for name in ["image", *outputs]},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"the exported ONNX model is invalid: {str(exc).splitlines()[0]}") from None
    return outputs


# -- phase 2: INT8 ----------------------------------------------------------------------------
def _quantize(
    fp32_path: Path,
    work: Path,
    splits: Splits,
    description: ModelDescription,
    config: dict[str, Any],
    emit: EventWriter,
    cancel: CancelToken,
) -> tuple[Path, dict[str, Any]]:
    from training.quantize import ImageReader, pick_calibration_samples, quantize_int8

    samples = pick_calibration_samples(splits["train"], config["calib_images"], config["seed"])
    reader = ImageReader(
        samples,
        description.preprocess,
        progress=lambda done, total: _phase(emit, "quantize", done, total),
        cancel=cancel.is_set,
        exception=Cancelled,
    )
    _phase(emit, "quantize", 0, len(samples))
    int8_path = work / "model.int8.onnx"
    info = quantize_int8(fp32_path, int8_path, reader, work)
    emit.log(f"INT8 (QDQ, per-channel) calibrated on {len(samples)} training images")
    return int8_path, info


# -- phase 3: calibration ---------------------------------------------------------------------
class Calibrated(NamedTuple):
    """The calibration chosen on the val split, how, and the val logits it was chosen on."""

    calibration: Calibration
    choice: dict[str, Any]
    logits: np.ndarray


def _calibrate(
    model_path: Path,
    samples: list[Sample],
    description: ModelDescription,
    run_dir: Path,
    config: dict[str, Any],
    emit: EventWriter,
    cancel: CancelToken,
) -> Calibrated:
    from training.verify import OnnxModel, run_variants

    network = OnnxModel(model_path, config["threads"])
    labels, logits, _ = run_variants(
        _batches(samples, description, config["batch_size"]),
        {"model": network},
        "model",
        on_batch=lambda done: _progress(emit, cancel, "calibrate", done, len(samples)),
    )
    calibration, choice = calibrate(
        logits["model"],
        labels,
        config["score"],
        config["target_risk"],
        f"val split of run {run_dir.name}",
        config["energy_floor"],
    )
    emit.log(f"calibration: {calibration.summary()}")
    return Calibrated(calibration, choice, logits["model"])


def calibrate(
    logits: np.ndarray,
    labels: np.ndarray,
    score: str,
    target_risk: float,
    chosen_on: str,
    floor_keep: float | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """Temperature, score and threshold on held-out logits (with an energy floor that keeps
    ``floor_keep`` of them, when given); and how the score was chosen."""
    from core.rejection import choose_threshold, compare_scores, fit_temperature

    perfect = bool((np.argmax(logits, axis=1) == labels).all())
    # With no wrong answers the likelihood keeps rising as T -> 0: nothing to fit, keep T = 1.
    temperature = 1.0 if perfect else fit_temperature(logits, labels)
    comparison = compare_scores(logits, labels, temperature)
    auroc = {name: row["auroc_correct"] for name, row in comparison["scores"].items()}
    chosen = comparison["best"] if score == "auto" else score
    if score != "auto":
        how = "requested by the user"
    elif all(value is None for value in auroc.values()):
        how = "auto: no wrong answers on the val split, so AUROC is undefined; default kept"
    else:
        how = "auto: higher AUROC of right vs wrong answers on the val split"
    calibration = choose_threshold(
        logits, labels, temperature, chosen, target_risk, chosen_on, floor_keep
    )
    fitted = (
        "not fitted: no wrong answers on the val split" if perfect else "fitted on the val split"
    )
    return calibration, {
        "requested": score,
        "chosen": chosen,
        "how": how,
        "auroc_correct": auroc,
        "temperature": fitted,
    }


def shipped_metrics(
    logits: np.ndarray, labels: np.ndarray, calibration: Calibration, description: ModelDescription
) -> dict[str, Any]:
    """The shipped model's figures on held-out logits as the app shows them: the probabilities
    carry the calibrated temperature (``ece_raw``: the ECE without it), plus the coverage and
    error rate of the threshold. Empty without images."""
    if not len(labels):
        return {}
    from core.metrics import classification_report, expected_calibration_error
    from core.verdict import accepts, softmax

    probs, accepted = accepts(logits, calibration)
    report = classification_report(labels, probs, description.class_names, description.real_class)
    wrong = probs.argmax(axis=1) != labels
    return {
        **report,
        "ece_raw": expected_calibration_error(labels, softmax(logits)),
        "coverage": float(accepted.mean()),
        "selective_risk": float(wrong[accepted].mean()) if accepted.any() else None,
    }


# -- phase 4: verification --------------------------------------------------------------------
class Checked(NamedTuple):
    """What verification produced: the report, golden vectors and the shipped model's logits."""

    report: dict[str, Any]
    golden: list[Any]
    labels: np.ndarray
    shipped_logits: np.ndarray


def _verify(
    model: torch.nn.Module,
    description: ModelDescription,
    variants: dict[str, Path],
    samples: list[Sample],
    golden: list[Sample],
    config: dict[str, Any],
    emit: EventWriter,
    cancel: CancelToken,
) -> Checked:
    from core.bundle import GoldenVector
    from core.inference import TorchPredictor
    from core.preprocess import load_image
    from training.verify import (
        OnnxModel,
        build_report,
        max_abs_diff,
        onnx_latency_ms,
        run_variants,
    )

    forwards = {"torch": TorchPredictor(model, description).predict_batch}
    networks = {name: OnnxModel(path, config["threads"]) for name, path in variants.items()}
    forwards.update(networks)
    images = [load_image(sample.path) for sample in golden]
    golden_inputs = np.stack([description.preprocess(image) for image in images])
    golden_diff = max_abs_diff(
        forwards["torch"](golden_inputs)[0], networks["fp32"](golden_inputs)[0]
    )
    labels, logits, cam_diff = run_variants(
        _batches(samples, description, config["batch_size"]),
        forwards,
        "torch",
        on_batch=lambda done: _progress(emit, cancel, "verify", done, len(samples)),
    )
    latency = {
        name: onnx_latency_ms(network, golden_inputs[:1], config["latency_repeats"])
        for name, network in networks.items()
    }
    shipped = "int8" if "int8" in networks else "fp32"
    report = build_report(
        labels=labels,
        logits=logits,
        cam_diff=cam_diff,
        golden_diff=golden_diff,
        class_names=description.class_names,
        real_class=description.real_class,
        sizes={name: network.bytes for name, network in networks.items()},
        latency=latency,
        shipped=shipped,
        tolerance=config["tolerance"],
        max_int8_drop=config["max_int8_drop"],
    )
    report["latency"] = {
        "batch": 1,
        "repeats": config["latency_repeats"],
        "threads": config["threads"],
    }
    vectors = [
        GoldenVector(
            f"g{i}", image, source=f"{s.label}/{s.path.name}", input=golden_inputs[i : i + 1]
        )
        for i, (s, image) in enumerate(zip(golden, images, strict=True))
    ]
    return Checked(report, vectors, labels, logits[shipped])


def _check_golden(stage: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The written bundle re-read and its golden vectors recomputed by OnnxPredictor."""
    from core.bundle import load_bundle, verify_golden
    from core.inference import OnnxPredictor

    bundle = load_bundle(stage)
    check = verify_golden(bundle, OnnxPredictor(bundle, threads=config["threads"] or None))
    return {
        "ok": check.ok,
        "summary": check.summary(),
        "input_diff": check.input_diff,
        "logits_diff": check.logits_diff,
        "probs_diff": check.probs_diff,
        "verdicts_match": check.verdicts_match,
    }


def _fail_if_broken(report: dict[str, Any], out: Path) -> None:
    from training.verify import failed_checks, format_report

    problems = failed_checks(report)
    golden = report.get("golden")
    if golden and not golden["ok"]:
        problems.append(
            f"the written bundle does not reproduce its golden vectors: {golden['summary']}"
        )
    if not problems:
        return
    failed = out.with_name(out.name + ".verification-failed.json")
    failed.write_text(json.dumps(report, indent=2), encoding="utf-8")
    raise UserError(
        "export refused, no bundle written: "
        + "; ".join(problems)
        + f". Full report: {failed}\n{format_report(report)}"
    )


# -- data -------------------------------------------------------------------------------------
def _batches(
    samples: Sequence[Sample], description: ModelDescription, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(images, labels)`` NumPy batches of ``samples`` preprocessed by the run's contract."""
    from training.data import ImageDataset, make_loader

    dataset = ImageDataset(samples, description.class_names, description.preprocess)
    for images, labels in make_loader(dataset, batch_size=batch_size, train=False):
        yield images.numpy(), labels.numpy()


def _progress(emit: EventWriter, cancel: CancelToken, phase: str, done: int, total: int) -> None:
    _check_cancel(cancel)
    _phase(emit, phase, done, total)


def pick_golden(
    samples: Sequence[Sample], class_names: Sequence[str], count: int, seed: int
) -> list[Sample]:
    """Up to ``count`` samples taking classes in turn (seeded order), small images first.

    Images over :data:`GOLDEN_MAX_PIXELS` (their PNG ships in the bundle) are used only when a
    class has too few small ones; headers are read only until each class has enough.
    """
    order = list(samples)
    random.Random(seed).shuffle(order)
    small: dict[str, list[Sample]] = {name: [] for name in class_names}
    large: dict[str, list[Sample]] = {name: [] for name in class_names}
    for sample in order:
        if sample.label in small and len(small[sample.label]) < count:
            (small if _is_small(sample.path) else large)[sample.label].append(sample)
    queues = {name: small[name] + large[name] for name in class_names}
    chosen: list[Sample] = []
    while len(chosen) < count and any(queues.values()):
        for name in class_names:
            if queues[name] and len(chosen) < count:
                chosen.append(queues[name].pop(0))
    if not chosen:
        raise UserError("no images to make golden vectors from (the test and val splits are empty)")
    return chosen


BOUNDARY_MARGIN = {"max_softmax": 0.02, "energy": 0.1}
"""How far from the threshold (or the energy floor) a boundary golden image scores: near enough
to pin the rule's numbers, far enough that no runtime's rounding (INT8 kernels) flips it."""
BOUNDARY_TRIES = 20
"""Candidates looked at per boundary (a header read each) before giving that one up."""


def pick_boundary(
    samples: Sequence[Sample], logits: np.ndarray, calibration: Calibration, taken: list[Sample]
) -> list[Sample]:
    """Held-out images whose golden vectors pin the decision rule's numbers: the answered image
    scoring nearest above the threshold, the image the threshold turns away nearest below it
    and, with an energy floor, the image answered by its score that the floor turns away
    nearest below the floor; each at least :data:`BOUNDARY_MARGIN` from its line, small images
    only, none of ``taken``. A runtime that reads another threshold or ignores the floor then
    fails its golden check."""
    from core.verdict import scores_of

    score_margin, energy_margin = BOUNDARY_MARGIN[calibration.score], BOUNDARY_MARGIN["energy"]
    gap = scores_of(logits, calibration.temperature, calibration.score)[1] - calibration.threshold
    energy = scores_of(logits, calibration.temperature, "energy")[1]
    floor = calibration.energy_floor
    clear_of_floor = np.ones(len(gap), bool) if floor is None else energy >= floor + energy_margin
    distances = [
        np.where((gap >= score_margin) & clear_of_floor, gap, np.inf),
        np.where((gap <= -score_margin) & clear_of_floor, -gap, np.inf),
    ]
    if floor is not None:
        distances.append(np.where((gap >= score_margin) & (energy <= floor - energy_margin),
                                  floor - energy, np.inf))  # fmt: skip
    paths = {sample.path for sample in taken}
    chosen: list[Sample] = []
    for distance in distances:
        for i in np.argsort(distance, kind="stable")[:BOUNDARY_TRIES]:
            sample = samples[i]
            if np.isfinite(distance[i]) and sample.path not in paths and _is_small(sample.path):
                chosen.append(sample)
                paths.add(sample.path)
                break
    return chosen


def _is_small(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height <= GOLDEN_MAX_PIXELS
    except OSError:
        return False


# -- the bundle folder ------------------------------------------------------------------------
@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out``, removed unless :func:`commit` moved it there."""
    stage = out.with_name(f".{out.name}.partial-{secrets.token_hex(3)}")
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"cannot create {stage.parent}: {exc.strerror or exc}") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def commit(stage: Path, out: Path) -> None:
    """Put the finished bundle at ``out``, replacing an older bundle there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(3)}")
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    out.with_name(out.name + ".verification-failed.json").unlink(missing_ok=True)


def export_info(config: dict[str, Any], quantization: dict[str, Any] | None) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "exporter": EXPORTER,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "weights": config["weights"],
        "flip_average": config["flip_average"],
        "quantization": quantization,
        "verification": VERIFICATION_FILE,
    }


def _finish(
    out: Path,
    config: dict[str, Any],
    report: dict[str, Any],
    calibration: Calibration,
    choice: dict[str, Any],
    emit: EventWriter,
) -> dict[str, Any]:
    checks = [check["message"] for check in report["checks"]] + [report["golden"]["summary"]]
    emit.log("verified: " + "; ".join(checks))
    emit("artifact", {"kind": "report", "path": str(out / VERIFICATION_FILE)})
    zip_path = None
    if config["zip"]:
        from core.bundle import zip_bundle

        zip_path = zip_bundle(out, out.with_name(out.name + ".zip"))
        emit("artifact", {"kind": "bundle_zip", "path": str(zip_path)})
    emit("artifact", {"kind": "bundle", "path": str(out)})
    shipped = report["variants"][report["shipped"]]
    return {
        "cancelled": False,
        "bundle": str(out),
        "zip": str(zip_path) if zip_path else None,
        "precision": report["shipped"],
        "model_bytes": shipped.get("bytes"),
        "accuracy": shipped.get("accuracy"),
        "calibration": calibration.to_dict(),
        "calibration_choice": choice,
        "verification": report,
    }
