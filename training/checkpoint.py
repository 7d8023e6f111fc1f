"""Resumable checkpoints without pickles: tensors in safetensors, everything else in JSON.

``checkpoint/`` holds ``model.safetensors``, ``average.safetensors`` (the weight average, when
training keeps one), ``optimizer.safetensors`` (per-parameter state such as AdamW moments or SGD
momentum), ``rng.safetensors`` (torch's RNG state) and ``state.json`` (epoch, optimizer
hyper-parameters, scheduler state, Python/NumPy RNG states, best score, job-specific extras).
Files are written to a temporary folder and swapped in, so a kill mid-save keeps the old one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from core.models import save_weights, write_safetensors

AVERAGE_FILE = "average.safetensors"


def save_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    extra: dict[str, Any] | None = None,
    average: torch.nn.Module | None = None,
) -> Path:
    """Save everything needed to continue after ``epoch`` (the next epoch is ``epoch + 1``)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / "model.safetensors")
    if average is not None:
        save_weights(average, tmp / AVERAGE_FILE)
    opt_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for param_id, state in opt_state["state"].items():
        for key, value in state.items():
            name = f"{param_id}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    write_safetensors(tensors, tmp / "optimizer.safetensors")
    write_safetensors({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
    np_state = np.random.get_state()
    state = {
        "epoch": epoch,
        "optimizer": {"param_groups": opt_state["param_groups"], "scalars": scalars},
        "scheduler": scheduler.state_dict(),
        "python_rng": _jsonable(random.getstate()),
        "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "extra": extra or {},
    }
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def has_checkpoint(directory: Path) -> bool:
    return (directory / "state.json").is_file()


def load_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    average: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNGs in place; returns ``state.json``.

    ``average`` gets the saved weight average, or the restored model's weights when the
    checkpoint has none (averaging switched on at resume).
    """
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    if average is not None:
        saved_average = directory / AVERAGE_FILE
        source = saved_average if saved_average.is_file() else directory / "model.safetensors"
        average.load_state_dict(load_file(str(source)), strict=True)
    tensors = load_file(str(directory / "optimizer.safetensors"))
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        param_id, key = name.split(".", 1)
        per_param.setdefault(int(param_id), {})[key] = value
    for name, value in state["optimizer"]["scalars"].items():
        param_id, key = name.split(".", 1)
        per_param.setdefault(int(param_id), {})[key] = value
    optimizer.load_state_dict(
        {"state": per_param, "param_groups": state["optimizer"]["param_groups"]}
    )
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(load_file(str(directory / "rng.safetensors"))["torch"])
    random.setstate(_tupled(state["python_rng"]))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return state


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value
