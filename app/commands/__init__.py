"""Headless subcommands: one module each, exposing ``register(subparsers)``.

Keep module-level imports light (argparse, pathlib, core.errors): torch, timm, onnxruntime and Qt
are imported inside the command's ``run`` function.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def workspace_of(args: argparse.Namespace):
    """The :class:`core.workspace.Workspace` selected by ``--workspace`` / the environment."""
    from core.workspace import Workspace

    return Workspace.resolve(getattr(args, "workspace", None))


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout, flushed."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def add_split_options(parser: argparse.ArgumentParser) -> None:
    """``--split`` and how a data set that is not a run's own is split (``--seed/--val/--test``).

    Unset shares come from what the model records (a bundle's ``training_split``), else 0.1.
    """
    parser.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="only this split (the run's recorded split when DIR is its data); default: all images",
    )
    for flag, kind, what in (
        ("--seed", int, "split seed"),
        ("--val", float, "validation share"),
        ("--test", float, "test share"),
    ):
        parser.add_argument(
            flag,
            type=kind,
            help=f"{what} when DIR is not a run's recorded data "
            "(default: the bundle's training split, else seed 0 and 0.1)",
        )


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (job key ``threads``): the CPU threads a job's PyTorch may use."""
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (0 = all; give 1 when another job shares the cores: two jobs "
        "competing for all of them slow each other down many times over)",
    )


def split_config(args: argparse.Namespace) -> dict[str, Any]:
    """The job-config keys set by :func:`add_split_options`."""
    return {key: getattr(args, key) for key in ("split", "seed", "val", "test")}
