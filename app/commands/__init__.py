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
