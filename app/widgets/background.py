"""Run a plain function on a worker thread and get its result back on the GUI thread.

Workers never touch widgets (napari's rule): the function returns a value, and a queued signal
hands it to ``on_done`` in the GUI thread. One small dedicated pool, so tests can wait for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.errors import UserError

log = logging.getLogger(__name__)

_POOL: QThreadPool | None = None
_IN_FLIGHT: set[TaskSignals] = set()


class TaskSignals(QObject):
    """Signals of one background task (lives in the GUI thread)."""

    sig_task_finished = Signal(object)
    sig_task_failed = Signal(str)


class _Task(QRunnable):
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], signals: TaskSignals):
        super().__init__()
        self.fn, self.args, self.signals = fn, args, signals

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except UserError as exc:  # bad input: the message is the whole story
            log.info("background task %s: %s", getattr(self.fn, "__name__", self.fn), exc)
            self.signals.sig_task_failed.emit(str(exc))
        except Exception as exc:  # reported to the GUI, which shows the message
            log.exception("background task %s failed", getattr(self.fn, "__name__", self.fn))
            self.signals.sig_task_failed.emit(str(exc) or type(exc).__name__)
        else:
            self.signals.sig_task_finished.emit(result)


def pool() -> QThreadPool:
    """The pool background tasks run on (two threads; idle threads expire after 2 s)."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(2)
        _POOL.setExpiryTimeout(2000)
    return _POOL


def run_in_background(
    fn: Callable[..., Any],
    *args: Any,
    on_done: Callable[[Any], None],
    on_error: Callable[[str], None] | None = None,
) -> TaskSignals:
    """Call ``fn(*args)`` on the pool; ``on_done(result)`` / ``on_error(message)`` run in the
    GUI thread."""
    signals = TaskSignals()
    _IN_FLIGHT.add(signals)
    signals.sig_task_finished.connect(on_done)
    if on_error is not None:
        signals.sig_task_failed.connect(on_error)
    signals.sig_task_finished.connect(lambda _=None: _IN_FLIGHT.discard(signals))
    signals.sig_task_failed.connect(lambda _=None: _IN_FLIGHT.discard(signals))
    pool().start(_Task(fn, args, signals))
    return signals
