"""Knowledge distillation: the loss by hand, the teacher's view of a batch, the job and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.errors import UserError
from tests.synthetic import make_image_set
from tests.test_pruning import run_job

torch = pytest.importorskip("torch")

STUDENT = "mobilenetv3_small_050"
NARROW = {"channels": [16, 32, 64, 128]}
"""A resnet10t with a quarter of the width: about 1/14 of the teacher's parameters."""


def test_loss_matches_hand_computation() -> None:
    """student [1, 2], teacher [2, 0], label 1, T = 2 (all numbers worked out below)."""
    from training.distill import distillation_loss

    student, teacher, label = (
        torch.tensor([[1.0, 2.0]]),
        torch.tensor([[2.0, 0.0]]),
        torch.tensor([1]),
    )
    ce = math.log(1 + math.exp(-1.0))  # -log softmax([1, 2])[1] = 0.313262
    p_t = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax([2, 0] / 2)
    p_s = [
        math.exp(0.5) / (math.exp(0.5) + math.exp(1)),
        math.exp(1) / (math.exp(0.5) + math.exp(1)),
    ]
    kl = sum(t * math.log(t / s) for t, s in zip(p_t, p_s, strict=True))  # 0.257403
    assert ce == pytest.approx(0.313262, abs=1e-6)
    assert kl == pytest.approx(0.257403, abs=1e-6)

    def loss(alpha: float) -> float:
        return float(distillation_loss(student, teacher, label, 2.0, alpha))

    assert loss(0.0) == pytest.approx(ce, abs=1e-6)
    assert loss(1.0) == pytest.approx(4 * kl, abs=1e-6)  # T^2 = 4
    assert loss(0.7) == pytest.approx(0.3 * ce + 0.7 * 4 * kl, abs=1e-6)


def test_loss_is_a_batch_mean_and_zero_kl_for_identical_logits() -> None:
    from training.distill import distillation_loss

    logits = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.0, -1.0]])
    labels = torch.tensor([2, 0])
    assert float(distillation_loss(logits, logits, labels, 4.0, 1.0)) == pytest.approx(0, abs=1e-7)
    pair = float(distillation_loss(logits, logits.flip(0), labels, 3.0, 1.0))
    singles = [
        float(
            distillation_loss(
                logits[i : i + 1], logits.flip(0)[i : i + 1], labels[i : i + 1], 3.0, 1.0
            )
        )
        for i in range(2)
    ]
    assert pair == pytest.approx(sum(singles) / 2, rel=1e-6)


class Recorder(torch.nn.Module):
    """A fake teacher that records what it sees and whether it is in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.seen: list[tuple[torch.Tensor, bool, bool]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append((images.clone(), self.training, torch.is_grad_enabled()))
        return images.mean((2, 3))[:, :2] * self.scale


def test_teacher_sees_the_same_batch_in_eval_mode_without_gradients() -> None:
    from core.preprocess import PreprocessSpec
    from training.distill import distill_loss_fn

    spec = PreprocessSpec(input_size=16)
    teacher = Recorder().train()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2)).train()
    compute = distill_loss_fn(teacher, spec, spec, temperature=4.0, alpha=0.7)
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    loss, logits = compute(student, images, labels)
    loss.backward()
    seen, training, grad = teacher.seen[0]
    assert torch.equal(seen, images)
    assert not training and not grad
    assert teacher.scale.grad is None and student[1].weight.grad is not None
    assert logits.shape == (4, 2)


def test_mixed_batches_reach_teacher_and_student_alike_with_soft_labels() -> None:
    """CutMix in distillation: both models see the same mixed images, the hard term the mixed
    labels (function matching)."""
    from core.preprocess import PreprocessSpec
    from training.distill import distill_loss_fn, distillation_loss
    from training.loop import FitSettings, batch_mixer

    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=16)
    teacher = Recorder()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    mix = batch_mixer(FitSettings(cutmix=1.0, mix_prob=1.0), 2)
    seen_by_student: list[torch.Tensor] = []
    student.register_forward_pre_hook(lambda _m, args: seen_by_student.append(args[0].clone()))
    compute = distill_loss_fn(teacher, spec, spec, temperature=2.0, alpha=0.5, mix=mix)
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    loss, logits = compute(student, images, labels)
    mixed = teacher.seen[0][0]
    assert torch.equal(seen_by_student[0], mixed) and not torch.equal(mixed, images)
    # Each mixed image is its own pixels in one box and its partner's (flipped batch) elsewhere.
    own = mixed == images
    assert torch.equal(own | (mixed == images.flip(0)), torch.ones_like(own))
    # The hard labels are the pixel shares (the mixer keeps a label per image pair).
    share = own[:, 0].float().mean((1, 2))
    soft = torch.stack([1 - labels.float(), labels.float()], 1)
    mixed_labels = share[:, None] * soft + (1 - share[:, None]) * soft.flip(0)
    teacher_logits = mixed.mean((2, 3))[:, :2]
    expected = distillation_loss(logits, teacher_logits, mixed_labels, 2.0, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # Odd batches (an epoch's last) stay unmixed, with one-hot labels.
    unmixed, one_hot = mix(images[:3], labels[:3])
    assert torch.equal(unmixed, images[:3]) and one_hot.tolist() == [[1, 0], [0, 1], [1, 0]]


def test_teacher_view_resizes_and_renormalises() -> None:
    from core.preprocess import PreprocessSpec
    from training.distill import teacher_view

    student = PreprocessSpec(input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    teacher = PreprocessSpec(input_size=32)  # ImageNet mean/std
    pixels = torch.full((1, 3, 16, 16), 0.6)
    pixels[:, :, :, 8:] = 0.2  # left half bright, right half dark
    view = teacher_view((pixels - 0.5) / 0.25, student, teacher)
    assert view.shape == (1, 3, 32, 32)
    back = view * torch.tensor(teacher.std).view(1, 3, 1, 1) + torch.tensor(teacher.mean).view(
        1, 3, 1, 1
    )
    assert torch.allclose(back[..., :4], torch.tensor(0.6), atol=1e-5)
    assert torch.allclose(back[..., -4:], torch.tensor(0.2), atol=1e-5)
    same = torch.randn(2, 3, 32, 32)
    assert teacher_view(same, teacher, teacher) is same


def test_distill_job_teaches_a_small_student_from_soft_targets_alone(
    trained_run: Path, tmp_path: Path
) -> None:
    """alpha = 1: the labels carry no weight, so all the student learns comes from the teacher."""
    from core.models import count_params, load_model

    data = trained_run.parent / "data"
    out = tmp_path / "student"
    summary, sink = run_job(
        "distill",
        {
            "teacher": str(trained_run),
            "arch": "resnet10t",
            "model_kwargs": NARROW,
            "alpha": 1.0,
            "data": str(data),
            "out": str(out),
            "epochs": 3,
            "batch_size": 16,
            "lr": 5e-3,
            "threads": 1,
            "workspace": str(tmp_path / "ws"),
        },
    )
    assert summary["val_acc"] >= 0.8 and summary["test_acc"] >= 0.8, summary  # chance: 1/3
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "distill" and run["status"] == "done"
    assert Path(run["parent"]) == trained_run.resolve()
    model, description = load_model(out)
    teacher, teacher_description = load_model(trained_run)
    assert description.arch == "resnet10t" and description.model_kwargs == NARROW
    assert description.class_names == teacher_description.class_names
    assert summary["params"] == count_params(model)
    assert summary["params_vs_teacher"] <= 0.25
    assert summary["teacher_params"] == count_params(teacher)
    assert summary["teacher_test_acc"] >= 0.8
    # the teacher's own split was reused: the student never trains on the teacher's test images
    split = json.loads((out / "split.json").read_text())["splits"]
    teacher_split = json.loads((trained_run / "split.json").read_text())["splits"]
    assert split == teacher_split
    logs = [e["data"]["message"] for e in sink.events if e["type"] == "log"]
    assert any("recorded train/val/test split" in m for m in logs)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and "train_loss" in rows[0]


def test_distill_into_a_student_run_at_another_size(trained_run: Path, tmp_path: Path) -> None:
    """A student run (its own 24 px contract) keeps its contract; the teacher gets 32 px views."""
    data = trained_run.parent / "data"
    first, _ = run_job(
        "distill",
        {
            "teacher": str(trained_run),
            "arch": STUDENT,
            "img_size": 24,
            "data": str(data),
            "out": str(tmp_path / "s1"),
            "epochs": 1,
            "batch_size": 32,
            "threads": 1,
            "workspace": str(tmp_path / "ws"),
        },
    )
    second, _ = run_job(
        "distill",
        {
            "teacher": str(trained_run),
            "student": str(tmp_path / "s1"),
            "data": str(data),
            "out": str(tmp_path / "s2"),
            "epochs": 1,
            "batch_size": 32,
            "threads": 1,
            "workspace": str(tmp_path / "ws"),
        },
    )
    model_json = json.loads((tmp_path / "s2" / "model.json").read_text())
    assert model_json["preprocess"]["input_size"] == 24
    assert second["params"] == first["params"]


def test_distill_into_a_pruned_student_keeps_its_pruned_architecture(
    trained_run: Path, tmp_path: Path
) -> None:
    """prune -> distill: the student run carries the pruning history and reloads from it."""
    from core.models import count_params, load_model

    pruned, _ = run_job(
        "prune",
        {
            "run": str(trained_run),
            "out": str(tmp_path / "pruned"),
            "macs_ratio": 0.4,
            "steps": 1,
            "epochs": 0,
            "threads": 1,
        },
    )
    summary, _ = run_job(
        "distill",
        {
            "teacher": str(trained_run),
            "student": str(tmp_path / "pruned"),
            "data": str(trained_run.parent / "data"),
            "out": str(tmp_path / "kd"),
            "epochs": 1,
            "batch_size": 32,
            "threads": 1,
            "workspace": str(tmp_path / "ws"),
        },
    )
    assert (tmp_path / "kd" / "pruning.json").is_file()
    model, description = load_model(tmp_path / "kd")
    assert description.pruning_history == "pruning.json"
    assert count_params(model) == pruned["params"] == summary["params"]
    assert summary["macs_vs_teacher"] == pytest.approx(0.4, abs=0.03)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": None}, "exactly one student"),
        ({"student": "somewhere"}, "exactly one student"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"temperature": 0}, "temperature must be between"),
        ({"epochs": 0}, "epochs must be between"),
        ({"cutmix": -1}, "cutmix must be between"),
        ({"data": "/nonexistent/data"}, "does not exist"),
    ],
)
def test_bad_options_fail_before_any_work(trained_run: Path, tmp_path: Path, change, message):
    config = {
        "teacher": str(trained_run),
        "arch": STUDENT,
        "data": str(trained_run.parent / "data"),
        "out": str(tmp_path / "out"),
        **change,
    }
    with pytest.raises(UserError, match=message):
        run_job("distill", config)
    assert not (tmp_path / "out").exists()


def test_teacher_classes_must_match_the_data(trained_run: Path, tmp_path: Path) -> None:
    other = make_image_set(tmp_path / "other", {"real": 6, "fake": 6})
    with pytest.raises(UserError, match="not the teacher's"):
        run_job(
            "distill",
            {
                "teacher": str(trained_run),
                "arch": STUDENT,
                "data": str(other),
                "out": str(tmp_path / "out"),
                "workspace": str(tmp_path / "ws"),
            },
        )
    assert not (tmp_path / "out").exists()


def test_incomplete_teacher_is_refused(tmp_path: Path) -> None:
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "model.json").write_text("{}")
    data = make_image_set(tmp_path / "data", {"real": 4, "fake": 4})
    with pytest.raises(UserError, match=r"teacher run .* incomplete: best.safetensors missing"):
        run_job(
            "distill",
            {
                "teacher": str(tmp_path / "teacher"),
                "arch": STUDENT,
                "data": str(data),
                "out": str(tmp_path / "out"),
            },
        )
