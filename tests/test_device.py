"""Where training computes (``device``: auto, cpu, cuda, cuda:N) and GPU training end to end.

The first half runs everywhere: the choice, its refusals and the CLI. The second half needs a CUDA
GPU (skipped with that reason on CI, run on a GPU machine): fine-tune with bf16, cancel and resume
on the GPU and then on the CPU, CPU/GPU parity of the same weights, prune and distill on the GPU.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from tests.synthetic import make_image_set
from tests.test_pruning import run_job
from tests.test_training import TINY, finetune

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (run on a GPU machine)")
needs_no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without GPU")


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    return make_image_set(tmp_path / "data", {"real": 30, "fake": 30})


def logs(sink) -> list[str]:
    return [e["data"]["message"] for e in sink.events if e["type"] == "log"]


# ---- the choice -----------------------------------------------------------------------------


@pytest.mark.parametrize("available", [False, True])
def test_auto_is_the_gpu_when_pytorch_sees_one(monkeypatch, available: bool) -> None:
    from training.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert resolve_device("auto").type == ("cuda" if available else "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_a_missing_gpu_is_refused_with_the_way_out(monkeypatch) -> None:
    from training.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match=r"PyTorch sees no CUDA GPU.*choose 'auto' or 'cpu'"):
            resolve_device(name)


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch) -> None:
    from training.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(UserError, match=r"'cuda:3' asked for, but PyTorch sees 1 CUDA GPU"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", 0])
def test_unknown_device_names_are_refused(name) -> None:
    from training.device import check_device_name

    with pytest.raises(UserError, match="device must be one of"):
        check_device_name(name)


@needs_no_cuda
def test_a_job_asking_for_a_missing_gpu_fails_before_any_work(
    toy_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = {"data": str(toy_data), "out": str(out), "workspace": str(tmp_path), **TINY}
    with pytest.raises(UserError, match="no CUDA GPU"):
        finetune({**config, "device": "cuda"})
    assert not out.exists()


def test_cpu_training_says_where_it_computes(toy_data: Path, tmp_path: Path) -> None:
    config = {"data": str(toy_data), "workspace": str(tmp_path), **TINY, "epochs": 1}
    summary, sink = finetune({**config, "out": str(tmp_path / "run"), "device": "cpu"})
    assert summary["epochs_run"] == 1
    assert "computing on cpu (1 threads), fp32" in logs(sink)


@needs_no_cuda
def test_cli_device_cuda_without_gpu_gives_one_clear_line(toy_data: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "train", "--data", str(toy_data), "--device", "cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "DEEPFAKE_STUDIO_HOME": str(tmp_path / "home")},
    )
    assert result.returncode != 0
    assert "PyTorch sees no CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr


# ---- on a GPU -------------------------------------------------------------------------------


@needs_cuda
def test_gpu_training_learns_saves_cpu_fp32_weights_and_resumes_anywhere(
    toy_data: Path, tmp_path: Path
) -> None:
    """bf16 on the GPU; cancelled during epoch 2 on the GPU, resumed on the CPU to the end."""
    from safetensors.torch import load_file

    from training.control import CancelToken

    base = {"data": str(toy_data), "workspace": str(tmp_path), **TINY, "precision": "bf16"}
    summary, sink = finetune({**base, "out": str(tmp_path / "gpu"), "epochs": 3, "device": "cuda"})
    assert summary["val_acc"] >= 0.8, summary
    assert any(m.startswith("computing on cuda:0 (") and m.endswith("bf16") for m in logs(sink))
    weights = load_file(str(tmp_path / "gpu" / "best.safetensors"))
    assert {t.device.type for t in weights.values()} == {"cpu"}
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float32}

    class CancelInEpoch2(CancelToken):
        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 3 + 2 + 1  # epoch 1: 3 train + 2 val batches; then 1 more

    cut = tmp_path / "cut"
    first, _ = finetune({**base, "out": str(cut), "epochs": 3, "device": "cuda"}, CancelInEpoch2())
    assert first["cancelled"] is True
    resumed, sink = finetune(
        {**base, "out": str(cut), "epochs": 3, "device": "cpu", "resume": True}
    )
    assert "resumed after epoch 1 from checkpoint" in logs(sink)
    assert any(m.startswith("computing on cpu") for m in logs(sink))
    rows = list(csv.DictReader((cut / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert resumed["epochs_run"] == 3 and resumed["val_acc"] >= 0.8, resumed


@needs_cuda
def test_the_same_weights_give_the_same_logits_on_cpu_and_gpu(trained_run: Path) -> None:
    from core.models import count_macs, load_model
    from training.common import evaluate_samples
    from training.config import read_split
    from training.data import ImageDataset, make_loader
    from training.loop import Compute, predict

    model, description = load_model(trained_run)
    samples = read_split(trained_run / "split.json", "val")
    loader = make_loader(
        ImageDataset(samples, description.class_names, description.preprocess),
        batch_size=16,
        train=False,
    )
    on_cpu, labels = predict(model, loader)
    gpu = Compute(device=torch.device("cuda"))
    on_gpu, gpu_labels = predict(gpu.prepare(model), loader, compute=gpu)
    assert (labels == gpu_labels).all()
    assert abs(on_cpu - on_gpu).max() < 1e-3
    assert count_macs(model, 32) == count_macs(model.cpu(), 32)
    assert evaluate_samples(model, description, samples)["n"] == len(samples)


@needs_cuda
def test_prune_and_distill_train_on_the_gpu(trained_run: Path, tmp_path: Path) -> None:
    pruned, sink = run_job(
        "prune",
        {
            "run": str(trained_run),
            "out": str(tmp_path / "pruned"),
            "macs_ratio": 0.5,
            "steps": 2,
            "epochs": 1,
            "batch_size": 16,
            "threads": 1,
            "device": "cuda",
        },
    )
    assert pruned["macs"] < 0.53 * pruned["parent_macs"], pruned
    assert any(m.startswith("computing on cuda:0") for m in logs(sink))
    rows = list(csv.DictReader((tmp_path / "pruned" / "metrics.csv").open()))
    assert {int(r["macs"]) for r in rows if r["stage"] == "step2"} == {pruned["macs"]}

    student, sink = run_job(
        "distill",
        {
            "teacher": str(trained_run),
            "arch": "resnet10t",
            "data": str(trained_run.parent / "data"),
            "out": str(tmp_path / "student"),
            "epochs": 3,
            "batch_size": 16,
            "lr": 5e-3,
            "threads": 1,
            "device": "cuda",
            "workspace": str(tmp_path / "ws"),
        },
    )
    assert any(m.startswith("computing on cuda:0") for m in logs(sink))
    assert student["test_acc"] >= 0.8 and student["teacher_test_acc"] >= 0.8, student
    assert json.loads((tmp_path / "student" / "run.json").read_text())["status"] == "done"
