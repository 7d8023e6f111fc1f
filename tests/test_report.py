"""The quality report and leave-one-class-out evaluation on a tiny trained run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.events import EventWriter
from tests.synthetic import make_image_set

pytest.importorskip("torch")

TINY = {"arch": "resnet10t", "img_size": 32, "batch_size": 16, "threads": 1, "lr": 3e-3}


@pytest.fixture(scope="module")
def left_out_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run trained on real + gan_a, with gan_b left out of training."""
    from training.finetune import run

    root = tmp_path_factory.mktemp("report")
    data = make_image_set(root / "data", {"real": 24, "gan_a": 24, "gan_b": 12})
    out = root / "run"
    run(
        {"data": str(data), "out": str(out), "epochs": 3, "leave_out": "gan_b",
         "workspace": str(root), **TINY},
        EventWriter("t", []),
    )  # fmt: skip
    return data, out


def test_leave_out_run_never_saw_the_class(left_out_run: tuple[Path, Path]) -> None:
    _, run_dir = left_out_run
    model = json.loads((run_dir / "model.json").read_text())
    assert model["class_names"] == ["gan_a", "real"]
    split = json.loads((run_dir / "split.json").read_text())
    assert not any(label == "gan_b" for label in split["labels"].values())


def test_evaluate_leave_out_reports_rejection_auroc(left_out_run: tuple[Path, Path]) -> None:
    from training.evaluate import run

    data, run_dir = left_out_run
    report = run(
        {"models": [str(run_dir)], "data": str(data), "leave_out": "gan_b", "latency": False},
        EventWriter("t", []),
    )
    lo = report["leave_out"]
    assert lo["class"] == "gan_b" and lo["n"] == 12
    assert set(lo["auroc"]) == {"max_softmax", "energy"}
    assert all(0.0 <= v <= 1.0 for v in lo["auroc"].values())
    assert 0.0 <= lo["detected_as_fake"] <= 1.0
    assert report["n"] == 48  # the known classes only


def test_binary_mapping_scores_unknown_generators_as_fake(left_out_run) -> None:
    from training.evaluate import run

    data, run_dir = left_out_run
    report = run(
        {"models": [str(run_dir)], "data": str(data), "binary": True, "latency": False},
        EventWriter("t", []),
    )
    assert report["binary"] is True and report["class_names"] == ["real", "fake"]
    assert report["per_class"]["fake"]["support"] == 36 and report["n"] == 60


def test_report_writes_html_and_json_with_every_panel(left_out_run, tmp_path: Path) -> None:
    from training.report import run

    data, run_dir = left_out_run
    out = tmp_path / "q" / "report.html"
    summary = run(
        {"models": [str(run_dir)], "data": str(data), "out": str(out), "robustness_images": 20},
        EventWriter("t", []),
    )
    html = out.read_text()
    for heading in ("Per class", "Confusion matrix", "ROC", "Reliability", "Coverage vs risk",
                    "Robustness", "Unseen generator", "Leave-one-generator-out matrix"):  # fmt: skip
        assert heading in html, heading
    assert html.count("<svg") == 3
    body = json.loads(out.with_suffix(".json").read_text())
    section = body["models"][0]
    assert section["metrics"]["n"] == 48
    rob = section["robustness"]
    assert set(rob) == {"jpeg75", "downscale0.5", "centre_crop0.8"}
    for row in rob.values():
        assert row["n"] == 20 and 0 <= row["flipped"] <= 1 and 0 <= row["to_unknown"] <= 1
    cov = section["coverage_risk"]
    assert cov["coverage"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(cov["coverage"]) > 0)
    assert summary["models"][0]["leave_out"]["class"] == "gan_b"
    (row,) = body["leave_out_matrix"]
    assert row["class"] == "gan_b" and row["model"] == run_dir.name and row["n"] == 12
    assert row == {"model": run_dir.name, **section["leave_out"]}
    point = cov["at_threshold"]
    assert 0 < point["coverage"] <= 1 and "On these images it answers" in html
    assert section["selection"] == {"split": "all", "source": "all images"}
    # What the Models page lists of it.
    from core.reports import read_report, scan_reports

    listed = read_report(out.with_suffix(".json"))
    assert scan_reports(out.parent) == [listed] and listed.html == out
    assert (listed.data, listed.split) == (str(data), "all")
    (model,) = listed.models
    assert model.name == run_dir.name
    assert model.accuracy == section["metrics"]["accuracy"]
    assert model.coverage == point["coverage"]
    assert model.worst_flip == max(r["flipped"] for r in rob.values())
    assert (model.unseen, model.unseen_called_fake) == ("gan_b", row["detected_as_fake"])
    # The robustness images are a seeded sample: the same figures every time.
    again = run(
        {"models": [str(run_dir)], "data": str(data), "out": str(tmp_path / "again.html"),
         "robustness_images": 20},
        EventWriter("t", []),
    )  # fmt: skip
    assert again["models"][0]["robustness"] == summary["models"][0]["robustness"]


def report_of(run_dir: Path, data: Path, out: Path, **options) -> dict:
    """The JSON body of a report of ``run_dir`` on ``data`` (and its HTML under ``html``)."""
    from training.report import run

    config = {"models": [str(run_dir)], "data": str(data), "out": str(out)}
    run({"robustness_images": 8, **config, **options}, EventWriter("t", []))
    return {**json.loads(out.with_suffix(".json").read_text()), "html": out.read_text()}


def linked_copy(data: Path, target: Path, classes: dict[str, str]) -> Path:
    """``target`` with a symbolic link per class folder: ``{new name: class folder of data}``."""
    target.mkdir(parents=True)
    for name, folder in classes.items():
        (target / name).symlink_to(data / folder, target_is_directory=True)
    return target


def test_report_accounts_for_classes_the_model_never_saw(left_out_run, tmp_path: Path) -> None:
    data, run_dir = left_out_run
    extra = make_image_set(tmp_path / "extra", {"gan_c": 10}, seed=3)
    mixed = linked_copy(
        data, tmp_path / "mixed", {"real": "real", "gan_a": "gan_a", "gan_b": "gan_b"}
    )
    (mixed / "gan_c").symlink_to(extra / "gan_c", target_is_directory=True)
    body = report_of(run_dir, mixed, tmp_path / "mixed.html")
    (section,) = body["models"]
    assert section["metrics"]["n"] == 48  # real + gan_a: the model's classes
    assert section["leave_out"]["class"] == "gan_b" and section["leave_out"]["n"] == 12
    (unseen,) = section["unseen"]  # not dropped in silence
    assert unseen["class"] == "gan_c" and unseen["n"] == 10
    assert 0 <= unseen["detected_as_fake"] <= 1 and set(unseen["auroc"]) == {
        "max_softmax",
        "energy",
    }
    assert "not trained on: gan_c (10) images" in body["html"]
    assert "Classes the model was not trained on</h3>" in body["html"]


def test_a_model_given_twice_is_scored_once(left_out_run, tmp_path: Path) -> None:
    from training.report import run

    data, run_dir = left_out_run
    twice = [str(run_dir), str(run_dir) + "/", str(run_dir / ".." / run_dir.name)]
    out = tmp_path / "twice.html"
    run({"models": twice, "data": str(data), "out": str(out), "robustness_images": 0},
        EventWriter("t", []))  # fmt: skip
    assert len(json.loads(out.with_suffix(".json").read_text())["models"]) == 1


def test_a_leave_out_run_on_data_without_its_class_says_so(left_out_run, tmp_path: Path) -> None:
    data, run_dir = left_out_run
    without = linked_copy(data, tmp_path / "without", {"real": "real", "gan_a": "gan_a"})
    body = report_of(run_dir, without, tmp_path / "without.html")
    (section,) = body["models"]
    assert section["leave_out"] is None and body["leave_out_matrix"] == []
    assert any("without 'gan_b'" in note for note in section["notes"])
    assert "these data hold no images of it" in body["html"]


def test_data_of_other_classes_are_refused_naming_both_sides(left_out_run, tmp_path) -> None:
    from core.errors import UserError

    data, run_dir = left_out_run
    upper = linked_copy(data, tmp_path / "upper", {"REAL": "real", "GAN_A": "gan_a"})
    with pytest.raises(
        UserError, match=r"\['GAN_A', 'REAL'\].*\['gan_a', 'real'\].*upper and lower"
    ):
        report_of(run_dir, upper, tmp_path / "upper.html")


def test_robustness_shares_of_decided_verdicts_add_up(left_out_run, tmp_path: Path) -> None:
    data, run_dir = left_out_run
    body = report_of(run_dir, data, tmp_path / "rob.html", robustness_images=30)
    for row in body["models"][0]["robustness"].values():
        assert row["n"] == 30 and 0 <= row["decided"] <= 30
        if row["decided"]:
            assert row["same"] + row["flipped"] + row["to_unknown"] == pytest.approx(1.0)
        assert (row["from_unknown"] is None) == (row["decided"] == 30)
    none = report_of(run_dir, data, tmp_path / "none.html", robustness_images=0)
    assert none["models"][0]["robustness"] == {}
    assert "Robustness not measured" in none["html"]


def test_one_class_data_draw_no_roc_and_absent_classes_leave_macro_f1(left_out_run, tmp_path):
    data, run_dir = left_out_run
    only_real = linked_copy(data, tmp_path / "only-real", {"real": "real"})
    body = report_of(run_dir, only_real, tmp_path / "real.html")
    (section,) = body["models"]
    m = section["metrics"]
    assert m["auc"] is None and section["roc"] is None
    assert "No ROC: the data hold only real or only fake images." in body["html"]
    assert "ROC (fake = positive)" not in body["html"]
    predicted_gan = m["confusion_matrix"][0][0] + m["confusion_matrix"][1][0]
    expected = [m["per_class"]["real"]["f1"]] + ([0.0] if predicted_gan else [])
    assert m["macro_f1"] == pytest.approx(np.mean(expected))


def test_report_escapes_names_and_spreads_thumbnails_over_errors(tmp_path: Path) -> None:
    from training.report import render_section, spread_over_cells

    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([1, 1, 1, 0, 0, 1, 0, 1, 2])  # cells (0,1) x3, (1,0), (2,0), (2,1)
    shown, total = spread_over_cells(labels, predicted, 4)
    assert total == 6 and shown == [0, 4, 6, 7]  # one of each cell before a second of any
    assert spread_over_cells(labels, predicted, 10) == ([0, 1, 2, 4, 6, 7], 6)
    image = tmp_path / "it's <b>.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(image)
    section = {
        "model": str(tmp_path / "<i>model"), "kind": "bundle", "notes": [],
        "selection": {"split": "all", "source": "all images"}, "stats": {},
        "metrics": {"n": 1, "accuracy": 0.0, "macro_f1": 0.0, "auc": None, "ece": 0.5,
                    "class_names": ["fake", "real"], "confusion_matrix": [[0, 0], [1, 0]],
                    "per_class": {c: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": s}
                                  for c, s in (("fake", 0), ("real", 1))}},
        "roc": None, "reliability": [{"count": 1, "confidence": 0.5, "accuracy": 0.0}],
        "coverage_risk": {"coverage": [1.0], "risk": [1.0],
                          "at_threshold": {"coverage": 1.0, "risk": 1.0}},
        "calibration": {"score": "max_softmax", "temperature": 1.0, "threshold": 0.5},
        "robustness": {}, "leave_out": None, "misclassified_total": 1,
        "misclassified": [{"path": str(image), "true": "real", "predicted": "fake",
                           "confidence": 0.5}],
    }  # fmt: skip
    html = render_section(section)
    assert "<i>model" not in html and "&lt;i&gt;model" in html
    assert 'title="it&#x27;s &lt;b&gt;.png: real -&gt; fake (0.50)"' in html
    assert "1 of 1 misclassified images" in html


def test_perturbations_change_the_image_as_named() -> None:
    from training.report import perturb

    rgb = (np.arange(60 * 40 * 3) % 251).astype(np.uint8).reshape(60, 40, 3)
    assert perturb(rgb, "downscale0.5").shape == (30, 20, 3)
    assert perturb(rgb, "centre_crop0.8").shape == (48, 32, 3)
    jpeg = perturb(rgb, "jpeg75")
    assert jpeg.shape == rgb.shape and np.abs(jpeg.astype(int) - rgb).mean() > 0.5
    with pytest.raises(ValueError):
        perturb(rgb, "blur")


def test_evaluate_several_models_gives_one_comparison_table(left_out_run) -> None:
    from app.commands.evaluate import format_table
    from training.evaluate import run

    data, run_dir = left_out_run
    result = run(
        {"models": [str(run_dir), str(run_dir)], "data": str(data), "split": "test"},
        EventWriter("t", []),
    )
    reports = result["models"]
    assert len(reports) == 2 and reports[0]["accuracy"] == reports[1]["accuracy"]
    assert reports[0]["latency_ms"] > 0 and reports[0]["params"] > 10_000
    lines = format_table(reports).splitlines()
    assert len(lines) == 4
    assert lines[3] == f"Images: the recorded split of run {run_dir}."  # said once for both
    assert lines[0].split() == ["model", "params", "MACs", "bytes", "ms/img", "acc", "F1", "AUC",
                                "ECE", "n"]  # fmt: skip
    assert lines[1].split()[0] == run_dir.name


def test_leave_out_on_the_runs_own_test_split_adds_every_unseen_image(left_out_run) -> None:
    from training.evaluate import run

    data, run_dir = left_out_run
    report = run(
        {"models": [str(run_dir)], "data": str(data), "split": "test", "leave_out": "gan_b",
         "latency": False},
        EventWriter("t", []),
    )  # fmt: skip
    test_split = json.loads((run_dir / "split.json").read_text())["splits"]["test"]
    assert report["n"] == len(test_split)
    assert report["leave_out"]["n"] == 12  # all of gan_b: none of it was seen in training


@pytest.fixture(scope="module")
def foldered_data(left_out_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same images, each class's first half in sub-folder ``one``, the rest in ``two``."""
    data, _ = left_out_run
    root = tmp_path_factory.mktemp("foldered") / "data"
    for class_dir in sorted(data.iterdir()):
        files = sorted(class_dir.iterdir())
        for i, image in enumerate(files):
            target = root / class_dir.name / ("one" if i < len(files) // 2 else "two")
            target.mkdir(parents=True, exist_ok=True)
            (target / image.name).symlink_to(image)
    return root


def test_evaluate_breaks_figures_down_by_sub_folder(left_out_run, foldered_data: Path) -> None:
    from app.commands.evaluate import format_table
    from training.evaluate import run

    _, run_dir = left_out_run
    config = {"models": [str(run_dir)], "binary": True, "latency": False}
    flat = run({**config, "data": str(left_out_run[0])}, EventWriter("t", []))
    assert "by_folder" not in flat  # no sub-folders: nothing to break down
    report = run({**config, "data": str(foldered_data)}, EventWriter("t", []))
    groups = report["by_folder"]
    assert list(groups) == ["one", "two"]
    assert [g["n"] for g in groups.values()] == [30, 30] and report["n"] == 60
    # the groups partition the images: their figures average to the whole
    mean = sum(g["n"] * g["binary_accuracy"] for g in groups.values()) / report["n"]
    assert mean == pytest.approx(report["binary_accuracy"])
    assert report["accuracy"] == pytest.approx(flat["accuracy"])
    assert "run, images in one/: 30 images: real vs fake " in format_table([report])
    multi = run(
        {**config, "binary": False, "leave_out": "gan_b", "data": str(foldered_data)},
        EventWriter("t", []),
    )
    assert "run, images in one/: 24 images: accuracy " in format_table([multi])


def test_report_shows_the_sub_folder_breakdown(left_out_run, foldered_data, tmp_path) -> None:
    from training.report import run

    _, run_dir = left_out_run
    out = tmp_path / "foldered.html"
    run(
        {"models": [str(run_dir)], "data": str(foldered_data), "out": str(out),
         "robustness_images": 4},
        EventWriter("t", []),
    )  # fmt: skip
    metrics = json.loads(out.with_suffix(".json").read_text())["models"][0]["metrics"]
    assert [g["n"] for g in metrics["by_folder"].values()] == [24, 24]  # real + gan_a only
    html = out.read_text()
    assert "By sub-folder" in html and "<td>one</td><td>24</td>" in html


def test_coverage_risk_curve_follows_the_rule_with_an_energy_floor() -> None:
    from core.rejection import Calibration
    from core.verdict import accepts, scores_of
    from training.report import coverage_risk_curve

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3)) * 2
    logits[np.arange(400), labels] += 1.5
    energy = scores_of(logits, 1.0, "energy")[1]
    floor = float(np.quantile(energy, 0.3))  # 70 % of the images can be answered at all
    calibration = Calibration(threshold=0.0, energy_floor=floor, floor_keep=0.7)
    curve = coverage_risk_curve(logits, labels, calibration)
    assert curve["coverage"][-1] == pytest.approx(0.7, abs=0.01)  # not 1: the floor turns away
    point = curve["at_threshold"]  # threshold 0: everything above the floor is answered
    assert point["coverage"] == pytest.approx(curve["coverage"][-1])
    assert point["risk"] == pytest.approx(curve["risk"][-1])
    answered = accepts(logits, calibration)[1]
    assert point["coverage"] == pytest.approx(answered.mean())
    plain = coverage_risk_curve(logits, labels, Calibration(threshold=0.0))
    assert plain["coverage"][-1] == pytest.approx(1.0)
