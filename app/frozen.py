"""Support for the PyInstaller-frozen app, where ``sys.executable`` is the app itself.

The GUI starts jobs as ``[*job_command(), "job", JOB.json]``: in a source install that is
``python -m app``; frozen, it is the executable (which routes ``job`` like the CLI does).
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def app_command() -> list[str]:
    """The argv prefix that runs this app's CLI in a child process."""
    if is_frozen():
        return [sys.executable]
    return [sys.executable, "-m", "app"]


def handle_frozen_child(argv: list[str]) -> int | None:
    """Hook for arguments a frozen child gets from multiprocessing; ``None`` = not handled."""
    if is_frozen() and argv and argv[0].startswith("--multiprocessing"):
        return 0
    return None
