"""Running a job inside the CLI process, with events shown for humans on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.workspace import Workspace

RUN_KINDS = ("finetune", "prune", "distill", "curve")
"""Job kinds that write a run directory, or a folder of them (a curve), in the workspace when
--out is absent."""


def default_out(workspace: Workspace, kind: str) -> Path:
    from training.rundir import new_run_name

    return workspace.runs / new_run_name(kind)


def run_job_in_process(
    config: dict[str, Any], workspace: Workspace, *, out: str | None = None
) -> dict[str, Any]:
    """Run ``config`` here (not in a child), printing progress; raise UserError on failure.

    Ctrl-C (SIGINT) cancels between batches and keeps a resumable checkpoint.
    """
    from app.console import ConsoleEvents
    from core.events import EventWriter
    from training.control import CancelToken
    from training.jobs import run_job

    if out:
        config["out"] = str(out)
    elif not config.get("out") and config["kind"] in RUN_KINDS:
        config["out"] = str(default_out(workspace, config["kind"]))
    emit = EventWriter("cli", [], listeners=[ConsoleEvents()])
    cancel = CancelToken()
    cancel.watch_signals()
    try:
        summary = run_job(config, emit, cancel)
    finally:
        emit.close()
    if summary.get("cancelled"):
        print(f"cancelled; resume with --resume --out {config['out']}", file=sys.stderr)
    elif summary.get("run_dir"):
        print(f"run directory: {summary['run_dir']}", file=sys.stderr)
    if summary.get("error"):
        raise UserError(summary["error"])
    return summary


def run_and_print(
    config: dict[str, Any],
    args: Any,
    format_summary: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    """Run a training job for a command (``args.out``, ``args.json``, ``args.workspace``) and
    print its summary: one JSON line with ``--json``, else ``format_summary``'s text (not for
    a cancelled job, which says how to resume instead). Returns the exit status, 0."""
    from app.commands import print_json, workspace_of

    summary = run_job_in_process(config, workspace_of(args), out=args.out)
    if args.json:
        print_json(summary)
    elif format_summary is not None and not summary.get("cancelled"):
        print(format_summary(summary))
    return 0
