"""INT8 export: onnxruntime static QDQ quantisation, its verification figures and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from tests.conftest import run_export_job

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture
def int8_export(exported_int8_bundle: Path) -> tuple[Path, list]:
    """conftest's INT8 bundle of ``trained_run`` and the events its export job emitted."""
    events = exported_int8_bundle.with_name(exported_int8_bundle.name + ".events.json")
    return exported_int8_bundle, json.loads(events.read_text())


def test_int8_bundle_is_qdq_per_channel_and_four_times_smaller(
    int8_export, exported_bundle
) -> None:
    import onnx

    from core.bundle import load_bundle

    out, _ = int8_export
    bundle = load_bundle(out)
    assert bundle.meta["model"]["precision"] == "int8"
    assert bundle.meta["model"]["outputs"] == ["logits", "cam"]
    quantization = bundle.meta["export"]["quantization"]
    assert quantization["format"] == "QDQ" and quantization["per_channel"]
    assert quantization["calibration_images"] == 24
    graph = onnx.load(str(out / "model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    initializers = {t.name: t for t in graph.initializer}
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 10
    per_channel = [
        node
        for node in graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[1] in initializers
        and len(initializers[node.input[1]].dims) == 1
        and initializers[node.input[1]].dims[0] > 1
    ]
    assert per_channel, "no per-channel weight scales"
    fp32_bytes = (exported_bundle / "model.onnx").stat().st_size
    assert fp32_bytes / bundle.meta["model"]["bytes"] > 3.5


def test_int8_accuracy_and_agreement_are_measured(int8_export, trained_run: Path) -> None:
    out, _ = int8_export
    report = json.loads((out / "verification.json").read_text())
    assert report["ok"] and report["shipped"] == "int8"
    fp32, int8 = report["variants"]["fp32"], report["variants"]["int8"]
    n = len(json.loads((trained_run / "split.json").read_text())["splits"]["test"])
    assert report["n"] == n
    assert int8["accuracy"] in [k / n for k in range(n + 1)]
    assert int8["accuracy_drop"] == pytest.approx(fp32["accuracy"] - int8["accuracy"])
    assert int8["accuracy_drop"] <= 0.02
    assert 0.0 <= int8["agreement_with_fp32"] <= 1.0
    assert 0 < int8["max_abs_diff_vs_fp32"] < 1.0
    assert int8["size_ratio_vs_fp32"] == pytest.approx(fp32["bytes"] / int8["bytes"])
    assert int8["latency_ms"] > 0 and fp32["latency_ms"] > 0
    assert [c["name"] for c in report["checks"]] == ["fp32 parity", "int8 accuracy drop"]
    assert all(c["ok"] for c in report["checks"])
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["metrics"]["accuracy"] == int8["accuracy"]


def test_int8_golden_vectors_verify_with_onnxruntime(int8_export) -> None:
    from core.bundle import load_bundle, verify_golden
    from core.inference import OnnxPredictor

    out, _ = int8_export
    bundle = load_bundle(out)
    check = verify_golden(bundle, OnnxPredictor(bundle, threads=1))
    assert check.ok, check.summary()
    assert check.logits_diff == 0.0


def test_job_reports_each_phase_and_ends_with_the_bundle(int8_export) -> None:
    out, events = int8_export
    phases = [e["data"]["phase"] for e in events if e["type"] == "progress"]
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert order == ["export", "quantize", "calibrate", "verify"]
    quantize = [e["data"] for e in events if e["data"].get("phase") == "quantize"]
    assert quantize[-1] == {"phase": "quantize", "done": 24, "total": 24}
    artifacts = [e["data"] for e in events if e["type"] == "artifact"]
    assert artifacts[-1] == {"kind": "bundle", "path": str(out)}
    assert {"kind": "report", "path": str(out / "verification.json")} in artifacts


def test_int8_accuracy_loss_beyond_the_limit_is_refused(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INT8 logits scrambled (every answer wrong): refused with the figures, nothing written."""
    from training import verify

    original = verify.OnnxModel.__call__

    def wrong_int8(self, batch):
        logits, cam = original(self, batch)
        if "int8" in self.path.name:
            logits = np.roll(logits, 1, axis=1)
        return logits, cam

    monkeypatch.setattr(verify.OnnxModel, "__call__", wrong_int8)
    out = tmp_path / "bundle"
    with pytest.raises(UserError, match=r"INT8 accuracy 0\.00% vs FP32 100\.00%: drop 100\.00"):
        run_export_job({"run": str(trained_run), "out": str(out), "int8": True, "calib_images": 8})
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle.verification-failed.json"]


def test_cancel_during_quantisation_leaves_nothing(trained_run: Path, tmp_path: Path) -> None:
    from training.control import CancelToken

    class AlwaysCancelled(CancelToken):
        def is_set(self) -> bool:
            return True

    events: list[dict] = []
    out = tmp_path / "bundle"
    summary = run_export_job(
        {"run": str(trained_run), "out": str(out), "int8": True, "calib_images": 8},
        events,
        AlwaysCancelled(),
    )
    assert summary == {"cancelled": True, "bundle": None}
    assert list(tmp_path.iterdir()) == []
    assert not [e for e in events if e["type"] == "artifact"]


def test_calibration_reader_batches_training_images_by_the_contract(trained_run: Path) -> None:
    from core.models import ModelDescription
    from training.config import read_split
    from training.quantize import ImageReader, pick_calibration_samples

    spec = ModelDescription.load(trained_run).preprocess
    train = read_split(trained_run / "split.json", "train")
    picked = pick_calibration_samples(train, 20, seed=3)
    assert picked == pick_calibration_samples(train, 20, seed=3) != train[:20]
    assert len(pick_calibration_samples(train, 10_000, seed=3)) == len(train)
    seen: list[tuple[int, int]] = []
    reader = ImageReader(picked, spec, batch_size=8, progress=lambda d, t: seen.append((d, t)))
    batches = list(iter(reader.get_next, None))
    assert [b["image"].shape for b in batches] == [(8, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)]
    assert batches[0]["image"].dtype == np.float32
    np.testing.assert_array_equal(batches[0]["image"][0], spec.from_file(picked[0].path))
    assert seen == [(8, 20), (16, 20), (20, 20)]
    reader.rewind()
    assert reader.get_next()["image"].shape == (8, 3, 32, 32)
    with pytest.raises(UserError, match="train split is empty"):
        pick_calibration_samples([], 10, seed=0)
