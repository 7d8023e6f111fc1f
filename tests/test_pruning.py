"""Structured pruning: MACs targets, history replay through load_model, the prune job and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.events import EventWriter
from tests.test_training import Collector

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
ARCHS = ("mobilenetv3_small_050", "mobilenetv2_050", "efficientnet_b0", "resnet18", "resnet10t")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_pruned(directory: Path, arch: str, model, record) -> None:
    """A model folder of a pruned model: model.json, pruning.json, best.safetensors."""
    from core.models import ModelDescription, save_weights
    from core.preprocess import PreprocessSpec
    from core.pruning import HISTORY_FILE, save_history

    description = ModelDescription(
        arch, ["fake", "real"], PreprocessSpec(input_size=SIZE), pruning_history=HISTORY_FILE
    )
    description.save(directory)
    save_history(record, directory / HISTORY_FILE)
    save_weights(model, directory / "best.safetensors")


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_model_reloads_with_identical_logits(arch: str, tmp_path: Path) -> None:
    """Depthwise convs, SE blocks and residuals: replaying pruning.json rebuilds the same net."""
    from core.models import count_params, create_model, load_model
    from core.pruning import PruningRecord, count_stats, prune_to_target

    torch.manual_seed(0)
    model = create_model(arch, 2)
    macs, params = count_stats(model, SIZE)
    found = prune_to_target(model, SIZE, macs_target=0.5 * macs)
    assert found.reached
    assert found.step.macs / macs == pytest.approx(0.5, abs=0.03)
    assert found.step.params < params
    assert count_stats(model, SIZE) == (macs, params), "the source model must stay untouched"
    record = PruningRecord(arch, SIZE, macs, params, [found.step])
    json.dumps(record.to_dict())  # plain JSON, no tensors
    save_pruned(tmp_path, arch, found.model, record)

    reloaded, description = load_model(tmp_path)
    assert description.pruning_history == "pruning.json"
    assert count_params(reloaded) == found.step.params
    images = torch.randn(3, 3, SIZE, SIZE)
    found.model.eval()
    with torch.no_grad():
        expected = found.model(images)
        got = reloaded(images)
    assert got.shape == (3, 2)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_taylor_and_params_target(tmp_path: Path) -> None:
    """Taylor importance uses the given gradients; a params target can be the binding one."""
    from core.models import create_model
    from core.pruning import count_stats, prune_to_target

    torch.manual_seed(0)
    model = create_model("resnet10t", 2)
    images, labels = torch.randn(8, 3, SIZE, SIZE), torch.tensor([0, 1] * 4)
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    macs, params = count_stats(model, SIZE)
    found = prune_to_target(
        model,
        SIZE,
        macs_target=0.9 * macs,
        params_target=0.4 * params,
        importance="taylor",
        gradients=grads,
    )
    assert found.step.params / params == pytest.approx(0.4, abs=0.02)
    assert found.step.macs < 0.9 * macs


def test_replay_refuses_a_history_of_another_model(tmp_path: Path) -> None:
    from core.models import ModelDescription, create_model, load_model
    from core.pruning import PruningRecord, count_stats, prune_to_target

    model = create_model("resnet10t", 2)
    macs, params = count_stats(model, SIZE)
    found = prune_to_target(model, SIZE, macs_target=0.6 * macs)
    save_pruned(tmp_path, "resnet10t", found.model, PruningRecord("resnet10t", SIZE, macs, params))
    (tmp_path / "pruning.json").write_text(
        json.dumps(PruningRecord("resnet10t", SIZE, macs, params, [found.step]).to_dict())
    )
    body = json.loads((tmp_path / "model.json").read_text())
    body["arch"] = "resnet18"
    (tmp_path / "model.json").write_text(json.dumps(body))
    with pytest.raises(UserError, match="recorded for resnet10t"):
        load_model(tmp_path)
    (tmp_path / "pruning.json").write_text("{not json")
    with pytest.raises(UserError, match="damaged"):
        load_model(tmp_path, description=ModelDescription.load(tmp_path))


# ---- the prune job end to end ---------------------------------------------------------------


def run_job(kind: str, config: dict) -> tuple[dict, Collector]:
    from training.control import CancelToken
    from training.jobs import run_job as run

    sink = Collector()
    emit = EventWriter("test", [sink], max_progress_per_s=0)
    return run({"kind": kind, **config}, emit, CancelToken()), sink


@pytest.fixture
def parent_run(trained_run: Path) -> Path:
    """conftest's ``trained_run``: a resnet10t at 32 px, 3 classes, 3 epochs (read-only)."""
    return trained_run


def test_prune_job_reaches_the_target_and_records_lineage(parent_run: Path, tmp_path: Path):
    from core.models import count_macs, load_model

    out = tmp_path / "pruned"
    summary, sink = run_job(
        "prune",
        {
            "run": str(parent_run),
            "out": str(out),
            "macs_ratio": 0.5,
            "steps": 1,
            "epochs": 1,
            "batch_size": 16,
            "threads": 1,
        },
    )
    assert summary["macs_ratio"] == pytest.approx(0.5, abs=0.03)
    assert summary["macs"] < 0.53 * summary["parent_macs"]
    assert summary["params"] < summary["parent_params"]
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "prune" and run["status"] == "done"
    assert Path(run["parent"]) == parent_run.resolve()
    for name in (
        "pruning.json",
        "model.json",
        "best.safetensors",
        "last.safetensors",
        "split.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "model.json").read_text())["pruning_history"] == "pruning.json"
    history = json.loads((out / "pruning.json").read_text())
    assert [s["step"] for s in history["steps"]] == [1]
    assert history["steps"][0]["history"], "the Torch-Pruning history is recorded"

    model, _ = load_model(out)  # rebuilt from the history, weights loaded strictly
    assert count_macs(model, SIZE) == summary["macs"]
    rows = list(__import__("csv").DictReader((out / "metrics.csv").open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [
        ("step0", "0"),
        ("step1", "0"),
        ("step1", "1"),
    ]
    assert int(rows[0]["macs"]) == summary["parent_macs"]
    assert {int(r["macs"]) for r in rows[1:]} == {summary["macs"]}
    assert all(r["val_acc"] for r in rows)
    assert sink.events[-1]["type"] != "error"


def test_cancelled_prune_resumes_to_the_weights_of_an_uninterrupted_run(
    parent_run: Path, tmp_path: Path
) -> None:
    from core.models import read_safetensors
    from training.control import CancelToken
    from training.prune import run

    config = {
        "run": str(parent_run),
        "macs_ratio": 0.6,
        "steps": 2,
        "epochs": 1,
        "batch_size": 16,
        "threads": 1,
        "device": "cpu",  # bitwise equal on the CPU; cuDNN's kernels are not deterministic
    }
    run_job("prune", {**config, "out": str(tmp_path / "whole")})

    cancel = CancelToken()

    def cancel_after_step1(event) -> None:  # the end of step 1's fine-tune
        if event.type == "metric" and event.data.get("stage") == "step1" and event.epoch == 1:
            cancel.set()

    emit = EventWriter("test", [], listeners=[cancel_after_step1])
    out = tmp_path / "resumed"
    first = run({**config, "out": str(out)}, emit, cancel)
    assert first["cancelled"]
    assert json.loads((out / "run.json").read_text())["status"] == "cancelled"
    assert [s["step"] for s in json.loads((out / "pruning.json").read_text())["steps"]] == [1]
    second = run({**config, "out": str(out), "resume": True}, EventWriter("test", []), None)
    assert not second["cancelled"]
    whole = read_safetensors(tmp_path / "whole" / "best.safetensors")
    resumed = read_safetensors(out / "best.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_pruning_a_pruned_run_replays_both_histories(parent_run: Path, tmp_path: Path) -> None:
    """Lineage parent -> pruned -> pruned again; the grandchild reloads from one pruning.json."""
    from core.models import count_macs, load_model

    first, _ = run_job(
        "prune",
        {
            "run": str(parent_run),
            "out": str(tmp_path / "a"),
            "macs_ratio": 0.7,
            "steps": 2,
            "epochs": 0,
            "threads": 1,
        },
    )
    second, _ = run_job(
        "prune",
        {
            "run": str(tmp_path / "a"),
            "out": str(tmp_path / "b"),
            "macs_ratio": 0.7,
            "steps": 1,
            "epochs": 0,
            "importance": "group_norm",
            "threads": 1,
        },
    )
    assert second["parent_macs"] == first["macs"]
    assert second["macs"] / first["parent_macs"] == pytest.approx(0.49, abs=0.03)
    steps = json.loads((tmp_path / "b" / "pruning.json").read_text())["steps"]
    assert [(s["step"], s["inherited"]) for s in steps] == [(1, True), (2, True), (1, False)]
    model, _ = load_model(tmp_path / "b")
    assert count_macs(model, SIZE) == second["macs"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"macs_ratio": 0}, "macs_ratio must be between 0 and 1"),
        ({"macs_ratio": 1.0}, "macs_ratio must be between 0 and 1"),
        ({"macs_ratio": 1.5}, "macs_ratio must be between 0 and 1"),
        ({"params_ratio": 2}, "params_ratio must be between 0 and 1"),
        ({"steps": 0}, "steps must be a whole number of at least 1"),
        ({"importance": "random"}, "importance must be one of"),
        ({"bogus": 1}, "unknown prune option"),
    ],
)
def test_bad_options_fail_before_any_work(parent_run: Path, tmp_path: Path, change, message):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        run_job("prune", {"run": str(parent_run), "out": str(out), **change})
    assert not out.exists()


@pytest.mark.parametrize("missing", ["model.json", "best.safetensors", "split.json"])
def test_incomplete_source_run_is_refused(parent_run: Path, tmp_path: Path, missing: str):
    broken = tmp_path / "broken"
    shutil.copytree(parent_run, broken, ignore=shutil.ignore_patterns("checkpoint*"))
    (broken / missing).unlink()
    with pytest.raises(UserError, match=f"incomplete: {missing}"):
        run_job("prune", {"run": str(broken), "out": str(tmp_path / "out")})


def test_a_source_run_still_running_is_refused(parent_run: Path, tmp_path: Path) -> None:
    import json
    import os
    import socket

    busy = tmp_path / "busy"
    shutil.copytree(parent_run, busy, ignore=shutil.ignore_patterns("checkpoint*"))
    body = json.loads((busy / "run.json").read_text())
    owner = {"pid": os.getpid(), "host": socket.gethostname()}  # a live process writes it
    (busy / "run.json").write_text(json.dumps({**body, "status": "running", **owner}))
    with pytest.raises(UserError, match="still running; wait until it has finished"):
        run_job("prune", {"run": str(busy), "out": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


def test_unprunable_run_is_refused_before_the_run_dir_exists(tmp_path: Path) -> None:
    from core.models import ModelDescription, create_model, save_weights
    from core.preprocess import PreprocessSpec

    run = tmp_path / "vit"
    description = ModelDescription(
        "vit_tiny_patch16_224",
        ["fake", "real"],
        PreprocessSpec(input_size=SIZE),
        model_kwargs={"img_size": SIZE, "depth": 1},
    )
    description.save(run)
    save_weights(
        create_model("vit_tiny_patch16_224", 2, img_size=SIZE, depth=1), run / "best.safetensors"
    )
    (run / "split.json").write_text(json.dumps({"root": str(tmp_path), "splits": {}, "labels": {}}))
    with pytest.raises(UserError, match="Torch-Pruning cannot prune vit_tiny_patch16_224"):
        run_job("prune", {"run": str(run), "out": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--macs-ratio", "0"], "argument --macs-ratio: must be between 0 and 1"),
        (["--macs-ratio", "1.2"], "argument --macs-ratio: must be between 0 and 1"),
        (["--steps", "0"], "argument --steps: must be at least 1"),
    ],
)
def test_cli_refuses_bad_numbers_before_loading_torch(tmp_path: Path, args, message) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "prune", "--run", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_cli_prunes_a_run_end_to_end(parent_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "prune",
            "--run",
            str(parent_run),
            "--macs-ratio",
            "0.6",
            "--steps",
            "1",
            "--epochs",
            "0",
            "--threads",
            "1",
            "--out",
            str(out),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["macs_ratio"] == pytest.approx(0.6, abs=0.03)
    assert json.loads((out / "run.json").read_text())["kind"] == "prune"
