"""A torch-free stand-in for ``deepfake-studio job JOB.json`` running an ``export`` job.

Usage: ``python tests/fake_export_job.py job JOB.json``. It emits the real export job's event
stream (phases export, quantize for INT8, calibrate, verify; log and artifact events; ``done``
with ``bundle`` and ``zip``) and writes ``bundle.json`` + ``verification.json`` shaped like
``training/export.py``'s into ``out`` (and ``<out>.zip`` when ``zip``). No model is written.

Environment knobs (the job config keys are the real ones): ``FAKE_EXPORT_DELAY`` seconds per
progress step (0), ``FAKE_EXPORT_FAIL`` = ``error`` (an ``error`` event like a refused export)
or ``crash`` (exit 1 without a terminal event). The line ``cancel`` on stdin ends the job after
the current step with ``done`` + ``"cancelled": true`` and writes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.events import EventWriter

FP32_BYTES, INT8_BYTES = 1_962_000, 540_000


def report(int8: bool) -> dict:
    variants = {
        "torch": {"accuracy": 0.9125},
        "fp32": {
            "accuracy": 0.9125,
            "bytes": FP32_BYTES,
            "latency_ms": 1.84,
            "max_abs_diff_vs_torch": 2.4e-6,
        },
    }
    checks = [
        {
            "name": "fp32 parity",
            "value": 2.4e-6,
            "limit": 1e-3,
            "ok": True,
            "message": "torch vs ONNX FP32 max |diff| 2.40e-06 (limit 1e-03)",
        },
    ]
    if int8:
        variants["int8"] = {
            "accuracy": 0.9,
            "bytes": INT8_BYTES,
            "latency_ms": 0.92,
            "max_abs_diff_vs_fp32": 0.031,
            "agreement_with_fp32": 0.975,
            "size_ratio_vs_fp32": FP32_BYTES / INT8_BYTES,
            "speedup_vs_fp32": 2.0,
            "accuracy_drop": 0.0125,
        }
        checks.append(
            {
                "name": "int8 accuracy drop",
                "value": 0.0125,
                "limit": 0.02,
                "ok": True,
                "message": "INT8 accuracy 90.00% vs FP32 91.25%: drop 1.25 points (limit 2.00)",
            }
        )
    return {
        "n": 80,
        "shipped": "int8" if int8 else "fp32",
        "split": "test",
        "parity": {"golden_logits": 1.9e-6, "split_logits": 2.4e-6, "split_cam": 3.1e-6},
        "variants": variants,
        "checks": checks,
        "ok": True,
        "golden": {
            "ok": True,
            "summary": "golden vectors OK: 6 vector(s), max |diff| input "
            f"0.00e+00, logits {'3.81e-04' if int8 else '1.91e-06'}, probs 4.77e-07",
        },
    }


def bundle_meta(config: dict, int8: bool) -> dict:
    return {
        "format": "deepfake-studio/bundle",
        "format_version": 1,
        "arch": "resnet10t",
        "model": {
            "file": "model.onnx",
            "precision": "int8" if int8 else "fp32",
            "bytes": INT8_BYTES if int8 else FP32_BYTES,
            "outputs": ["logits", "cam"],
        },
        "class_names": ["real", "sd14", "sdxl"],
        "real_class": "real",
        "calibration": {
            "temperature": 1.31,
            "score": "max_softmax",
            "threshold": 0.8,
            "target_risk": config["target_risk"],
            "coverage": 0.91,
            "risk": 0.048,
            "n": 120,
            "chosen_on": "val split of run fake",
            "reached": True,
        },
        "metrics": {"accuracy": 0.9 if int8 else 0.9125, "coverage": 0.89, "selective_risk": 0.042},
        "parent_run": config["run"],
    }


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    emit = EventWriter(Path(argv[1]).stem, [sys.stdout], max_progress_per_s=0)
    delay = float(os.environ.get("FAKE_EXPORT_DELAY", "0"))
    failure = os.environ.get("FAKE_EXPORT_FAIL", "")
    cancel = threading.Event()

    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                cancel.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    int8 = bool(config["int8"])
    emit.log(f"exporting resnet10t from {Path(config['run']).name} (fake)")
    phases = [("export", 1), *([("quantize", 4)] if int8 else []), ("calibrate", 4), ("verify", 4)]
    for phase, total in phases:
        for done in range(total + 1):
            if cancel.is_set():
                emit.log("export cancelled; no bundle written")
                emit("done", {"cancelled": True, "bundle": None})
                return 0
            emit("progress", {"phase": phase, "done": done, "total": total})
            time.sleep(delay)
        if phase == "calibrate" and failure == "crash":
            sys.stderr.write("Traceback (most recent call last):\nMemoryError (fake crash)\n")
            sys.stderr.flush()
            return 1
        if phase == "verify" and failure == "error":
            emit(
                "error",
                {
                    "message": "export refused, no bundle written: INT8 accuracy 80.00% "
                    "vs FP32 91.25%: drop 11.25 points (limit 2.00)"
                },
            )
            return 2
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.json").write_text(json.dumps(bundle_meta(config, int8)), encoding="utf-8")
    (out / "verification.json").write_text(json.dumps(report(int8)), encoding="utf-8")
    emit("artifact", {"kind": "report", "path": str(out / "verification.json")})
    zip_path = None
    if config["zip"]:
        zip_path = out.with_name(out.name + ".zip")
        with zipfile.ZipFile(zip_path, "w") as archive:
            for file in sorted(out.iterdir()):
                archive.write(file, file.name)
        emit("artifact", {"kind": "bundle_zip", "path": str(zip_path)})
    emit("artifact", {"kind": "bundle", "path": str(out)})
    emit(
        "done",
        {
            "cancelled": False,
            "bundle": str(out),
            "zip": str(zip_path) if zip_path else None,
            "precision": "int8" if int8 else "fp32",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
