"""One heavy job at a time for the whole app: the Jobs queue and the Export wizard take turns.

Two PyTorch processes on the same cores slow each other down many times over (their OpenMP
threads spin against each other: 13x was measured on 2 cores), so a job that would start while
another one runs waits for it, first come, first served. No Qt: owners pass a callable that
starts their job when it is their turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Turn:
    owner: object
    start: Callable[[], None]
    what: str


class ComputeSlot:
    """Who may run a job now, and who waits (see the module docstring)."""

    def __init__(self) -> None:
        self._holder: _Turn | None = None
        self._waiting: list[_Turn] = []

    def request(self, owner: object, start: Callable[[], None], what: str) -> bool:
        """Call ``start`` now when the slot is free or already ``owner``'s (returns ``True``),
        else when ``owner``'s turn comes (``False``). ``what`` names the job for messages."""
        if self._holder is None or self._holder.owner is owner:
            self._holder = _Turn(owner, start, what)
            start()
            return True
        if not self.is_waiting(owner):
            self._waiting.append(_Turn(owner, start, what))
        return False

    def release(self, owner: object) -> None:
        """``owner`` is done (or gives up its turn): the next one waiting starts."""
        self._waiting = [turn for turn in self._waiting if turn.owner is not owner]
        if self._holder is None or self._holder.owner is not owner:
            return
        self._holder = None
        while self._holder is None and self._waiting:
            self._holder = self._waiting.pop(0)
            self._holder.start()

    def is_waiting(self, owner: object) -> bool:
        return any(turn.owner is owner for turn in self._waiting)

    def holds(self, owner: object) -> bool:
        return self._holder is not None and self._holder.owner is owner

    @property
    def running(self) -> str | None:
        """What the running job is (``what`` of its request), ``None`` when the slot is free."""
        return self._holder.what if self._holder is not None else None

    def reset(self) -> None:
        """Forget every turn (tests; an app that starts over)."""
        self._holder, self._waiting = None, []


SHARED = ComputeSlot()
"""The app's slot: every :class:`app.job_queue.JobQueue` and Export page takes turns on it."""
