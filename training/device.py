"""Which device a training job computes on: ``auto`` (a CUDA GPU when PyTorch sees one), ``cpu``
or ``cuda`` (``cuda:N`` for the N-th GPU).

Only the training arithmetic moves: data loading, weights files, checkpoints, test evaluation and
export stay on the CPU, so a run trained on a GPU resumes, prunes and exports anywhere.
"""

from __future__ import annotations

import re

import torch

from core.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
"""The choices offered by forms and ``--device`` (``cuda:N`` is accepted too)."""

_CUDA = re.compile(r"cuda(:\d+)?")


def check_device_name(name: object) -> None:
    """A :class:`UserError` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not isinstance(name, str) or not (name in ("auto", "cpu") or _CUDA.fullmatch(name)):
        raise UserError(f"device must be one of {DEVICES} or 'cuda:N', not {name!r}")


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` asks for; a :class:`UserError` when it names a missing GPU.

    ``auto`` is the first CUDA GPU when PyTorch sees one, else the CPU.
    """
    check_device_name(name)
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    if not available:
        built = torch.version.cuda or "no CUDA"
        raise UserError(
            f"device {name!r} asked for, but PyTorch sees no CUDA GPU (torch {torch.__version__}, "
            f"built with {built}); choose 'auto' or 'cpu'"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise UserError(f"device {name!r} asked for, but PyTorch sees {count} CUDA GPU(s)")
    return device


def describe_device(device: torch.device) -> str:
    """``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``, for the job log."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
