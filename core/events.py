"""The job event schema: one JSON object per line on a job's stdout and in ``events.jsonl``.

``{"v":1,"type":"progress|metric|log|artifact|done|error","job":ID,"epoch":E,"step":S,"data":{...}}``

* ``progress``: ``data`` has ``done``, ``total`` and optionally ``phase``, ``images_per_s``, ``eta_s``.
* ``metric``: ``data`` is a flat mapping of metric names to numbers (``train_loss``, ``val_acc``,
  ``lr`` ...) for ``epoch``.
* ``log``: ``data`` has ``message`` and ``level``.
* ``artifact``: ``data`` has ``kind`` (``checkpoint``, ``weights``, ``bundle``, ``report`` ...) and
  ``path``.
* ``done``: ``data`` holds the final summary (``run_dir``, best metrics, ``cancelled``).
* ``error``: ``data`` has ``message`` (one human sentence) and optionally ``traceback``.

A job always ends with exactly one ``done`` or ``error`` event.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

SCHEMA_VERSION = 1
EVENT_TYPES = ("progress", "metric", "log", "artifact", "done", "error")
TERMINAL_TYPES = ("done", "error")


@dataclass
class Event:
    """One job event. ``epoch`` and ``step`` are ``None`` when they do not apply."""

    type: str
    job: str
    epoch: int | None = None
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; expected one of {EVENT_TYPES}")

    def to_json(self) -> str:
        body = {
            "v": self.v,
            "type": self.type,
            "job": self.job,
            "epoch": self.epoch,
            "step": self.step,
            "data": _finite(self.data),
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Event:
        """Parse one line; raises ``ValueError`` on anything that is not a valid event."""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON event line: {line[:80]!r}") from exc
        if not isinstance(obj, dict) or obj.get("v") != SCHEMA_VERSION:
            raise ValueError(f"not a v{SCHEMA_VERSION} event: {line[:80]!r}")
        return cls(
            type=obj.get("type", ""),
            job=str(obj.get("job", "")),
            epoch=obj.get("epoch"),
            step=obj.get("step"),
            data=obj.get("data") or {},
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: map them to ``None`` so every consumer can parse the line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


Emit = Callable[..., None]
"""``emit(type, data=None, *, epoch=None, step=None)``: how jobs report; see :class:`EventWriter`."""


class EventWriter:
    """Writes events as JSON lines to any number of streams, flushing each line.

    ``listeners`` get each :class:`Event` object (the CLI prints them for humans).
    Progress events are rate-limited to ``max_progress_per_s`` (the last one of a phase, where
    ``done == total``, always passes). Use the instance itself as the job's ``emit`` callable.
    """

    def __init__(
        self,
        job: str,
        streams: list[IO[str]] | None = None,
        *,
        listeners: list[Callable[[Event], None]] | None = None,
        max_progress_per_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.streams = list(streams or [])
        self.listeners = list(listeners or [])
        self.min_interval = 1.0 / max_progress_per_s if max_progress_per_s > 0 else 0.0
        self.clock = clock
        self._last_progress = -math.inf
        self.finished = False
        self.events_written = 0

    def add_file(self, path: Path) -> None:
        """Also append events to ``path`` (``events.jsonl`` of a run directory)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.streams.append(path.open("a", encoding="utf-8"))

    @contextmanager
    def file_scope(self) -> Iterator[EventWriter]:
        """Files added inside the block (one run of a job that makes several) are closed and
        get no more events when it ends."""
        mark = len(self.streams)
        try:
            yield self
        finally:
            for stream in self.streams[mark:]:
                stream.close()
            del self.streams[mark:]

    def __call__(
        self,
        type: str,
        data: dict[str, Any] | None = None,
        *,
        epoch: int | None = None,
        step: int | None = None,
    ) -> None:
        data = data or {}
        if type == "progress":
            now = self.clock()
            final = data.get("total") is not None and data.get("done") == data.get("total")
            if not final and now - self._last_progress < self.min_interval:
                return
            self._last_progress = now
        if type in TERMINAL_TYPES:
            if self.finished:
                return
            self.finished = True
        event = Event(type, self.job, epoch, step, data)
        line = event.to_json()
        for listener in self.listeners:
            listener(event)
        for stream in self.streams:
            stream.write(line + "\n")
            stream.flush()
        self.events_written += 1

    def log(self, message: str, level: str = "info") -> None:
        self("log", {"message": message, "level": level})

    def close(self) -> None:
        import sys

        for stream in self.streams:
            if stream not in (sys.stdout, sys.stderr):
                stream.close()


def read_events(path: Path) -> list[Event]:
    """All valid events of an ``events.jsonl`` file (a torn last line is skipped)."""
    events = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(Event.from_json(line))
        except ValueError:
            continue
    return events
