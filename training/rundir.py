"""Run directories: the on-disk record of one job (see docs/run-directory.md)."""

from __future__ import annotations

import csv
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.runs import owner_stamp, write_json_atomic

RUNTIME_KEYS = frozenset({"resume", "out", "workspace", "threads", "workers", "device"})
"""Settings a resumed run may change: where and how fast it runs, not what or how it learns."""


def new_run_name(kind: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


@dataclass
class RunDir:
    """A run directory and its well-known files."""

    path: Path

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        kind: str,
        config: dict[str, Any],
        parent: str | None = None,
        resume: bool = False,
    ) -> RunDir:
        """Create (or, with ``resume``, reopen) a run directory and write its config."""
        run = cls(Path(path).expanduser().resolve())
        if run.path.exists() and any(run.path.iterdir()) and not resume:
            if (run.path / "run.json").exists():
                raise UserError(
                    f"{run.path} already holds a run; pass --resume to continue it or choose "
                    "another --out"
                )
            raise UserError(f"{run.path} exists and is not empty; choose another --out")
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run folder {run.path}: {exc.strerror}") from None
        if resume and (run.path / "run.json").exists():
            run.refuse_other_settings(config)
            run.update(status="running")
            return run
        write_json_atomic(run.config_path, config)
        write_json_atomic(
            run.path / "run.json",
            {
                "id": run.path.name,
                "kind": kind,
                "parent": parent,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "status": "running",
                "data": config.get("data"),
                "arch": config.get("arch"),
                "summary": {},
                **owner_stamp(),
            },
        )
        return run

    def refuse_other_settings(self, config: dict[str, Any]) -> None:
        """Refuse to resume with settings other than those the run was started with (another
        architecture would overwrite ``model.json`` beside the old weights; another schedule
        would not continue the same run). Settings an older run did not record are not compared."""
        try:
            recorded = self.config()
        except (OSError, ValueError):
            return  # nothing readable to compare against; the checkpoint load will tell
        changed = [
            f"{key} {recorded[key]!r} (now {config[key]!r})"
            for key in sorted(recorded)
            if key in config and key not in RUNTIME_KEYS
            and not _same_setting(recorded[key], config[key])
        ]  # fmt: skip
        if changed:
            raise UserError(
                f"{self.path.name} was started with other settings: {'; '.join(changed)}. "
                "Resuming continues a run exactly as it began: use its own settings (they are in "
                f"{self.config_path}), or start a new run in another folder"
            )

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def split_path(self) -> Path:
        return self.path / "split.json"

    def info(self) -> dict[str, Any]:
        path = self.path / "run.json"
        if not path.exists():
            raise UserError(f"{self.path} is not a run folder (no run.json)")
        return json.loads(path.read_text(encoding="utf-8"))

    def config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into run.json (``summary`` is merged key by key); a run set
        ``running`` records this process as its owner (:func:`core.runs.run_status`)."""
        info = self.info()
        summary = fields.pop("summary", None)
        if fields.get("status") == "running":
            fields.update(owner_stamp())
        info.update(fields)
        if summary:
            info.setdefault("summary", {}).update(summary)
        write_json_atomic(self.path / "run.json", info)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row to metrics.csv, widening the header when new columns appear.

        A row of an epoch/step already there (a resumed run re-runs it) replaces that row where
        it stands, so the rows stay in the order the run made them.
        """
        rows = self.read_metrics()
        same = [index for index, r in enumerate(rows) if _same_step(r, row)]
        rows = [r for r in rows if not _same_step(r, row)]
        rows.insert(same[0] if same else len(rows), {k: _csv_value(v) for k, v in row.items()})
        columns: list[str] = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        tmp = self.metrics_path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.metrics_path)

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def _same_step(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Rows of the same epoch/step replace each other (a resumed run re-runs an epoch)."""
    keys = [k for k in ("stage", "epoch", "step") if k in b]
    return bool(keys) and all(str(a.get(k)) == str(_csv_value(b.get(k))) for k in keys)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _same_setting(recorded: Any, requested: Any) -> bool:
    """Equal as JSON stores them, or two spellings of the same existing path."""
    requested = json.loads(json.dumps(requested))
    if recorded == requested:
        return True
    if isinstance(recorded, str) and isinstance(requested, str):
        first, second = Path(recorded).expanduser(), Path(requested).expanduser()
        return first.exists() and second.exists() and first.resolve() == second.resolve()
    return False
