"""The export job: a real tiny run to a verified FP32 bundle, its contract, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from tests.conftest import run_export_job

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def split_of(run: Path, name: str) -> list[str]:
    return json.loads((run / "split.json").read_text())["splits"][name]


def test_bundle_carries_the_runs_contract(exported_bundle: Path, trained_run: Path) -> None:
    from core.bundle import load_bundle
    from core.models import ModelDescription

    bundle = load_bundle(exported_bundle)
    description = ModelDescription.load(trained_run)
    summary = json.loads((trained_run / "run.json").read_text())["summary"]
    meta = bundle.meta
    assert meta["model"]["precision"] == "fp32"
    assert meta["model"]["opset"] == 17
    assert meta["model"]["outputs"] == ["logits", "cam"]
    assert bundle.class_names == ["real", "sd14", "sdxl"] == description.class_names
    assert bundle.preprocess == description.preprocess
    assert meta["parent_run"] == str(trained_run)
    assert meta["stats"] == {"params": summary["params"], "macs": summary["macs"]}
    assert meta["export"]["exporter"].endswith("dynamo=False)")
    calibration = bundle.calibration
    assert calibration.n == len(split_of(trained_run, "val"))
    assert calibration.chosen_on == f"val split of run {trained_run.name}"
    assert calibration.target_risk == 0.05
    assert meta["calibration_choice"]["requested"] == "auto"
    assert meta["calibration_choice"]["chosen"] == calibration.score
    # Metrics are the test split's, and the torch figure matches the run's own test evaluation.
    report = json.loads((exported_bundle / "verification.json").read_text())
    assert meta["metrics"]["n"] == report["n"] == len(split_of(trained_run, "test"))
    assert meta["metrics"]["accuracy"] == report["variants"]["fp32"]["accuracy"]
    assert report["variants"]["torch"]["accuracy"] == pytest.approx(summary["test_acc"])
    assert 0.0 <= meta["metrics"]["coverage"] <= 1.0


def test_bundle_metrics_are_what_evaluate_measures_with_the_bundle_temperature(
    exported_bundle: Path, trained_run: Path, tmp_path: Path
) -> None:
    from core.events import EventWriter
    from training.evaluate import run

    data = json.loads((trained_run / "config.json").read_text())["data"]
    report = run(
        {"models": [str(exported_bundle)], "data": data, "split": "test", "latency": False,
         "workspace": str(tmp_path / "ws")},
        EventWriter("t", []),
    )  # fmt: skip
    meta = json.loads((exported_bundle / "bundle.json").read_text())
    metrics = meta["metrics"]
    assert report["selection"]["split"] == "test"
    assert report["n"] == metrics["n"]
    assert report["temperature"] == pytest.approx(meta["calibration"]["temperature"])
    # the ECE of the confidences the app shows, not of the raw softmax
    assert report["ece"] == pytest.approx(metrics["ece"])
    assert report["confusion_matrix"] == metrics["confusion_matrix"]
    verification = json.loads((exported_bundle / "verification.json").read_text())
    assert metrics["ece_raw"] == pytest.approx(verification["variants"]["fp32"]["ece"])


def test_shipped_metrics_carry_the_calibrated_temperature(trained_run: Path) -> None:
    from core.metrics import expected_calibration_error
    from core.models import ModelDescription
    from core.rejection import Calibration
    from core.verdict import softmax
    from training.export import shipped_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = 3 * rng.normal(size=(300, 3))
    logits[np.arange(300), labels] += 2.0  # over-confident: right 2 times in 3
    calibration = Calibration(temperature=2.5, threshold=0.6)
    description = ModelDescription.load(trained_run)
    metrics = shipped_metrics(logits, labels, calibration, description)
    calibrated = softmax(logits / 2.5)
    assert metrics["ece"] == pytest.approx(expected_calibration_error(labels, calibrated))
    assert metrics["ece_raw"] == pytest.approx(expected_calibration_error(labels, softmax(logits)))
    assert metrics["ece"] < metrics["ece_raw"] - 0.05
    answered = calibrated.max(axis=1) >= 0.6
    assert metrics["coverage"] == pytest.approx(answered.mean())
    wrong = calibrated.argmax(axis=1) != labels
    assert metrics["selective_risk"] == pytest.approx(wrong[answered].mean())
    assert shipped_metrics(logits[:0], labels[:0], calibration, description) == {}


def test_fp32_parity_with_torch_on_golden_vectors_and_test_split(
    exported_bundle: Path, trained_run: Path
) -> None:
    report = json.loads((exported_bundle / "verification.json").read_text())
    assert report["ok"] and report["shipped"] == "fp32" and report["split"] == "test"
    parity = report["parity"]
    assert parity["golden_logits"] < 1e-4
    assert parity["split_logits"] < 1e-4
    assert parity["split_cam"] < 1e-4
    assert report["variants"]["fp32"]["latency_ms"] > 0
    assert report["variants"]["fp32"]["bytes"] == (exported_bundle / "model.onnx").stat().st_size
    assert [c["name"] for c in report["checks"]] == ["fp32 parity"]
    assert report["golden"]["ok"]


def test_onnx_model_matches_torch_on_a_dynamic_batch(
    exported_bundle: Path, trained_run: Path
) -> None:
    from core.bundle import load_bundle
    from core.inference import OnnxPredictor, TorchPredictor
    from core.models import load_model

    model, description = load_model(trained_run)
    batch = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    onnx_logits, onnx_cam = OnnxPredictor(load_bundle(exported_bundle), threads=1).predict_batch(
        batch
    )
    torch_logits, torch_cam = TorchPredictor(model, description).predict_batch(batch)
    assert onnx_logits.shape == (5, 3)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    np.testing.assert_allclose(onnx_cam, torch_cam, atol=1e-4)
    np.testing.assert_allclose(onnx_cam.mean(axis=(2, 3)), onnx_logits, atol=1e-4)


@pytest.fixture(scope="module")
def flip_export(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """``trained_run`` exported with ``flip_average``: ``(the job's summary, the bundle folder)``."""
    out = tmp_path_factory.mktemp("export-flip") / "flip"
    summary = run_export_job({"run": str(trained_run), "out": str(out), "flip_average": True})
    return summary, out


def test_flip_averaged_bundle_answers_the_same_for_an_image_and_its_mirror(
    flip_export: tuple[dict, Path], trained_run: Path
) -> None:
    import torch

    from core.bundle import load_bundle
    from core.inference import OnnxPredictor
    from core.models import load_model

    summary, flip_bundle = flip_export
    assert summary["verification"]["ok"]
    assert summary["verification"]["parity"]["split_logits"] < 1e-4
    bundle = load_bundle(flip_bundle)
    parent = json.loads((trained_run / "run.json").read_text())["summary"]
    assert bundle.meta["export"]["flip_average"] is True
    assert bundle.meta["stats"]["params"] == parent["params"]
    assert bundle.meta["stats"]["macs"] == pytest.approx(2 * parent["macs"], rel=0.01)
    batch = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    mirror = np.ascontiguousarray(batch[..., ::-1])
    predictor = OnnxPredictor(bundle, threads=1)
    logits, cam = predictor.predict_batch(batch)
    mirror_logits, mirror_cam = predictor.predict_batch(mirror)
    np.testing.assert_allclose(logits, mirror_logits, atol=1e-4)
    np.testing.assert_allclose(cam, mirror_cam[..., ::-1], atol=1e-4)  # maps stay on the image
    np.testing.assert_allclose(cam.mean(axis=(2, 3)), logits, atol=1e-4)
    model, _ = load_model(trained_run)
    with torch.no_grad():
        mean = (model(torch.from_numpy(batch)) + model(torch.from_numpy(mirror))) / 2
    np.testing.assert_allclose(logits, mean.numpy(), atol=1e-4)
    assert not np.allclose(logits, model(torch.from_numpy(batch)).detach().numpy(), atol=1e-3)


def test_evaluate_scores_a_run_mirror_averaged_as_its_bundle_will(
    flip_export: tuple[dict, Path], exported_bundle: Path, trained_run: Path
) -> None:
    from core.events import EventWriter
    from training.evaluate import run as evaluate

    data = json.loads((trained_run / "split.json").read_text())["root"]
    common = {"data": data, "split": "test", "latency": False, "threads": 1}

    def score(model: Path, **options) -> dict:
        return evaluate({**common, "models": [str(model)], **options}, EventWriter("t", []))

    run_report = score(trained_run, flip_average=True)
    bundle_report = score(flip_export[1])
    assert run_report["flip_average"] is bundle_report["flip_average"] is True
    assert run_report["n"] == bundle_report["n"] == len(split_of(trained_run, "test"))
    assert run_report["accuracy"] == pytest.approx(bundle_report["accuracy"])
    single_pass = score(trained_run)
    assert run_report["macs"] == pytest.approx(2 * single_pass["macs"], rel=0.01)
    assert single_pass["flip_average"] is False
    with pytest.raises(UserError, match="exported without mirror averaging"):
        score(exported_bundle, flip_average=True)


def test_bundle_remakes_its_runs_test_split_without_the_run_folder(
    exported_bundle: Path, trained_run: Path, tmp_path: Path
) -> None:
    from core.events import EventWriter
    from core.splits import split_fingerprint
    from training.evaluate import run as evaluate

    recorded = json.loads((trained_run / "split.json").read_text())
    data = Path(recorded["root"])
    meta = json.loads((exported_bundle / "bundle.json").read_text())
    test_files = recorded["splits"]["test"]
    assert meta["training_split"] == {
        "data": data.name,
        "seed": 0,
        "val": 0.1,
        "test": 0.1,
        "files": {name: len(files) for name, files in recorded["splits"].items()},
        "fingerprints": {
            name: split_fingerprint((rel, recorded["labels"][rel]) for rel in files)
            for name, files in recorded["splits"].items()
        },
    }
    # A copy of the data somewhere else and a bundle whose run folder is not here.
    copy = shutil.copytree(data, tmp_path / "elsewhere" / data.name)
    bundle = shutil.copytree(exported_bundle, tmp_path / "bundle")
    meta["parent_run"] = str(tmp_path / "gone")
    (bundle / "bundle.json").write_text(json.dumps(meta))

    def score(folder: Path, **options) -> tuple[dict, list[str]]:
        events: list = []
        config = {
            "models": [str(bundle)],
            "data": str(folder),
            "split": "test",
            "latency": False,
            "workspace": str(tmp_path / "ws"),
        }
        report = evaluate(
            {**config, "threads": 1, **options}, EventWriter("t", [], listeners=[events.append])
        )
        return report, [
            e.data["message"] for e in events if e.type == "log" and e.data["level"] == "warning"
        ]

    with_run, _ = score(data)  # the original folder: no run split here either (run is "gone")
    from core.datasets import DatasetIndex
    from core.workspace import Workspace

    own = DatasetIndex.build(copy, Workspace.resolve(tmp_path / "ws"))
    own.make_splits(seed=7, val=0.2, test=0.2)  # the user's own splits of the copy
    report, events = score(copy)
    assert own.split_params() == {"seed": 7, "val": 0.2, "test": 0.2}  # left as they were
    assert report["selection"]["matches_training_split"] is True
    assert report["n"] == len(test_files)
    assert report["accuracy"] == meta["metrics"]["accuracy"] == with_run["accuracy"]
    assert not events
    # Other shares, or a changed data set, give another split: said in the report and the log.
    other, events = score(copy, test=0.3)
    assert other["selection"]["matches_training_split"] is False and other["n"] > report["n"]
    assert any("may have been training images" in message for message in events)
    (copy / test_files[0]).unlink()
    assert score(copy)[0]["selection"]["matches_training_split"] is False
    renamed = shutil.copytree(data, tmp_path / "renamed")
    assert score(renamed)[0]["selection"]["matches_training_split"] is None


def test_split_shares_given_beat_recorded_beat_the_default() -> None:
    from training.evaluate import ModelUnderTest, split_shares

    model = ModelUnderTest(Path("b"), "bundle", predictor=None)  # type: ignore[arg-type]
    assert split_shares({}, model) == (0, 0.1, 0.1)
    model.training_split = {"seed": 3, "val": 0.2, "test": 0.15}
    assert split_shares({"seed": None, "val": None, "test": None}, model) == (3, 0.2, 0.15)
    assert split_shares({"seed": 1, "val": 0.0, "test": 0.25}, model) == (1, 0.0, 0.25)


def test_golden_vectors_are_real_test_images_of_every_class(
    exported_bundle: Path, trained_run: Path
) -> None:
    from PIL import Image

    from core.bundle import load_bundle, verify_golden
    from core.inference import OnnxPredictor

    bundle = load_bundle(exported_bundle)
    golden = json.loads((exported_bundle / "golden" / "golden.json").read_text())
    vectors = golden["vectors"]
    picked, boundary = vectors[:6], vectors[6:]  # 6 test images, then the rule's boundary
    test_files = {Path(p).name for p in split_of(trained_run, "test")}
    assert {Path(v["source"]).name for v in picked} <= test_files
    val_files = {Path(p).name for p in split_of(trained_run, "val")}
    assert len(boundary) <= 2 and {Path(v["source"]).name for v in boundary} <= val_files
    assert {v["source"].split("/")[0] for v in picked} == {"real", "sd14", "sdxl"}
    assert all(v["label"] == v["source"].split("/")[0] for v in vectors)
    for vector in vectors:
        # The stored PNG is the decoded image before geometry (40x48), the input after it.
        with Image.open(exported_bundle / "golden" / vector["image"]) as image:
            assert image.size == (48, 40) and image.mode == "RGB"
        raw = (exported_bundle / "golden" / vector["input"]).read_bytes()
        assert len(raw) == 4 * 3 * 32 * 32 and vector["shape"] == [1, 3, 32, 32]
    check = verify_golden(bundle, OnnxPredictor(bundle, threads=1))
    assert check.ok, check.summary()
    assert check.logits_diff == 0.0 and check.input_diff < 1e-5


def test_boundary_golden_images_pin_the_threshold_and_the_floor(tmp_path: Path) -> None:
    from PIL import Image

    from core.datasets import Sample
    from core.rejection import Calibration
    from training.export import pick_boundary

    samples = []
    for i in range(6):
        path = tmp_path / f"v{i}.png"
        Image.new("RGB", (8, 8)).save(path)
        samples.append(Sample(path, "real"))
    # two classes; max-softmax p = sigmoid(d), energy = log(e^a + e^b)
    logits = np.array([
        [3.0, 0.0],  # p 0.953, energy 3.05: answered, far above the threshold
        [1.0, 0.0],  # p 0.731, energy 1.31: answered just above 0.70, but under the floor
        [1.5, 0.5],  # p 0.731 (same gap), energy 1.81: answered, clear of the floor
        [0.6, 0.5],  # p 0.525, energy 1.24: turned away by the threshold, under the floor
        [2.2, 2.0],  # p 0.550, energy 2.80: turned away by the threshold, clear of the floor
        [0.8, 0.0],  # p 0.690: within the 0.02 margin below the threshold: never picked
    ])  # fmt: skip
    plain = Calibration(threshold=0.70)
    assert pick_boundary(samples, logits, plain, []) == [samples[1], samples[4]]
    assert pick_boundary(samples, logits, plain, [samples[1]]) == [samples[2], samples[4]]
    floored = Calibration(threshold=0.70, energy_floor=1.6, floor_keep=0.8)
    # answered nearest the threshold clear of the floor, turned away likewise, then the image
    # whose score would answer it that the floor turns away
    assert pick_boundary(samples, logits, floored, []) == [samples[2], samples[4], samples[1]]


def test_zip_is_written_and_loads(exported_bundle: Path) -> None:
    from core.bundle import load_bundle

    zipped = load_bundle(exported_bundle.with_name(exported_bundle.name + ".zip"))
    assert zipped.meta["model"]["sha256"] == load_bundle(exported_bundle).meta["model"]["sha256"]
    assert (zipped.root / "verification.json").is_file()


def test_edited_model_is_refused_on_load(exported_bundle: Path, tmp_path: Path) -> None:
    from core.bundle import load_bundle

    copy = Path(shutil.copytree(exported_bundle, tmp_path / "bundle"))
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256 mismatch"):
        load_bundle(copy)


@pytest.mark.parametrize("missing", ["best.safetensors", "model.json", "split.json"])
def test_incomplete_run_is_refused_before_any_work(
    trained_run: Path, tmp_path: Path, missing: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.json", "best.safetensors", "split.json", "run.json"):
        if name != missing:
            shutil.copy(trained_run / name, run / name)
    out = tmp_path / "bundle"
    events: list[dict] = []
    with pytest.raises(UserError, match=f"incomplete: {missing} missing"):
        run_export_job({"run": str(run), "out": str(out)}, events)
    assert events == [] and not out.exists()


def test_bad_options_are_refused(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="score must be one of"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "b"), "score": "magic"})
    with pytest.raises(UserError, match="opset must be between 13 and 20"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "b"), "opset": 9})
    with pytest.raises(UserError, match="unknown export option"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "b"), "quant": True})
    with pytest.raises(UserError, match=r"energy_floor must be between 0\.01 and 1"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "b"), "energy_floor": 1.5})
    with pytest.raises(UserError, match="flip_average must be true or false"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "b"), "flip_average": 1})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(UserError, match="exists and is not a bundle"):
        run_export_job({"run": str(trained_run), "out": str(tmp_path / "notes")})
    with pytest.raises(UserError, match="inside the run folder"):
        run_export_job({"run": str(trained_run), "out": str(trained_run / "bundle")})


def test_broken_parity_refuses_and_keeps_the_older_bundle(
    exported_bundle: Path, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX FP32 logits off by 0.01: refused, old bundle untouched, failure report written."""
    from core.bundle import load_bundle
    from training import verify

    original = verify.OnnxModel.__call__

    def skewed(self, batch):
        logits, cam = original(self, batch)
        return logits + 0.01, cam

    monkeypatch.setattr(verify.OnnxModel, "__call__", skewed)
    out = Path(shutil.copytree(exported_bundle, tmp_path / "bundle"))
    sha = load_bundle(out).meta["model"]["sha256"]
    with pytest.raises(
        UserError, match=r"no bundle written.*torch vs ONNX FP32 max \|diff\| 1\.00e-02"
    ):
        run_export_job({"run": str(trained_run), "out": str(out)})
    assert load_bundle(out).meta["model"]["sha256"] == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle",
        "bundle.verification-failed.json",
    ]
    failed = json.loads((tmp_path / "bundle.verification-failed.json").read_text())
    assert not failed["ok"] and failed["parity"]["split_logits"] == pytest.approx(0.01, abs=1e-4)


def test_cli_exports_and_reports(trained_run: Path, tmp_path: Path, capsys) -> None:
    from app.__main__ import main

    out = tmp_path / "cli-bundle"
    argv = ["--workspace", str(tmp_path / "ws"), "export", "--run", str(trained_run)]
    argv += ["--out", str(out), "--threads", "1", "--score", "energy", "--target-risk", "0.1"]
    assert main([*argv, "--energy-floor", "0.8"]) == 0
    printed, logged = capsys.readouterr()
    assert (
        "fp32" in printed and "OK   torch vs ONNX FP32" in printed and f"bundle: {out}" in printed
    )
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["calibration"]["score"] == "energy" and meta["calibration"]["target_risk"] == 0.1
    assert meta["calibration_choice"]["how"] == "requested by the user"
    # the energy floor keeps 80 % of the val images; the threshold is chosen above it
    assert meta["calibration"]["floor_keep"] == 0.8
    n = meta["calibration"]["n"]  # at least 80 % of them reach the floor: ceil(0.8 n)
    assert meta["calibration"]["coverage"] <= np.ceil(0.8 * n) / n < 1 and "energy >= " in logged
    from core.bundle import load_bundle

    assert load_bundle(out).calibration.energy_floor == meta["calibration"]["energy_floor"]
    assert main(["export", "--run", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "error: the run" in capsys.readouterr().err


def test_calibrate_picks_the_better_score_and_says_how() -> None:
    from training.export import calibrate

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), labels] += rng.uniform(-1.0, 4.0, 300)
    calibration, choice = calibrate(logits, labels, "auto", 0.05, "synthetic")
    assert choice["chosen"] == max(choice["auroc_correct"], key=choice["auroc_correct"].get)
    assert choice["how"].startswith("auto: higher AUROC")
    assert calibration.score == choice["chosen"] and calibration.n == 300
    assert calibration.risk <= 0.05 and calibration.reached
    perfect = np.eye(3)[labels] * 5.0
    calibration, choice = calibrate(perfect, labels, "auto", 0.05, "synthetic")
    assert choice["chosen"] == "max_softmax" and "undefined" in choice["how"]
    assert calibration.temperature == 1.0 and choice["temperature"].startswith("not fitted")
    assert calibration.threshold == pytest.approx(np.exp(5) / (np.exp(5) + 2))


def test_golden_picks_take_classes_in_turn_small_images_first(tmp_path: Path) -> None:
    from PIL import Image

    from core.datasets import Sample
    from training.export import pick_golden

    samples = []
    for label, n_small in (("real", 3), ("fake", 1)):
        for i in range(4):
            size = (40, 30) if i < n_small else (1100, 1000)  # 1.1 megapixels: large
            path = tmp_path / f"{label}{i}.png"
            Image.new("RGB", size).save(path)
            samples.append(Sample(path, label))
    picked = pick_golden(samples, ["fake", "real"], 6, seed=1)
    assert [s.label for s in picked] == ["fake", "real"] * 3
    assert picked[0].path.name == "fake0.png"  # the only small fake image comes first
    assert {s.path.name for s in picked if s.label == "real"} == {
        "real0.png",
        "real1.png",
        "real2.png",
    }
    assert pick_golden(samples, ["fake", "real"], 6, seed=1) == picked
    with pytest.raises(UserError, match="no images to make golden vectors"):
        pick_golden([], ["fake", "real"], 6, seed=1)


def test_pruned_run_exports_with_its_pruned_architecture(trained_run: Path, tmp_path: Path) -> None:
    """A Torch-Pruning run (pruning.json replayed by core.models.load_model) exports alike."""
    from core.events import EventWriter
    from training.prune import run as prune

    pruned = tmp_path / "pruned"
    config = {"run": str(trained_run), "out": str(pruned), "steps": 1, "epochs": 0}
    prune({**config, "macs_ratio": 0.6, "threads": 1}, EventWriter("prune", []))
    assert (pruned / "pruning.json").is_file()
    summary = run_export_job({"run": str(pruned), "out": str(tmp_path / "bundle")})
    meta = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    parent = json.loads((trained_run / "run.json").read_text())["summary"]
    assert meta["stats"]["macs"] < 0.7 * parent["macs"]
    assert meta["stats"]["params"] < parent["params"]
    assert meta["parent_run"] == str(pruned)
    assert summary["verification"]["parity"]["split_logits"] < 1e-4
    assert summary["verification"]["ok"]


def test_a_head_without_cam_exports_logits_only(tmp_path: Path) -> None:
    """mobilenetv3 has a conv after pooling: no in-graph CAM, one output, dynamic batch."""
    import onnx
    import onnxruntime as ort
    import torch

    from core.models import create_model
    from training.export import export_onnx

    torch.manual_seed(0)
    model = create_model("mobilenetv3_small_050", 2).eval()
    path = tmp_path / "m.onnx"
    assert export_onnx(model, 32, path, opset=13) == ["logits"]
    graph = onnx.load(str(path))
    assert [o.name for o in graph.graph.output] == ["logits"]
    assert next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 13
    x = np.random.default_rng(1).normal(size=(3, 3, 32, 32)).astype(np.float32)
    (logits,) = ort.InferenceSession(str(path)).run(None, {"image": x})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_run_without_test_split_verifies_on_val_and_replaces_an_older_bundle(
    exported_bundle: Path, trained_run: Path, tmp_path: Path
) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("c*")))
    split = json.loads((run / "split.json").read_text())
    split["splits"]["test"] = []
    (run / "split.json").write_text(json.dumps(split))
    out = Path(shutil.copytree(exported_bundle, tmp_path / "bundles" / "b"))
    events: list[dict] = []
    summary = run_export_job({"run": str(run), "out": str(out)}, events)
    report = json.loads((out / "verification.json").read_text())
    assert report["split"] == "val" and report["n"] == len(split["splits"]["val"])
    assert summary["verification"]["split"] == "val"
    assert json.loads((out / "bundle.json").read_text())["parent_run"] == str(run)
    assert [p.name for p in (tmp_path / "bundles").iterdir()] == ["b"]
    warnings = [e["data"]["message"] for e in events if e["data"].get("level") == "warning"]
    assert warnings == ["the run has no test split: verifying on the val split instead"]
