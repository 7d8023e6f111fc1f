"""Sharpness-aware minimisation: the gradient is taken at the moved weights, the second pass
replays the first one's batch, and the fine-tune job trains with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from tests.synthetic import make_image_set
from tests.test_training import TINY, finetune

torch = pytest.importorskip("torch")

from training.sam import RandomState, frozen_norm_statistics, sharpness_aware_gradients  # noqa: E402


def test_gradient_is_taken_at_the_weights_moved_rho_along_the_gradient() -> None:
    weights = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    model = torch.nn.Module()
    model.w = weights
    loss = lambda: (weights**4).sum() / 4  # noqa: E731  gradient w**3
    loss().backward()
    first = weights.grad.clone()
    rho = 0.1
    sharpness_aware_gradients(model, rho, RandomState(), loss)
    moved = torch.tensor([1.0, -2.0, 0.5]) + rho * first / first.norm()
    assert torch.allclose(weights.grad, moved**3)
    assert not torch.allclose(weights.grad, first)
    assert torch.equal(weights.detach(), torch.tensor([1.0, -2.0, 0.5]))  # restored


def test_second_pass_replays_the_random_draws_and_keeps_norm_statistics() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5)
    )
    images = torch.randn(4, 3, 8, 8)
    draws: list[tuple[float, torch.Tensor]] = []

    def loss() -> torch.Tensor:
        shift = float(np.random.rand())  # as timm's MixUp/CutMix draw their boxes
        out = model(images + shift)
        draws.append((shift, (out == 0).clone()))  # the dropout mask
        return out.square().mean()

    randomness = RandomState()
    loss().backward()
    after_first = model[1].running_mean.clone()
    sharpness_aware_gradients(model, 0.05, randomness, loss)
    (shift_1, mask_1), (shift_2, mask_2) = draws
    assert shift_1 == shift_2 and torch.equal(mask_1, mask_2)
    assert torch.equal(model[1].running_mean, after_first)  # updated once, by the first pass
    assert model[1].momentum == 0.1  # restored after the block
    with frozen_norm_statistics(model):
        assert model[1].momentum == 0.0


def test_finetune_with_sam_learns_and_records_its_radius(tmp_path: Path) -> None:
    toy_data = make_image_set(tmp_path / "data", {"real": 30, "fake": 30})
    out = tmp_path / "sam"
    summary, _ = finetune(
        {"data": str(toy_data), "out": str(out), "epochs": 3, "workspace": str(tmp_path), **TINY}
        | {"sam": 0.05, "cutmix": 1.0, "mix_prob": 0.5}
    )
    assert summary["val_acc"] >= 0.8, summary
    assert json.loads((out / "config.json").read_text())["sam"] == 0.05


def test_a_negative_radius_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="sam must be between"):
        finetune({"data": str(tmp_path), "out": "x", "sam": -0.1})
