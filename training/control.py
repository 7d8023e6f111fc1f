"""Cooperative cancellation of a job: the line ``cancel`` on stdin, SIGTERM or SIGINT.

The loop polls :meth:`CancelToken.is_set` between batches, saves a resumable checkpoint and ends
with a ``done`` event whose data says ``"cancelled": true``.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class CancelToken:
    """A flag set from another thread or a signal handler."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def watch_stdin(self) -> None:
        """Set the token when a line ``cancel`` arrives on stdin (daemon thread)."""

        def _read() -> None:
            try:
                for line in sys.stdin:
                    if line.strip().lower() == "cancel":
                        self.set()
                        return
            except (OSError, ValueError):
                return

        if sys.stdin is not None and not sys.stdin.isatty():
            threading.Thread(target=_read, name="cancel-watch", daemon=True).start()

    def watch_signals(self) -> None:
        """Set the token on SIGTERM/SIGINT instead of dying mid-batch (main thread only)."""

        def _handler(signum: int, frame: FrameType | None) -> None:
            self.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _handler)
            signal.signal(signal.SIGINT, _handler)


class Cancelled(Exception):
    """Raised inside a job when its token is set; the job runner turns it into ``done``."""
