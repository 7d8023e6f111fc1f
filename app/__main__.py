"""The one entry point: ``deepfake-studio`` / ``python -m app``.

No arguments opens the GUI; a subcommand works headless. Each subcommand lives in its own module
under :mod:`app.commands` with ``register(subparsers)``; heavy imports (torch, timm, Qt) happen
only inside the command that needs them, so ``deepfake-studio --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import sys
from collections.abc import Sequence

COMMANDS = (
    "train",
    "curve",
    "evaluate",
    "job",
    "index",
    "check",
    "export",
    "prune",
    "distill",
    "report",
    "selftest",
)
"""Modules of :mod:`app.commands`, in ``--help`` order. A missing module is skipped."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-studio",
        description="Tell real photos from AI-generated images; train, shrink and ship detectors. "
        "Without a command, opens the app.",
    )
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        help="folder for runs, indexes and bundles "
        "(default: $DEEPFAKE_STUDIO_HOME or the user data folder)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.commands.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI (or the GUI); returns the process exit status."""
    multiprocessing.freeze_support()
    argv = list(sys.argv[1:] if argv is None else argv)
    from app.frozen import handle_frozen_child

    handled = handle_frozen_child(argv)
    if handled is not None:
        return handled
    parser = build_parser()
    args = parser.parse_args(argv)
    from core.errors import UserError, describe_os_error

    try:
        if args.command is None:
            from app.gui import launch

            return launch(workspace=args.workspace)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_gone()
    except OSError as exc:  # a full disk, a folder one cannot write in: no traceback
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _reader_gone() -> int:
    """The reader went away (`deepfake-studio check DIR | head`): stop quietly like other Unix
    tools; stdout goes to devnull so flushing it at exit cannot raise again."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
