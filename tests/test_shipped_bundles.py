"""The bundles that ship in assets/: they load, prove their golden vectors, and keep their figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.events import EventWriter

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHIPPED = sorted(
    p for p in (ROOT / "assets" / "bundles").glob("*") if (p / "bundle.json").is_file()
)


@pytest.mark.parametrize("bundle_dir", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_bundle_loads_and_reproduces_its_golden_vectors(bundle_dir: Path) -> None:
    from core.bundle import load_bundle, verify_golden
    from core.inference import OnnxPredictor

    bundle = load_bundle(bundle_dir)
    check = verify_golden(bundle, OnnxPredictor(bundle))
    assert check.ok, check.summary()
    assert bundle.model_path.stat().st_size < 8 * 1024 * 1024, "keep shipped bundles a few MB"
    assert bundle.real_class in bundle.class_names
    assert bundle.calibration.threshold > 0.0 and bundle.calibration.temperature > 0


@pytest.mark.shared_data
def test_cifake_bundle_keeps_its_accuracy_on_the_cifake_test_folder() -> None:
    data = SHARED / "cifake" / "test"
    if not data.is_dir():
        pytest.skip(f"{data} is absent (the shared CIFAKE data set)")
    from training.evaluate import run

    report = run(
        {"models": [str(ROOT / "assets" / "bundles" / "cifake")], "data": str(data),
         "latency": False, "batch_size": 256},
        EventWriter("t", []),
    )  # fmt: skip
    assert report["n"] == 4000
    assert report["accuracy"] >= 0.97, report["accuracy"]  # measured 0.9730 (README)
    assert report["auc"] >= 0.99
    meta = json.loads((ROOT / "assets/bundles/cifake/bundle.json").read_text())
    assert meta["export"]["flip_average"] is True  # the figure includes mirror averaging
    calibration = meta["calibration"]
    assert report["temperature"] == pytest.approx(calibration["temperature"])  # what the app shows
    assert report["ece"] <= 0.05, report["ece"]  # measured 0.0097 with the bundle's temperature
