"""Training jobs: the loop, checkpoints, resume, cancel, the CLI end to end and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.events import EventWriter
from tests.synthetic import make_image_set

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "arch": "resnet10t",
    "img_size": 32,
    "batch_size": 16,
    "threads": 1,
    "lr": 3e-3,
    "device": "cpu",  # bitwise resume checks; GPU training is tests/test_device.py's
}


class Collector:
    """An EventWriter stream that keeps parsed events."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def write(self, line: str) -> None:
        self.events.append(json.loads(line))

    def flush(self) -> None:
        pass

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    return make_image_set(tmp_path / "data", {"real": 30, "fake": 30})


def finetune(config: dict, cancel=None) -> tuple[dict, Collector]:
    from training.finetune import run

    sink = Collector()
    emit = EventWriter("test", [sink], max_progress_per_s=0)
    return run(config, emit, cancel), sink


def test_lr_schedule_warms_up_then_decays_to_floor() -> None:
    from training.loop import lr_factor

    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.01)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.505, abs=1e-3)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.01)
    assert lr_factor(100, 100, 10, "onecycle") == pytest.approx(1e-4)
    assert lr_factor(7, 100, 10, "constant") == 1.0


def test_finetune_learns_and_records_the_run(toy_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary, sink = finetune(
        {"data": str(toy_data), "out": str(out), "epochs": 3, "workspace": str(tmp_path), **TINY}
    )
    assert summary["epochs_run"] == 3
    assert summary["val_acc"] >= 0.8, summary
    for name in ("config.json", "run.json", "model.json", "best.safetensors", "last.safetensors"):
        assert (out / name).is_file(), name
    assert (out / "checkpoint" / "state.json").is_file()
    split = json.loads((out / "split.json").read_text())
    assert (
        len(split["splits"]["train"]) + len(split["splits"]["val"]) + len(split["splits"]["test"])
        == 60
    )
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 4
    assert "val_f1_fake" in rows[0] and "val_auc" in rows[0]
    metrics = sink.of("metric")
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert summary["params"] > 0 and summary["macs"] > 0
    events_file = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    indexing = [e for e in sink.events if e["data"].get("phase") == "index"]
    assert events_file == sink.events[len(indexing) :]  # the run folder exists after indexing


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ema": 0.9},
        {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4},
        {"sam": 0.05, "cutmix": 1.0},
    ],
    ids=["adamw", "weight-average", "sgd", "sharpness-aware"],
)
def test_resume_after_kill_reaches_the_same_weights(
    toy_data: Path, tmp_path: Path, options: dict
) -> None:
    from safetensors.torch import load_file

    base = {"data": str(toy_data), "workspace": str(tmp_path), **TINY, "crop_prob": 0.5, **options}
    finetune({**base, "out": str(tmp_path / "straight"), "epochs": 2})
    # "Kill" after epoch 1: run a 2-epoch config but cancel as epoch 2 starts.
    from training.control import CancelToken

    class CancelAtEpoch2(CancelToken):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 3 + 2  # 3 train batches of epoch 1 + 2 validation batches

    cut = tmp_path / "cut"
    summary, _ = finetune({**base, "out": str(cut), "epochs": 2}, CancelAtEpoch2())
    assert summary["cancelled"] is True
    assert json.loads((cut / "run.json").read_text())["status"] == "cancelled"
    finetune({**base, "out": str(cut), "epochs": 2, "resume": True})
    straight = load_file(str(tmp_path / "straight" / "last.safetensors"))
    resumed = load_file(str(cut / "last.safetensors"))
    for key, value in straight.items():
        assert torch.allclose(value.float(), resumed[key].float(), atol=1e-5), key


def test_checkpoint_round_trip_restores_optimizer_and_rng(tmp_path: Path) -> None:
    from core.models import create_model
    from training.checkpoint import load_checkpoint, save_checkpoint

    model = create_model("resnet10t", 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    sched.step()
    save_checkpoint(tmp_path / "ck", model=model, optimizer=opt, scheduler=sched, epoch=4)
    expected = torch.rand(3)

    model2 = create_model("resnet10t", 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.01)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 0.5**s)
    state = load_checkpoint(tmp_path / "ck", model=model2, optimizer=opt2, scheduler=sched2)
    assert state["epoch"] == 4
    assert torch.equal(torch.rand(3), expected)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.005)
    first = next(iter(opt.state.values()))
    first2 = next(iter(opt2.state.values()))
    assert torch.equal(first["exp_avg"], first2["exp_avg"])
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in (tmp_path / "ck").iterdir())


def test_existing_run_is_not_overwritten(toy_data: Path, tmp_path: Path) -> None:
    base = {"data": str(toy_data), "workspace": str(tmp_path), **TINY, "epochs": 1}
    finetune({**base, "out": str(tmp_path / "r")})
    with pytest.raises(UserError, match="--resume"):
        finetune({**base, "out": str(tmp_path / "r")})


def test_resume_with_other_settings_is_refused_and_leaves_the_run_alone(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "r"
    base = {"data": str(toy_data), "workspace": str(tmp_path), **TINY, "epochs": 1}
    finetune({**base, "out": str(run_dir)})
    files = ("model.json", "run.json", "config.json", "last.safetensors")
    before = {name: (run_dir / name).read_bytes() for name in files}
    other_arch = {**base, "arch": "mobilenetv3_small_050", "resume": True, "out": str(run_dir)}
    with pytest.raises(UserError, match=r"arch 'resnet10t' \(now 'mobilenetv3_small_050'\)"):
        finetune(other_arch)
    with pytest.raises(UserError, match=r"epochs 1 \(now 2\).*config.json"):
        finetune({**base, "epochs": 2, "resume": True, "out": str(run_dir)})
    assert {name: (run_dir / name).read_bytes() for name in files} == before
    # Where and how fast it runs may change, and the same data folder spelt another way is it.
    monkeypatch.chdir(toy_data.parent)
    finetune({**base, "data": toy_data.name, "threads": 2, "resume": True, "out": str(run_dir)})
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


def test_training_leaves_the_data_sets_own_splits_alone(toy_data: Path, tmp_path: Path) -> None:
    from core.datasets import DatasetIndex
    from core.workspace import Workspace

    index = DatasetIndex.build(toy_data, Workspace.resolve(tmp_path))
    index.make_splits(seed=7, val=0.2, test=0.2)  # the Datasets page's "Make splits"
    stored = {name: index.samples(name) for name in ("train", "val", "test")}
    run_dir = tmp_path / "r"
    finetune({"data": str(toy_data), "workspace": str(tmp_path), **TINY, "epochs": 1,
              "out": str(run_dir), "val": 0.25, "test": 0.25})  # fmt: skip
    assert index.split_params() == {"seed": 7, "val": 0.2, "test": 0.2}
    assert {name: index.samples(name) for name in stored} == stored
    recorded = json.loads((run_dir / "split.json").read_text())["splits"]
    seeded = index.seeded_splits(seed=0, val=0.25, test=0.25)
    for name in ("train", "val", "test"):
        assert sorted(recorded[name]) == sorted(
            s.path.relative_to(toy_data).as_posix() for s in seeded[name]
        )


def test_unknown_option_and_out_of_range_values_are_refused(toy_data: Path) -> None:
    with pytest.raises(UserError, match="unknown finetune option"):
        finetune({"data": str(toy_data), "out": "x", "epoch": 3})
    with pytest.raises(UserError, match="epochs must be between"):
        finetune({"data": str(toy_data), "out": "x", "epochs": 0})
    with pytest.raises(UserError, match="precision must be one of"):
        finetune({"data": str(toy_data), "out": "x", "precision": "fp16"})
    with pytest.raises(UserError, match="optimizer must be one of"):
        finetune({"data": str(toy_data), "out": "x", "optimizer": "lion"})
    with pytest.raises(UserError, match="ema must be between"):
        finetune({"data": str(toy_data), "out": "x", "ema": 1.0})


def test_a_training_share_trains_on_part_of_train_with_the_same_val_and_test(
    toy_data: Path, tmp_path: Path
) -> None:
    from training.common import prepare_splits

    base = {"data": str(toy_data), "workspace": str(tmp_path), "seed": 0, "val": 0.2, "test": 0.2}
    emit = EventWriter("test", [Collector()], max_progress_per_s=0)
    full, _, _ = prepare_splits(base, emit, None)
    half, _, _ = prepare_splits({**base, "train_share": 0.5}, emit, None)
    assert half["val"] == full["val"] and half["test"] == full["test"]
    assert set(half["train"]) < set(full["train"])
    per_class = {c: sum(s.label == c for s in full["train"]) for c in ("real", "fake")}
    assert {c: sum(s.label == c for s in half["train"]) for c in per_class} == {
        c: round(n / 2) for c, n in per_class.items()
    }

    out = tmp_path / "run"
    _, sink = finetune({**base, "out": str(out), "epochs": 1, "train_share": 0.5, **TINY})
    split = json.loads((out / "split.json").read_text())
    assert len(split["splits"]["train"]) == len(half["train"])  # what it really trained on
    assert any(
        "0.5 share of the train split" in e["data"].get("message", "") for e in sink.of("log")
    )
    from training.config import split_record

    assert split_record(out)["train_share"] == 0.5
    with pytest.raises(UserError, match="train_share must be between"):
        finetune({**base, "out": str(tmp_path / "x"), "train_share": 0})


def test_channels_last_computes_the_same_logits_as_nchw() -> None:
    from core.models import create_model
    from training.loop import Compute

    torch.manual_seed(0)
    model = create_model("resnet18", 3, channels=[8, 16, 32, 64]).eval()
    images = torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        reference = model(images)
        fast = Compute(channels_last=True)
        nhwc = fast.prepare(model)(fast.batch(images))
    assert nhwc.is_contiguous(memory_format=torch.channels_last) or nhwc.dim() == 2
    assert torch.allclose(reference, nhwc, atol=1e-4), (reference - nhwc).abs().max()


def test_mixing_loss_uses_soft_targets_and_leaves_odd_batches_unmixed() -> None:
    from training.loop import FitSettings, default_loss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    images, targets = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    settings = FitSettings(mixup=1.0, cutmix=1.0)
    mixed_loss, _ = default_loss(settings, 2)(model, images.clone(), targets)
    plain = torch.nn.functional.cross_entropy(model(images), targets)
    assert not torch.isclose(mixed_loss, plain)  # mixed images and soft targets
    odd_loss, _ = default_loss(settings, 2)(model, images[:5], targets[:5])
    plain_odd = torch.nn.functional.cross_entropy(model(images[:5]), targets[:5])
    assert torch.isclose(odd_loss, plain_odd)
    assert default_loss(FitSettings(), 2).__qualname__.startswith("cross_entropy_loss")


def test_mixup_training_learns(toy_data: Path, tmp_path: Path) -> None:
    summary, _ = finetune(
        {
            "data": str(toy_data),
            "out": str(tmp_path / "mix"),
            "epochs": 4,
            "workspace": str(tmp_path),
            **TINY,
            "mixup": 0.2,
            "cutmix": 1.0,
        }
    )
    assert summary["val_acc"] >= 0.8, summary


def test_sgd_training_learns(toy_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sgd"
    summary, _ = finetune(
        {"data": str(toy_data), "out": str(out), "epochs": 3, "workspace": str(tmp_path), **TINY}
        | {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4}
    )
    assert summary["val_acc"] >= 0.8, summary
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["optimizer"]["param_groups"][0]["nesterov"] is True  # SGD state was saved


def test_weight_average_is_what_is_validated_and_saved(toy_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "ema"
    summary, _ = finetune(
        {"data": str(toy_data), "out": str(out), "epochs": 3, "workspace": str(tmp_path), **TINY}
        | {"ema": 0.9}
    )
    assert summary["val_acc"] >= 0.8, summary
    saved = load_file(str(out / "last.safetensors"))
    average = load_file(str(out / "checkpoint" / "average.safetensors"))
    trained = load_file(str(out / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(saved[k], average[k]) for k in saved)
    moved = [
        k
        for k in saved
        if saved[k].is_floating_point() and not torch.allclose(saved[k], trained[k])
    ]
    assert len(moved) > len(saved) // 2  # the average lags the trained weights
    assert "running_mean" in " ".join(moved)  # batch-norm statistics are averaged too


def test_weight_average_follows_the_ema_formula() -> None:
    from training.loop import WeightAverage

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    average.update(model, step=1000)  # past timm's warm-up, so the decay is 0.5
    assert torch.allclose(average.module.weight, torch.full((1, 2), 2.0))
    average.update(model, step=1)  # the first step copies the weights
    assert torch.allclose(average.module.weight, torch.full((1, 2), 3.0))


def test_bf16_training_learns_and_keeps_fp32_weights(toy_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "bf16"
    summary, _ = finetune(
        {
            "data": str(toy_data),
            "out": str(out),
            "epochs": 3,
            "workspace": str(tmp_path),
            **TINY,
            "precision": "bf16",
        }
    )
    assert summary["val_acc"] >= 0.8, summary
    weights = load_file(str(out / "best.safetensors"))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float32}


def cli(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "DEEPFAKE_STUDIO_HOME": str(env_home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_trains_one_epoch_then_evaluates(toy_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    trained = cli(
        "train",
        "--data",
        str(toy_data),
        "--arch",
        "resnet10t",
        "--img-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--ema",
        "0.9",
        "--sam",
        "0.05",
        "--out",
        str(out),
        "--json",
        env_home=tmp_path / "ws",
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["epochs_run"] == 1
    config = json.loads((out / "config.json").read_text())
    assert (config["ema"], config["sam"]) == (0.9, 0.05)
    assert (out / "checkpoint" / "average.safetensors").is_file()
    evaluated = cli(
        "evaluate", "--model", str(out), "--data", str(toy_data), "--split", "test", "--json",
        "--threads", "1", env_home=tmp_path / "ws",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["n"] == 6 and report["split"] == "test"
    assert set(report) >= {"accuracy", "per_class", "confusion_matrix", "auc", "ece", "params"}
    assert report["macs"] > 0 and report["size_bytes"] > 100_000
    assert sum(map(sum, report["confusion_matrix"])) == 6


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("flat", "class"),
        ("one_image", "at least 2 readable images"),
        ("file", "is a file"),
    ],
)
def test_bad_data_gives_one_clear_message(tmp_path: Path, layout: str, message: str) -> None:
    data = tmp_path / "d"
    if layout == "empty":
        data.mkdir()
    elif layout == "flat":
        make_image_set(tmp_path / "tmp", {"real": 3})
        (tmp_path / "tmp" / "real").rename(data)
    elif layout == "one_image":
        make_image_set(data, {"real": 5, "fake": 1})
    elif layout == "file":
        data.write_text("not a folder")
    result = cli("train", "--data", str(data), "--out", str(tmp_path / "o"), env_home=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr
    assert message in result.stderr.lower(), result.stderr


def test_corrupt_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    data = make_image_set(tmp_path / "d", {"real": 12, "fake": 12})
    (data / "real" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "fake" / "empty.png").write_bytes(b"")
    _, sink = finetune(
        {
            "data": str(data),
            "out": str(tmp_path / "r"),
            "epochs": 1,
            "workspace": str(tmp_path),
            **TINY,
        }
    )
    warnings = [e for e in sink.of("log") if e["data"].get("level") == "warning"]
    assert warnings and "2 unreadable" in warnings[0]["data"]["message"]
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert not any("broken" in p or "empty" in p for p in split["labels"])


def test_a_full_disk_ends_the_cli_with_a_message_not_a_traceback(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    from app.__main__ import main

    def full_disk(*args, **kwargs):  # what safetensors raises on a full disk (measured, tmpfs)
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    out = tmp_path / "full"
    status = main(["--workspace", str(tmp_path / "ws"), "train", "--data", str(toy_data),
                   "--arch", "resnet10t", "--img-size", "32", "--epochs", "1", "--threads", "1",
                   "--batch-size", "16", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "error: the disk is full (No space left on device: " in err
    assert "free some space" in err
    run = json.loads((out / "run.json").read_text())  # not "running" while this process lives
    assert run["status"] == "failed" and "the disk is full" in run["summary"]["message"]
