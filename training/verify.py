"""Verification of an exported model before it becomes a bundle: parity, accuracy, size, speed.

:func:`run_variants` feeds the same preprocessed images to every variant (torch, ONNX FP32,
ONNX INT8) in one pass; :func:`build_report` turns the outputs into the verification report that
is written as ``verification.json`` and printed; :func:`failed_checks` lists what breaks the
export's limits (FP32 parity with torch, INT8 accuracy loss); :func:`format_report` renders a
report for terminals and the GUI (it needs neither torch nor onnxruntime).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.metrics import classification_report
from core.verdict import softmax

PARITY_TOLERANCE = 1e-3
"""Largest tolerated ``|torch - ONNX FP32|`` on logits (and on the ``cam`` output)."""
MAX_INT8_DROP = 0.02
"""Largest tolerated test-accuracy loss of INT8 against FP32 (a fraction: 0.02 = 2 points)."""

VARIANT_METRICS = ("macro_f1", "auc", "ece", "binary_accuracy")
"""Figures of :func:`core.metrics.classification_report` kept for every variant in the report."""

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
"""``forward(N x 3 x S x S float32) -> (logits N x C, cam N x C x h x w or None)``."""


class OnnxModel:
    """An ``.onnx`` file run by onnxruntime on the CPU with a fixed number of threads.

    ``spinning`` keeps onnxruntime's idle worker threads busy-waiting for the next run (its
    default, what the checker does, best for latency); without it, torch and onnxruntime
    alternating on the same batches run 1.6x faster because they stop competing for the cores.
    """

    def __init__(self, path: Path, threads: int = 0, spinning: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = ["logits", "cam"] if "cam" in names else ["logits"]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.session.run(self.outputs, {"image": np.ascontiguousarray(batch, np.float32)})
        return out[0], (out[1] if len(out) > 1 else None)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


def run_variants(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    variants: dict[str, Forward],
    reference: str,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Outputs of every variant on the same batches.

    Args:
        batches: ``(images, labels)`` pairs.
        variants: the forwards to compare, by name.
        reference: the variant whose ``cam`` output the others' are compared with.
        on_batch: called with the number of images done after each batch.

    Returns:
        ``(labels, logits by variant, max |cam - reference cam| by variant)``; a variant without
        a ``cam`` output is absent from the last mapping.
    """
    labels: list[np.ndarray] = []
    logits: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    cam_diff: dict[str, float] = {}
    done = 0
    for images, targets in batches:
        outputs = {name: forward(images) for name, forward in variants.items()}
        reference_cam = outputs[reference][1]
        for name, (out_logits, cam) in outputs.items():
            logits[name].append(out_logits)
            if name != reference and cam is not None and reference_cam is not None:
                diff = float(np.abs(cam - reference_cam).max())
                cam_diff[name] = max(cam_diff.get(name, 0.0), diff)
        labels.append(np.asarray(targets))
        done += len(images)
        if on_batch is not None:
            on_batch(done)
    if not labels:
        return np.zeros(0, dtype=int), {name: np.zeros((0, 0)) for name in variants}, cam_diff
    return np.concatenate(labels), {k: np.concatenate(v) for k, v in logits.items()}, cam_diff


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0.0))


def onnx_latency_ms(model: OnnxModel, image: np.ndarray, repeats: int = 50) -> float:
    """:func:`latency_ms` of ``model``'s file in a session set up like the checker's."""
    return latency_ms(OnnxModel(model.path, model.threads, spinning=True), image, repeats)


def latency_ms(forward: Forward, image: np.ndarray, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of ``forward`` on one ``1 x 3 x S x S`` input, in milliseconds."""
    for _ in range(warmup):
        forward(image)
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        forward(image)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def build_report(
    *,
    labels: np.ndarray,
    logits: dict[str, np.ndarray],
    cam_diff: dict[str, float],
    golden_diff: float,
    class_names: list[str],
    real_class: str,
    sizes: dict[str, int],
    latency: dict[str, float],
    shipped: str,
    tolerance: float,
    max_int8_drop: float,
) -> dict[str, Any]:
    """The verification report (see docs in :mod:`training.export`).

    ``logits`` has ``torch`` and ``fp32`` and optionally ``int8``; ``sizes`` and ``latency``
    have the ONNX variants.
    """
    variants: dict[str, dict[str, Any]] = {}
    reports = {
        name: classification_report(labels, softmax(values), class_names, real_class)
        for name, values in logits.items()
        if len(labels)
    }
    for name, values in logits.items():
        row: dict[str, Any] = {"accuracy": _accuracy(values, labels)}
        if name in reports:
            row.update({key: reports[name][key] for key in VARIANT_METRICS})
        if name in sizes:
            row["bytes"] = sizes[name]
            row["latency_ms"] = latency.get(name)
        variants[name] = row
    split_diff = max_abs_diff(logits["torch"], logits["fp32"]) if len(labels) else None
    variants["fp32"]["max_abs_diff_vs_torch"] = split_diff
    parity = {
        "golden_logits": golden_diff,
        "split_logits": split_diff,
        "split_cam": cam_diff.get("fp32"),
    }
    checks = [_parity_check(parity, tolerance)]
    if "int8" in logits:
        int8 = variants["int8"]
        int8["max_abs_diff_vs_fp32"] = max_abs_diff(logits["fp32"], logits["int8"])
        int8["agreement_with_fp32"] = _agreement(logits["fp32"], logits["int8"])
        int8["size_ratio_vs_fp32"] = sizes["fp32"] / sizes["int8"]
        if latency.get("int8"):
            int8["speedup_vs_fp32"] = latency["fp32"] / latency["int8"]
        checks.append(_int8_check(variants, max_int8_drop))
    return {
        "n": len(labels),
        "shipped": shipped,
        "tolerance": {"logits": tolerance, "int8_accuracy_drop": max_int8_drop},
        "parity": parity,
        "variants": variants,
        "checks": checks,
        "ok": all(check["ok"] for check in checks),
        "metrics": reports.get(shipped, {}),
    }


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    return float((logits.argmax(axis=1) == labels).mean()) if len(labels) else None


def _agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean()) if len(a) else None


def _parity_check(parity: dict[str, float | None], tolerance: float) -> dict[str, Any]:
    worst = max((v for v in parity.values() if v is not None), default=0.0)
    return {
        "name": "fp32 parity",
        "value": worst,
        "limit": tolerance,
        "ok": worst <= tolerance,
        "message": f"torch vs ONNX FP32 max |diff| {worst:.2e} (limit {tolerance:.0e})",
    }


def _int8_check(variants: dict[str, dict[str, Any]], max_drop: float) -> dict[str, Any]:
    fp32, int8 = variants["fp32"]["accuracy"], variants["int8"]["accuracy"]
    if fp32 is None or int8 is None:
        return {
            "name": "int8 accuracy drop",
            "value": None,
            "limit": max_drop,
            "ok": True,
            "message": "INT8 accuracy not measured (no verification images)",
        }
    drop = fp32 - int8
    variants["int8"]["accuracy_drop"] = drop
    return {
        "name": "int8 accuracy drop",
        "value": drop,
        "limit": max_drop,
        "ok": drop <= max_drop + 1e-12,
        "message": f"INT8 accuracy {int8:.2%} vs FP32 {fp32:.2%}: drop {drop * 100:.2f} points "
        f"(limit {max_drop * 100:.2f})",
    }


def failed_checks(report: dict[str, Any]) -> list[str]:
    """Messages of the checks that failed (empty when the export may ship)."""
    return [check["message"] for check in report["checks"] if not check["ok"]]


def format_report(report: dict[str, Any]) -> str:
    """A small table of the variants, then the checks, for humans."""
    header = ("variant", "accuracy", "size", "ms/img", "note")
    rows = [header]
    for name, row in report["variants"].items():
        note = ""
        if name == "fp32" and row.get("max_abs_diff_vs_torch") is not None:
            note = f"max |diff| vs torch {row['max_abs_diff_vs_torch']:.1e}"
        elif name == "int8" and row.get("agreement_with_fp32") is not None:
            note = (
                f"agrees with fp32 {row['agreement_with_fp32']:.1%}, "
                f"{row.get('size_ratio_vs_fp32', 0):.1f}x smaller"
                + (f", {row['speedup_vs_fp32']:.2f}x faster" if row.get("speedup_vs_fp32") else "")
            )
        if name == report["shipped"]:
            note = f"{note}; shipped" if note else "shipped"
        rows.append(
            (
                name,
                "-" if row["accuracy"] is None else f"{row['accuracy']:.2%}",
                f"{row['bytes'] / 1e6:.2f} MB" if row.get("bytes") else "-",
                f"{row['latency_ms']:.2f}" if row.get("latency_ms") else "-",
                note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"verified on {report['n']} image(s) of the {report.get('split', 'test')} split")
    for check in report["checks"]:
        lines.append(f"{'OK  ' if check['ok'] else 'FAIL'} {check['message']}")
    golden = report.get("golden")
    if golden:
        lines.append(golden["summary"])
    return "\n".join(lines)
