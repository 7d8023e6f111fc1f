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


def build_default_data(root: Path) -> Path:
    """The default bundle's data layout (docs/recipes.md) from the shared faces and scenes sets,
    as symbolic links: one folder per class, each domain's images in a sub-folder."""
    data = root / "default"
    for domain in ("faces", "scenes"):
        for source in sorted((SHARED / domain).iterdir()):
            target = data / source.name / domain
            target.mkdir(parents=True)
            for image in source.iterdir():
                (target / image.name).symlink_to(image)
    return data


@pytest.mark.shared_data
def test_default_bundle_remakes_its_test_split_and_figures(tmp_path: Path) -> None:
    if not all((SHARED / d).is_dir() for d in ("faces", "scenes")):
        pytest.skip(f"{SHARED}/faces or /scenes is absent (the shared data sets)")
    from training.evaluate import run

    bundle = ROOT / "assets" / "bundles" / "default"
    report = run(
        {"models": [str(bundle)], "data": str(build_default_data(tmp_path)), "split": "test",
         "latency": False, "workspace": str(tmp_path / "ws")},
        EventWriter("t", []),
    )  # fmt: skip
    meta = json.loads((bundle / "bundle.json").read_text())
    assert report["selection"]["matches_training_split"] is True
    # the seven named classes' test images; the two outlier classes' get rows of their own
    assert report["n"] == meta["training_split"]["files"]["test"] == 858
    # The export measured these on the parent run's test split: the same images give the same.
    assert report["confusion_matrix"] == meta["metrics"]["confusion_matrix"]
    assert report["accuracy"] == pytest.approx(0.7506, abs=1e-4)  # README: 75.1 %
    assert report["ece"] == pytest.approx(meta["metrics"]["ece"])  # with the temperature
    assert report["ece"] <= 0.05  # README: 0.030
    outliers = {row["class"]: row for row in report["outliers"]}
    assert (
        set(outliers)
        == {"stylegan1", "other-ai"}
        == set(meta["training_split"]["outlier_class"].split(","))
    )
    assert (outliers["stylegan1"]["n"], outliers["other-ai"]["n"]) == (165, 29)  # test shares
    # README: its rule answers "unknown" for 90 % / 69 % of them (their test shares)
    assert outliers["stylegan1"]["verdicts"]["unknown"] == pytest.approx(149 / 165)
    assert outliers["other-ai"]["verdicts"]["unknown"] == pytest.approx(20 / 29)
