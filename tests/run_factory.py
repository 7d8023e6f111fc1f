"""Run directories and bundles as the jobs write them (only the files core.runs reads)."""

from __future__ import annotations

import json
from pathlib import Path


def make_run(
    root: Path,
    name: str,
    kind: str,
    *,
    parent: str | None = None,
    summary: dict | None = None,
    metrics: list[dict] | None = None,
    created: str = "",
    arch: str = "resnet10t",
    weights: int = 0,
) -> Path:
    """A run directory like training/rundir.py writes (only the files the scanner reads)."""
    path = root / name
    path.mkdir(parents=True)
    run = {
        "id": name,
        "kind": kind,
        "parent": parent,
        "created": created,
        "status": "done",
        "data": "/data/faces",
        "arch": arch,
        "summary": summary or {},
    }
    (path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    (path / "config.json").write_text(json.dumps({"kind": kind, "epochs": 7}), encoding="utf-8")
    if metrics:
        header = list(metrics[0])
        lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in metrics]
        (path / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if weights:
        (path / "best.safetensors").write_bytes(b"\0" * weights)
    return path


def make_bundle(root: Path, name: str, parent_run: str | None, accuracy: float) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "deepfake-studio/bundle",
        "format_version": 1,
        "arch": "resnet10t",
        "created": "2026-11-23T12:05:00Z",
        "parent_run": parent_run,
        "model": {"file": "model.onnx", "bytes": 4321, "precision": "int8"},
        "metrics": {"accuracy": accuracy, "latency_ms": 3.25},
    }
    (path / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    return path
