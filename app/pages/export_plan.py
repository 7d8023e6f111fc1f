"""The Export wizard's logic, without Qt: which runs can be exported, what the user's choices
mean (validation with messages per field), the export job configs, and the summary read back
from the written bundles (``bundle.json`` + ``verification.json``, see ``training/export.py``).

One export job ships one precision (``int8: true`` ships INT8 and keeps the FP32 figures in its
report), so choosing both FP32 and INT8 plans two jobs, ``<name>-fp32`` and ``<name>-int8``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.widgets.formatting import plural
from core.errors import UserError
from core.runs import (
    RunInfo,
    finite_number,  # a finite float or None (shared with the Models page)
    scan_runs,
    still_running_reason,
)
from core.workspace import writable_folder

REQUIRED_RUN_FILES = ("model.json", "best.safetensors")
VERIFICATION_FILE = "verification.json"
TARGETS = {
    "android": "Android phone (onnxruntime-mobile, ARM CPU)",
    "desktop": "Desktop (this app, x86/ARM CPU)",
}
VARIANT_TITLES = {"torch": "PyTorch (reference)", "fp32": "ONNX FP32", "int8": "ONNX INT8"}
PHASES = ("export", "quantize", "calibrate", "verify")


def exportable_runs(root: Path) -> list[RunInfo]:
    """Training runs in ``root`` with ``model.json`` and ``best.safetensors``, newest first."""
    runs = [
        run
        for run in scan_runs(root)
        if all((run.path / name).is_file() for name in REQUIRED_RUN_FILES)
        and not (run.path / "bundle.json").is_file()
    ]
    return list(reversed(runs))


def check_run(path: Path | None) -> str | None:
    """Why ``path`` cannot be exported, or ``None``."""
    if path is None:
        return "Select a run to export (or use Browse… for a run folder elsewhere)."
    path = Path(path)
    if not path.is_dir():
        return f"{path} is not a folder."
    missing = [name for name in (*REQUIRED_RUN_FILES, "split.json") if not (path / name).is_file()]
    if missing:
        return (
            f"{path.name} cannot be exported: {', '.join(missing)} missing. Is the run finished? "
            "Export needs its model description, best weights and data split."
        )
    running = still_running_reason(path)
    if running:
        return f"{path.name} cannot be exported: {running}."
    return None


@dataclass
class ExportChoices:
    """What the user picked on the options step."""

    run: Path | None
    fp32: bool = True
    int8: bool = True
    flip_average: bool = False
    """Average each image with its mirror image inside the exported model."""
    weights: str = "best"
    """The run's ``best`` (validation) or ``last`` (final epoch) weights."""
    target: str = "android"
    target_risk: float = 0.05
    energy_floor: float | None = None
    """Also reject unfamiliar images: the share of validation images the energy floor keeps."""
    folder: Path = Path(".")
    name: str = "bundle"
    zip: bool = True

    def precisions(self) -> list[str]:
        return [p for p, chosen in (("fp32", self.fp32), ("int8", self.int8)) if chosen]

    def bundle_path(self, precision: str) -> Path:
        return Path(self.folder).expanduser() / f"{self.name}-{precision}"


def check_choices(choices: ExportChoices) -> dict[str, str]:
    """Messages per field (``precision``, ``risk``, ``name``, ``folder``); empty when fine."""
    errors: dict[str, str] = {}
    if not choices.precisions():
        errors["precision"] = "Choose FP32, INT8 or both: nothing would be exported."
    if not 0.0 < choices.target_risk < 0.5:
        errors["risk"] = "The target error rate must be between 0.1% and 49%."
    if choices.energy_floor is not None and not 0.5 <= choices.energy_floor < 1.0:
        errors["risk"] = "The unfamiliar-image floor must keep between 50% and 99.9% of images."
    name = choices.name.strip()
    if not name:
        errors["name"] = "Give the bundle a name."
    elif any(ch in name for ch in '/\\:*?"<>|') or name.startswith("."):
        errors["name"] = 'Use a plain file name (no slashes, no leading dot, none of :*?"<>|).'
    folder = Path(str(choices.folder)).expanduser()
    if not str(choices.folder).strip():
        errors["folder"] = "Choose where to save the bundle."
    elif folder.exists() and not folder.is_dir():
        errors["folder"] = f"{folder} is a file; choose a folder."
    elif not writable_folder(folder):
        errors["folder"] = f"{folder} is not writable; choose a folder you can write to."
    elif choices.run is not None and _inside(folder, Path(choices.run)):
        errors["folder"] = "The bundle cannot go inside the run folder; choose another folder."
    if "name" not in errors and "folder" not in errors:
        for precision in choices.precisions():
            out = choices.bundle_path(precision)
            if out.is_file() or (
                out.is_dir() and any(out.iterdir()) and not (out / "bundle.json").is_file()
            ):
                errors["name"] = f"{out} exists and is not a bundle; choose another name."
    return errors


def replaced_bundles(choices: ExportChoices) -> list[Path]:
    """Existing bundles the export would replace (a warning, not an error)."""
    return [
        choices.bundle_path(p)
        for p in choices.precisions()
        if (choices.bundle_path(p) / "bundle.json").is_file()
    ]


def _inside(folder: Path, run: Path) -> bool:
    folder, run = folder.resolve(), run.resolve()
    return folder == run or run in folder.parents


def job_configs(choices: ExportChoices, workspace_root: Path | None = None) -> list[dict[str, Any]]:
    """One ``export`` job config per chosen precision (FP32 first: it is the faster one)."""
    if choices.run is None:
        raise UserError("no run selected")
    configs = []
    for precision in choices.precisions():
        config: dict[str, Any] = {
            "kind": "export",
            "run": str(Path(choices.run).resolve()),
            "out": str(choices.bundle_path(precision).resolve()),
            "int8": precision == "int8",
            "flip_average": choices.flip_average,
            "weights": choices.weights,
            "zip": choices.zip,
            "target_risk": choices.target_risk,
            "energy_floor": choices.energy_floor,
        }
        if workspace_root is not None:
            config["workspace"] = str(workspace_root)
        configs.append(config)
    return configs


def overall_progress(
    job: int, jobs: int, int8: bool, phase: str, done: float, total: float
) -> float:
    """0..1 over every job: each job's phases (``quantize`` only for INT8) weigh the same."""
    phases = [p for p in PHASES if int8 or p != "quantize"]
    index = phases.index(phase) if phase in phases else 0
    fraction = (done / total) if total else 0.0
    within = (index + min(max(fraction, 0.0), 1.0)) / len(phases)
    return (job + within) / max(jobs, 1)


# -- the summary ----------------------------------------------------------------------------------
@dataclass
class ExportedBundle:
    """One written bundle with its metadata and verification report."""

    path: Path
    meta: dict[str, Any]
    report: dict[str, Any]
    zip: Path | None = None

    @property
    def precision(self) -> str:
        return str(self.meta.get("model", {}).get("precision") or self.report.get("shipped") or "?")

    @property
    def calibration(self) -> dict[str, Any]:
        return dict(self.meta.get("calibration") or {})

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})


def read_exported(path: str | os.PathLike, zip_path: str | None = None) -> ExportedBundle:
    """Read ``bundle.json`` and ``verification.json`` of a bundle folder (UserError if absent)."""
    path = Path(path)
    body: dict[str, dict[str, Any]] = {}
    for name in ("bundle.json", VERIFICATION_FILE):
        try:
            value = json.loads((path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path} has no {name}: the export did not finish") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{path / name} cannot be read: {exc}") from None
        if not isinstance(value, dict):
            raise UserError(f"{path / name} is not a JSON object")
        body[name] = value
    zipped = Path(zip_path) if zip_path else path.with_name(path.name + ".zip")
    return ExportedBundle(
        path=path,
        meta=body["bundle.json"],
        report=body[VERIFICATION_FILE],
        zip=zipped if zipped.is_file() else None,
    )


@dataclass
class VariantRow:
    """One line of the summary table."""

    variant: str
    title: str
    accuracy: float | None = None
    bytes: int | None = None
    latency_ms: float | None = None
    parity: str = ""
    bundle: Path | None = None
    notes: list[str] = field(default_factory=list)


def variant_rows(bundles: list[ExportedBundle]) -> list[VariantRow]:
    """Every variant measured by the exports (torch, FP32, INT8), each with the bundle that
    ships it; a variant measured by several reports takes the report of the bundle shipping it."""
    rows: dict[str, VariantRow] = {}
    shipping = {b.precision: b for b in bundles}
    for bundle in bundles:
        for name, figures in (bundle.report.get("variants") or {}).items():
            if name in rows and shipping.get(name) is not bundle:
                continue
            row = VariantRow(
                variant=name,
                title=VARIANT_TITLES.get(name, name),
                accuracy=finite_number(figures.get("accuracy")),
                bytes=int(figures["bytes"]) if finite_number(figures.get("bytes")) else None,
                latency_ms=finite_number(figures.get("latency_ms")),
                parity=_parity_text(name, figures),
                bundle=shipping[name].path if name in shipping else None,
            )
            rows[name] = row
    order = {name: i for i, name in enumerate(VARIANT_TITLES)}
    return sorted(rows.values(), key=lambda r: order.get(r.variant, 99))


def _parity_text(name: str, figures: Mapping[str, Any]) -> str:
    if name == "torch":
        return "reference"
    if name == "fp32":
        diff = finite_number(figures.get("max_abs_diff_vs_torch"))
        return "" if diff is None else f"max logit |Δ| vs PyTorch {diff:.1e}"
    diff = finite_number(figures.get("max_abs_diff_vs_fp32"))
    agreement = finite_number(figures.get("agreement_with_fp32"))
    parts = []
    if agreement is not None:
        parts.append(f"agrees with FP32 on {agreement:.1%}")
    if diff is not None:
        parts.append(f"max logit |Δ| {diff:.2g}")
    return " · ".join(parts)


def checks(bundles: list[ExportedBundle]) -> list[tuple[bool, str]]:
    """``(ok, message)`` of every verification check, golden vectors included.

    With several bundles, a check with the same outcome in every report (FP32 parity is
    measured by each export) is listed once; the others are prefixed with their precision.
    """
    per_bundle: list[tuple[str, list[tuple[bool, str]]]] = []
    for bundle in bundles:
        lines = [
            (bool(c.get("ok")), str(c.get("message", "")))
            for c in bundle.report.get("checks") or []
        ]
        golden = bundle.report.get("golden")
        if isinstance(golden, Mapping):
            lines.append((bool(golden.get("ok")), str(golden.get("summary", ""))))
        per_bundle.append((bundle.precision.upper(), lines))
    shared = (
        set.intersection(*(set(lines) for _, lines in per_bundle)) if len(per_bundle) > 1 else set()
    )
    result: list[tuple[bool, str]] = []
    for precision, lines in per_bundle:
        for line in lines:
            if line in shared:
                if line not in result:
                    result.append(line)
            else:
                named = len(per_bundle) == 1 or line[1].startswith(precision)
                result.append((line[0], line[1] if named else f"{precision}: {line[1]}"))
    return result


def verified_on(bundle: ExportedBundle) -> str:
    n = bundle.report.get("n")
    split = bundle.report.get("split", "test")
    return f"measured on {plural(n, 'image')} of the run's {split} split" if n else ""


def held_out_words(bundle: ExportedBundle) -> str:
    """What the threshold did on the verification split, from ``bundle.json`` metrics."""
    coverage = finite_number(bundle.metrics.get("coverage"))
    risk = finite_number(bundle.metrics.get("selective_risk"))
    if coverage is None:
        return ""
    text = f"On the {bundle.report.get('split', 'test')} split it answered {coverage:.0%} of the images"
    if risk is not None:
        text += f" and was wrong on {risk:.1%} of those it answered"
    return text + "; the rest were reported as Unknown."


WEAK_RISK_FACTOR = 2.0
"""A shipped model is weak when its errors among answered test images exceed this × the target…"""
WEAK_RISK_MARGIN = 0.05
"""…and the target plus this many points (5), or when its accuracy is within this of chance."""


def weakness(bundle: ExportedBundle) -> str | None:
    """Why the shipped model of ``bundle`` is too weak to use, from ``bundle.json``, or ``None``.

    Weak: its errors among the answered test images are far above the calibration target
    (over :data:`WEAK_RISK_FACTOR` × target and over target + :data:`WEAK_RISK_MARGIN`), or its
    test accuracy is within :data:`WEAK_RISK_MARGIN` of chance (1 / number of classes).
    """
    metrics = bundle.metrics
    reasons = []
    risk = finite_number(metrics.get("selective_risk"))
    target = finite_number(bundle.calibration.get("target_risk"))
    if (
        risk is not None
        and target is not None
        and risk > WEAK_RISK_FACTOR * target
        and risk > target + WEAK_RISK_MARGIN
    ):
        reasons.append(f"{risk:.1%} errors among the test images it answered (target {target:.0%})")
    accuracy = finite_number(metrics.get("accuracy"))
    classes = metrics.get("class_names") or bundle.meta.get("class_names") or []
    if (
        accuracy is not None
        and len(classes) >= 2
        and accuracy <= 1 / len(classes) + WEAK_RISK_MARGIN
    ):
        reasons.append(f"test accuracy {accuracy:.1%}, near chance ({1 / len(classes):.0%})")
    return "; ".join(reasons) or None
