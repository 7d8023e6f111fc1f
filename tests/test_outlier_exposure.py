"""Outlier exposure (``outlier_class``): the loss, the splits and what it teaches a real model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.errors import UserError
from tests.synthetic import make_image_set
from tests.test_training import TINY, finetune

torch = pytest.importorskip("torch")


def test_the_loss_is_cross_entropy_plus_the_weighted_distance_to_uniform() -> None:
    import torch.nn.functional as F

    from training.data import OUTLIER
    from training.loop import outlier_exposure_loss

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [3.0, -3.0, 0.0]])
    targets = torch.tensor([0, OUTLIER, OUTLIER])
    loss, returned = outlier_exposure_loss(0.5)(lambda x: x, logits, targets)
    assert returned is logits
    ce = F.cross_entropy(logits[:1], targets[:1])
    to_uniform = -F.log_softmax(logits[1:], dim=1).mean(dim=1).mean()
    assert loss.item() == pytest.approx((ce + 0.5 * to_uniform).item())
    # uniform logits are the best an outlier can get: log K
    uniform, _ = outlier_exposure_loss(1.0)(lambda x: x, torch.zeros(2, 3), torch.full((2,), -1))
    assert uniform.item() == pytest.approx(math.log(3))
    known_only, _ = outlier_exposure_loss(0.5)(lambda x: x, logits[:1], targets[:1])
    assert known_only.item() == pytest.approx(ce.item())


def test_the_energy_loss_puts_margins_on_the_logsumexp() -> None:
    import torch.nn.functional as F

    from training.data import OUTLIER
    from training.loop import ENERGY_MARGIN, energy_exposure_loss, exposure_loss

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [3.0, -3.0, 0.0]])
    targets = torch.tensor([0, OUTLIER, OUTLIER])
    loss, _ = energy_exposure_loss(0.1)(lambda x: x, logits, targets)
    scores = torch.logsumexp(logits, dim=1)
    low = math.log(3)  # the logsumexp of uniform zero logits
    known_hinge = max(0.0, low + ENERGY_MARGIN - scores[0].item()) ** 2
    outlier_hinges = [max(0.0, scores[i].item() - low) ** 2 for i in (1, 2)]
    expected = F.cross_entropy(logits[:1], targets[:1]).item() + 0.1 * (
        known_hinge + sum(outlier_hinges) / 2
    )
    assert known_hinge > 0 and all(h > 0 for h in outlier_hinges)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # nothing to push: known far above the margin, outliers at the uniform point
    calm, _ = energy_exposure_loss(1.0)(
        lambda x: x, torch.tensor([[20.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0, OUTLIER])
    )
    assert calm.item() == pytest.approx(
        F.cross_entropy(torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])).item(), abs=1e-6
    )
    assert exposure_loss("uniform", 0.5) is not None
    with pytest.raises(ValueError, match="outlier_loss must be one of"):
        exposure_loss("gaussian", 0.5)


def test_every_outlier_class_weighs_the_same_in_both_losses() -> None:
    """Three images of one outlier class and one of another: each class's mean counts once."""
    import torch.nn.functional as F

    from training.data import OUTLIER
    from training.loop import ENERGY_MARGIN, energy_exposure_loss, outlier_exposure_loss

    logits = torch.tensor(
        [[9.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]
    )
    targets = torch.tensor([0, OUTLIER, OUTLIER, OUTLIER, OUTLIER - 1])
    ce = F.cross_entropy(logits[:1], targets[:1]).item()
    low = math.log(3)
    hinge = [max(0.0, torch.logsumexp(row, 0).item() - low) ** 2 for row in logits[1:]]
    known = max(0.0, low + ENERGY_MARGIN - torch.logsumexp(logits[0], 0).item()) ** 2
    energy, _ = energy_exposure_loss(0.1)(lambda x: x, logits, targets)
    per_class = (sum(hinge[:3]) / 3 + hinge[3]) / 2
    assert energy.item() == pytest.approx(ce + 0.1 * (known + per_class), rel=1e-5)
    assert per_class != pytest.approx(sum(hinge) / 4)  # not the plain mean over images
    to_uniform = (-F.log_softmax(logits[1:], dim=1).mean(dim=1)).tolist()
    uniform, _ = outlier_exposure_loss(0.5)(lambda x: x, logits, targets)
    expected = ce + 0.5 * (sum(to_uniform[:3]) / 3 + to_uniform[3]) / 2
    assert uniform.item() == pytest.approx(expected, rel=1e-5)


@pytest.fixture
def three_classes(tmp_path: Path) -> Path:
    return make_image_set(tmp_path / "data", {"real": 30, "sd14": 30, "sdxl": 30})


def _samples(root: Path) -> list:
    from core.datasets import Sample

    return [Sample(p, p.parent.name) for p in sorted(root.glob("*/*"))]


def mean_score_on(run_dir: Path, folder: Path, score: str = "max_softmax") -> float:
    """The mean top probability (or ``score="energy"``: logsumexp of the logits) the run's best
    model gives the images in ``folder``."""
    from core.datasets import Sample
    from core.models import load_model
    from core.verdict import logsumexp, softmax
    from training.data import ImageDataset, make_loader
    from training.loop import predict

    model, description = load_model(run_dir)
    samples = [Sample(p, description.class_names[0]) for p in sorted(folder.iterdir())]
    loader = make_loader(
        ImageDataset(samples, description.class_names, description.preprocess),
        batch_size=32,
        train=False,
    )
    logits, _ = predict(model, loader)
    if score == "energy":
        return float(logsumexp(logits).mean())
    return float(softmax(logits).max(axis=1).mean())


def test_an_outlier_class_is_trained_toward_unknown_and_never_named(
    three_classes: Path, tmp_path: Path
) -> None:
    base = {"data": str(three_classes), "workspace": str(tmp_path), **TINY, "epochs": 6}
    base["monitor"] = "val_loss"  # val accuracy is 1.0 after an epoch: keep the settled weights
    exposed, sink = finetune({**base, "out": str(tmp_path / "oe"), "outlier_class": "sdxl"})
    finetune(
        {**base, "out": str(tmp_path / "zero"), "outlier_class": "sdxl", "outlier_weight": 0.0}
    )
    model = json.loads((tmp_path / "oe" / "model.json").read_text())
    assert model["class_names"] == ["real", "sd14"]
    split = json.loads((tmp_path / "oe" / "split.json").read_text())
    labels = split["labels"]
    assert any(labels[f] == "sdxl" for f in split["splits"]["train"])
    assert not any(labels[f] == "sdxl" for f in split["splits"]["val"] + split["splits"]["test"])
    logs = [e["data"]["message"] for e in sink.of("log")]
    assert any(m.startswith("outlier exposure: ") and "sdxl training images" in m for m in logs)
    assert exposed["val_acc"] >= 0.8 and exposed["test_acc"] >= 0.8, exposed
    # the same run with the outlier term off names sdxl images confidently; exposure does not
    # (measured: 0.63 against 0.99), while the known classes keep their confidence (0.99)
    exposed_msp = mean_score_on(tmp_path / "oe", three_classes / "sdxl")
    control_msp = mean_score_on(tmp_path / "zero", three_classes / "sdxl")
    assert exposed_msp < 0.75 and control_msp > 0.9, (exposed_msp, control_msp)
    assert mean_score_on(tmp_path / "oe", three_classes / "sd14") > 0.9


def test_energy_exposure_lowers_the_outliers_logsumexp(three_classes: Path, tmp_path: Path):
    from training.loop import ENERGY_MARGIN

    base = {"data": str(three_classes), "workspace": str(tmp_path), **TINY, "epochs": 6}
    base["monitor"] = "val_loss"
    exposed, _ = finetune(
        {**base, "out": str(tmp_path / "energy"), "outlier_class": "sdxl", "outlier_loss": "energy"}
    )  # fmt: skip
    finetune(
        {**base, "out": str(tmp_path / "zero"), "outlier_class": "sdxl",
         "outlier_loss": "energy", "outlier_weight": 0.0}
    )  # fmt: skip
    assert exposed["test_acc"] >= 0.8, exposed

    def gap(run: str) -> float:
        known = mean_score_on(tmp_path / run, three_classes / "sd14", "energy")
        return known - mean_score_on(tmp_path / run, three_classes / "sdxl", "energy")

    # logsumexp of known minus outlier images: measured 6.3 with the energy term, 1.8 without
    exposed_gap, control_gap = gap("energy"), gap("zero")
    assert exposed_gap > ENERGY_MARGIN and exposed_gap > control_gap + 2, (exposed_gap, control_gap)
    recorded = json.loads((tmp_path / "energy" / "config.json").read_text())
    assert (recorded["outlier_loss"], recorded["outlier_weight"]) == ("energy", 0.1)  # its default


def test_several_outlier_classes_one_per_domain_are_all_kept_out_of_the_model(
    tmp_path: Path,
) -> None:
    """``outlier_class`` "a,b" (or a list): every one is trained toward unknown, none is named,
    none is in val or test, and the run's split record names them all."""
    from training.config import outlier_classes, split_record

    data = make_image_set(tmp_path / "data", {"real": 20, "sd14": 20, "sdxl": 20, "gan": 20})
    config = {"data": str(data), "workspace": str(tmp_path), **TINY, "epochs": 1}
    _, sink = finetune({**config, "out": str(tmp_path / "oe"), "outlier_class": " sdxl, gan,sdxl"})
    model = json.loads((tmp_path / "oe" / "model.json").read_text())
    assert model["class_names"] == ["real", "sd14"]
    split = json.loads((tmp_path / "oe" / "split.json").read_text())
    labels = split["labels"]
    for outlier in ("sdxl", "gan"):
        assert any(labels[f] == outlier for f in split["splits"]["train"]), outlier
        assert not any(
            labels[f] == outlier for f in split["splits"]["val"] + split["splits"]["test"]
        )
    logs = [e["data"]["message"] for e in sink.of("log")]
    assert sum(m.startswith("outlier exposure: ") for m in logs) == 2, logs
    assert split_record(tmp_path / "oe")["outlier_class"] == "sdxl,gan"
    from core.preprocess import PreprocessSpec
    from training.data import OUTLIER, ImageDataset

    samples = [s for s in _samples(data) if s.label in ("sdxl", "gan", "real")]
    dataset = ImageDataset(
        samples, ["real"], PreprocessSpec(), cache=False, outliers=["sdxl", "gan"]
    )
    codes = {s.label: int(code) for s, code in zip(samples, dataset.labels, strict=True)}
    assert codes == {"real": 0, "sdxl": OUTLIER, "gan": OUTLIER - 1}  # one code per class
    assert outlier_classes({"outlier_class": ["gan", "sdxl"]}) == ["gan", "sdxl"]
    assert outlier_classes({"outlier_class": None}) == outlier_classes({"outlier_class": ""}) == []
    with pytest.raises(UserError, match="'midjourney' is not a class"):
        finetune({**config, "out": str(tmp_path / "bad"), "outlier_class": "sdxl,midjourney"})
    with pytest.raises(UserError, match="both the left-out and the outlier"):
        finetune({**config, "out": str(tmp_path / "bad"), "outlier_class": "sdxl,gan",
                  "leave_out": "gan"})  # fmt: skip
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outlier_class": "real"}, "must be a generator, not 'real'"),
        ({"outlier_class": "sdxl", "leave_out": "sdxl"}, "both the left-out and the outlier"),
        ({"outlier_class": "sdxl", "cutmix": 1.0}, "does not combine with MixUp/CutMix"),
        ({"outlier_class": "sdxl", "balanced": True}, "does not combine with balanced"),
        ({"outlier_class": "sdxl", "outlier_weight": -1}, "outlier_weight must be between"),
        ({"outlier_class": "midjourney"}, "--outlier-class 'midjourney' is not a class"),
        ({"outlier_class": "sdxl", "outlier_loss": "gauss"}, "outlier_loss must be 'uniform'"),
    ],
)
def test_bad_outlier_options_are_refused(three_classes: Path, tmp_path: Path, change, message):
    out = tmp_path / "run"
    config = {"data": str(three_classes), "out": str(out), "workspace": str(tmp_path), **TINY}
    with pytest.raises(UserError, match=message):
        finetune({**config, **change})
    assert not out.exists()


def evaluate_test_split(model: Path, data: Path, workspace: Path, **extra) -> dict:
    """The evaluate job's report of one run or bundle on the test split of ``data``."""
    from core.events import EventWriter
    from training.evaluate import run

    config = {"models": [str(model)], "data": str(data), "split": "test", "latency": False}
    return run({**config, "workspace": str(workspace), **extra}, EventWriter("t", []))


def test_an_exposed_run_prunes_and_exports_without_its_outlier_class(
    three_classes: Path, tmp_path: Path
) -> None:
    """Its recorded train split holds the outlier images; later jobs keep the model's classes."""
    from conftest import run_export_job

    from tests.test_pruning import run_job

    run = tmp_path / "oe"
    config = {"data": str(three_classes), "out": str(run), "workspace": str(tmp_path), **TINY}
    finetune({**config, "epochs": 2, "outlier_class": "sdxl"})
    pruned, _ = run_job(
        "prune",
        {"run": str(run), "out": str(tmp_path / "pruned"), "macs_ratio": 0.6, "steps": 1,
         "epochs": 1, "batch_size": 16, "threads": 1, "device": "cpu"},
    )  # fmt: skip
    assert pruned["macs"] < 0.65 * pruned["parent_macs"]
    bundle = tmp_path / "bundle"
    summary = run_export_job({"run": str(run), "out": str(bundle), "int8": True})
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["class_names"] == ["real", "sd14"] and summary["verification"]["ok"]
    assert meta["training_split"]["outlier_class"] == "sdxl"
    # without the run folder, the bundle re-makes its test split: the outlier class's test
    # images are extra (never trained on), not a sign of a different split
    from core.events import EventWriter

    run.rename(tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    for extra in ({"leave_out": "sdxl"}, {"binary": True}):
        report = evaluate_test_split(bundle, three_classes, elsewhere, **extra)
        assert report["selection"]["matches_training_split"] is True, extra
    # without --leave-out: its outlier class is no error but a row of its own, with the
    # verdicts the bundle's rule gives those images (meant to be mostly "unknown")
    report = evaluate_test_split(bundle, three_classes, elsewhere)
    (row,) = report["outliers"]
    assert row["class"] == "sdxl" and row["n"] > 0 and "leave_out" not in report
    assert set(report["per_class"]) == {"real", "sd14"}
    assert set(row["verdicts"]) == {"real", "fake", "unknown"}
    assert sum(row["verdicts"].values()) == pytest.approx(1.0)
    from app.commands.evaluate import format_table

    assert f"outlier class sdxl (n={row['n']}): rejection AUROC" in format_table([report])
    from training.report import run as report_job

    out = tmp_path / "report.html"
    report_job(
        {"models": [str(bundle)], "data": str(three_classes), "split": "test", "out": str(out),
         "robustness_images": 4, "workspace": str(tmp_path / "elsewhere")},
        EventWriter("t", []),
    )  # fmt: skip
    (section,) = json.loads(out.with_suffix(".json").read_text())["models"]
    assert section["outliers"] == [row]  # the same images, the same figures as evaluate's
    assert "Outlier classes (trained toward unknown, never named)" in out.read_text()


def test_evaluating_an_exposed_run_on_its_outlier_class_scores_only_unseen_images(
    three_classes: Path, tmp_path: Path
) -> None:
    """``evaluate --leave-out`` of the outlier class: its training images are not "unseen"."""
    run = tmp_path / "oe"
    config = {"data": str(three_classes), "out": str(run), "workspace": str(tmp_path), **TINY}
    finetune({**config, "epochs": 1, "outlier_class": "sdxl"})
    split = json.loads((run / "split.json").read_text())
    trained = [f for f in split["splits"]["train"] if split["labels"][f] == "sdxl"]
    assert 0 < len(trained) < 30
    report = evaluate_test_split(run, three_classes, tmp_path, leave_out="sdxl")
    assert report["leave_out"]["n"] == 30 - len(trained)
    assert report["n"] == len(split["splits"]["test"])  # the known classes' test images
    (three_classes / trained[0]).unlink()  # training images may go; the unseen ones count
    again = evaluate_test_split(run, three_classes, tmp_path, leave_out="sdxl")
    assert again["leave_out"]["n"] == 30 - len(trained)
    # without --leave-out the same images are the run's outlier row (a run has no rule: no
    # verdicts), and the known classes' figures stay those of the recorded test split
    plain = evaluate_test_split(run, three_classes, tmp_path)
    (row,) = plain["outliers"]
    assert (row["class"], row["n"]) == ("sdxl", 30 - len(trained)) and "verdicts" not in row
    assert plain["n"] == report["n"] and plain["accuracy"] == report["accuracy"]
