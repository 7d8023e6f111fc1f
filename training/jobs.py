"""Runs any job config, reporting through JSON-lines events; the child side of the GUI's runner.

``run_job`` maps a config's ``kind`` to its module's ``run(config, emit, cancel)``; ``main``
wires stdout, stdin-cancel and signals, and guarantees that exactly one ``done`` or ``error``
event ends the stream whatever happens (bad input, a bug, a full disk).
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
import traceback
from pathlib import Path
from typing import Any

from core.errors import UserError, describe_os_error
from core.events import EventWriter
from core.runs import settle_run
from training.control import Cancelled, CancelToken

JOB_MODULES = {
    "finetune": "training.finetune",
    "evaluate": "training.evaluate",
    "prune": "training.prune",
    "distill": "training.distill",
    "export": "training.export",
    "report": "training.report",
    "curve": "training.curve",
}


def run_job(config: dict[str, Any], emit: EventWriter, cancel: CancelToken) -> dict[str, Any]:
    """Run the job ``config['kind']`` and return its summary (raises on failure)."""
    kind = config.get("kind")
    if kind not in JOB_MODULES:
        raise UserError(f"unknown job kind {kind!r}; known kinds: {sorted(JOB_MODULES)}")
    try:
        module = importlib.import_module(JOB_MODULES[kind])
    except ModuleNotFoundError as exc:
        if exc.name == JOB_MODULES[kind]:
            raise UserError(f"job kind {kind!r} is not available in this version") from None
        raise
    body = {k: v for k, v in config.items() if k != "job"}
    try:
        return module.run(body, emit, cancel)
    except Exception as exc:
        if body.get("out") and not isinstance(exc, Cancelled):
            settle_own_run(Path(body["out"]).expanduser(), failure_text(exc))
        raise


def settle_own_run(directory: Path, message: str) -> None:
    """Mark the run this process was writing in ``directory`` failed (its run.json would say
    running until the process ends); a run another process made is never touched."""
    settle_run(directory, "failed", message, os.getpid(), own_only=True)


def failure_text(exc: BaseException) -> str:
    """A job's failure in words: the user's error, the operating system's, or the bug's type."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {exc}"


def execute(config: dict[str, Any], emit: EventWriter, cancel: CancelToken) -> int:
    """Run a job and always end the event stream; returns the process exit status."""
    try:
        summary = run_job(config, emit, cancel)
    except Cancelled:
        emit("done", {"cancelled": True, "message": "cancelled before any training started"})
        return 0
    except UserError as exc:
        emit("error", {"message": str(exc)})
        return 2
    except Exception as exc:  # the stream must end with an error event, whatever went wrong
        emit("error", {"message": failure_text(exc), "traceback": traceback.format_exc()})
        return 1
    emit("done", summary)
    return 0


def main(config: dict[str, Any]) -> int:
    """Child-process entry: events on stdout, ``cancel`` on stdin or SIGTERM/SIGINT."""
    job_id = str(config.get("job") or secrets.token_hex(4))
    emit = EventWriter(job_id, [sys.stdout])
    cancel = CancelToken()
    cancel.watch_stdin()
    cancel.watch_signals()
    try:
        return execute(config, emit, cancel)
    finally:
        emit.close()
