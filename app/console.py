"""Human-readable rendering of job events on a terminal (the CLI's ``train``, ``prune`` ...)."""

from __future__ import annotations

import sys
from typing import IO

from core.events import Event

_SHOWN_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "val_ece", "lr")


class ConsoleEvents:
    """An :class:`core.events.EventWriter` listener that prints one line per interesting event."""

    def __init__(self, stream: IO[str] | None = None, progress_every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.progress_every_s = progress_every_s
        self._last_progress = 0.0

    def __call__(self, event: Event) -> None:
        import time

        data = event.data
        if event.type == "progress":
            if not data.get("total"):
                return  # nothing to do (an index already up to date): no "0/0" line
            now = time.monotonic()
            if now - self._last_progress < self.progress_every_s and data.get("done") != data.get(
                "total"
            ):
                return
            self._last_progress = now
            rate = f", {data['images_per_s']:.0f} img/s" if data.get("images_per_s") else ""
            epoch = f"epoch {event.epoch} " if event.epoch else ""
            self._print(
                f"  {epoch}{data.get('phase', '')} {data.get('done')}/{data.get('total')}{rate}"
            )
        elif event.type == "metric":
            shown = ", ".join(
                f"{k} {data[k]:.4g}" for k in _SHOWN_METRICS if isinstance(data.get(k), int | float)
            )
            extra = ", ".join(
                f"{k} {v:.4g}"
                for k, v in data.items()
                if k in ("macs", "params", "step") and isinstance(v, int | float)
            )
            self._print(f"epoch {event.epoch}: {shown}" + (f", {extra}" if extra else ""))
        elif event.type == "log":
            level = data.get("level", "info")
            prefix = "" if level == "info" else f"{level}: "
            self._print(f"{prefix}{data.get('message', '')}")
        elif event.type == "error":
            self._print(f"error: {data.get('message', '')}")

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
