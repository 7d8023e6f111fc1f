"""Where Deepfake Studio keeps its runs, data set indexes, bundles and caches.

Resolution order: an explicit path (the ``--workspace`` flag), then the ``DEEPFAKE_STUDIO_HOME``
environment variable, then the platform's user data folder (``~/.local/share/deepfake-studio`` on
Linux).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "DEEPFAKE_STUDIO_HOME"


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and its well-known sub-folders (created on first use)."""

    root: Path

    @classmethod
    def resolve(cls, override: str | os.PathLike | None = None) -> Workspace:
        if override:
            return cls(Path(override).expanduser().resolve())
        env = os.environ.get(ENV_VAR)
        if env:
            return cls(Path(env).expanduser().resolve())
        from platformdirs import user_data_dir

        return cls(Path(user_data_dir("deepfake-studio", appauthor=False)))

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def runs(self) -> Path:
        return self._sub("runs")

    @property
    def indexes(self) -> Path:
        return self._sub("indexes")

    @property
    def bundles(self) -> Path:
        return self._sub("bundles")

    @property
    def thumbnails(self) -> Path:
        return self._sub("thumbnails")

    @property
    def jobs(self) -> Path:
        return self._sub("jobs")

    @property
    def reports(self) -> Path:
        """Quality reports (``report`` jobs): ``NAME.html`` with its figures in ``NAME.json``."""
        return self._sub("reports")


def nearest_existing(path: Path) -> Path | None:
    """``path`` or its closest ancestor that exists (``None`` if none does)."""
    existing = Path(path)
    while not existing.exists():
        if existing.parent == existing:
            return None
        existing = existing.parent
    return existing


def writable_folder(folder: Path) -> bool:
    """Whether ``folder`` can be created (or written) there: its nearest existing ancestor is
    a folder we can write in (probed: permissions alone lie for root and on /proc)."""
    existing = nearest_existing(folder)
    if existing is None or not existing.is_dir():
        return False
    try:
        with tempfile.TemporaryDirectory(prefix=".write-test-", dir=existing):
            pass
    except OSError:
        return False
    return True
