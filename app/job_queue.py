"""A queue of jobs run one after another through one :class:`app.jobs.JobRunner`.

Each submitted job gets an id and a config file ``<workspace.jobs>/<id>.json``. Every change of a
job's state is appended to ``<workspace.jobs>/history.jsonl`` (one JSON object per line, the last
line of an id wins), so the list survives restarts. Jobs that were queued or running when the app
last stopped come back as ``interrupted`` (and can be resumed); nothing starts by itself.
A job that ends without finishing (failed, killed, cancelled before it could save, interrupted)
leaves its run.json saying so (:func:`core.runs.settle_run`), not ``running`` forever.
A job starts when the app's :class:`app.compute_slot.ComputeSlot` is free (an export of the
Export page may be running). The Export page records its own jobs in the same history
(:func:`append_to_history`); the queue lists them (:meth:`JobQueue.adopt`) but never runs,
cancels or resumes them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.compute_slot import SHARED, ComputeSlot
from app.jobs import JobRunner
from core.events import Event
from core.runs import RUN_FILE, read_json, settle_run

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
FINAL_STATUSES = ("done", "failed", "cancelled", "interrupted")
RESUMABLE_KINDS = ("finetune", "distill", "prune", "curve")
OUTPUT_TAKEN = "output_taken"
"""Summary flag of a job that failed because its output folder held another run."""
COMPACT_FACTOR = 4
"""The history file is rewritten when it has this many lines per job (plus slack)."""


@dataclass
class JobRecord:
    """One job as the queue and its history know it."""

    id: str
    kind: str
    config: dict[str, Any]
    status: str = "queued"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    runner_pid: int | None = None
    """The app process that runs this job outside the queue (an export of the Export page);
    ``None`` for the queue's own jobs."""

    @property
    def resumable(self) -> bool:
        """Cancelled, failed or interrupted training with an output folder of its own to
        continue (not one that held another run when it started: :meth:`JobQueue.can_resume`
        also knows whether a later job resumed it)."""
        return (
            self.status in ("cancelled", "failed", "interrupted")
            and self.kind in RESUMABLE_KINDS
            and bool(self.config.get("out"))
            and not self.summary.get(OUTPUT_TAKEN)
        )

    @property
    def out(self) -> str | None:
        return self.config.get("out")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> JobRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in body.items() if k in names})


def new_job_id(kind: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


def append_to_history(jobs_dir: Path, record: JobRecord) -> None:
    """Append ``record``'s current state to the history in ``jobs_dir`` (the last line of an id
    wins); raises ``OSError`` when it cannot be written."""
    with (Path(jobs_dir) / HISTORY_FILE).open("a", encoding="utf-8") as handle:
        handle.write(record.to_json() + "\n")


def output_taken(record: JobRecord, pid: int | None) -> bool:
    """Whether a job that did not resume found its output folder holding a run of another
    process (its child ``pid`` would have recorded itself as the run's owner)."""
    if record.config.get("resume") or not record.out:
        return False
    run = read_json(Path(record.out) / RUN_FILE)
    return bool(run) and (pid is None or run.get("pid") != pid)


def runs_elsewhere(record: JobRecord) -> bool:
    """Whether this app process runs ``record`` outside the queue (the Export page)."""
    return record.runner_pid == os.getpid()


class JobQueue(QObject):
    """Runs submitted jobs in order and keeps their history.

    Args:
        jobs_dir: where job configs and ``history.jsonl`` live (``workspace.jobs``).
        program: the job program for :class:`JobRunner` (tests inject ``tests/fake_job.py``).
        grace_ms: see :class:`JobRunner`.
        env: extra environment variables for the jobs (see :class:`JobRunner`).
        slot: whom to take turns with (default: the app's :data:`app.compute_slot.SHARED`).
        parent: Qt parent.
    """

    sig_job_added = Signal(object)
    """A new :class:`JobRecord` (queued)."""
    sig_job_updated = Signal(object)
    """A :class:`JobRecord` whose status or summary changed."""
    sig_job_started = Signal(object)
    sig_event_received = Signal(str, object)
    """``(job id, core.events.Event)`` of the running job."""
    sig_job_finished = Signal(object)
    """The :class:`JobRecord` of a job that just ended (done, cancelled or failed)."""

    def __init__(
        self,
        jobs_dir: Path,
        *,
        program: Sequence[str] | None = None,
        grace_ms: int = 5000,
        env: Mapping[str, str] | None = None,
        slot: ComputeSlot | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.slot = slot if slot is not None else SHARED
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.history_path = self.jobs_dir / HISTORY_FILE
        self.runner = JobRunner(program, grace_ms=grace_ms, env=env, parent=self)
        self.runner.sig_event_received.connect(self._on_runner_event)
        self.runner.sig_job_finished.connect(self._on_runner_finished)
        self.records: dict[str, JobRecord] = self._load_history()
        self.current: JobRecord | None = None

    # -- public API --------------------------------------------------------------------------

    def submit(self, config: dict[str, Any]) -> JobRecord:
        """Queue a job config (it must have a ``kind``); starts it when nothing runs."""
        kind = str(config.get("kind") or "job")
        record = JobRecord(id=new_job_id(kind), kind=kind, config=dict(config))
        self.config_path(record.id).write_text(json.dumps(record.config, indent=2), "utf-8")
        self.records[record.id] = record
        self._persist(record)
        self.sig_job_added.emit(record)
        self._start_next()
        return record

    def resume(self, job_id: str) -> JobRecord:
        """Submit a resumable job's config again with ``"resume": true``."""
        record = self.records[job_id]
        if not self.can_resume(record):
            raise ValueError(f"job {job_id} ({record.status}) cannot be resumed")
        return self.submit({**record.config, "resume": True})

    def can_resume(self, record: JobRecord) -> bool:
        """:attr:`JobRecord.resumable`, and no later job has resumed its run (or finished one in
        its folder): only the newest job of a run continues it."""
        return record.resumable and not any(
            other.out == record.out
            and other.submitted > record.submitted
            and (other.config.get("resume") or other.status == "done")
            for other in self.records.values()
        )

    def adopt(self, record: JobRecord) -> None:
        """List (or update) a job that another page runs and records in the history itself
        (the Export wizard); it is never started, persisted or cancelled here."""
        known = record.id in self.records
        self.records[record.id] = record
        (self.sig_job_updated if known else self.sig_job_added).emit(record)

    def can_cancel(self, record: JobRecord) -> bool:
        """A job of this queue that is queued or running (not one run elsewhere)."""
        return record is self.current or (record.status == "queued" and record.runner_pid is None)

    def cancel(self, job_id: str) -> None:
        """Cancel a queued job now, or ask the running one to stop."""
        record = self.records.get(job_id)
        if record is None or not self.can_cancel(record):
            return
        if record is self.current:
            self.runner.cancel()
        elif record.status == "queued":
            self._set_status(record, "cancelled", {"message": "cancelled before it started"})

    def pending(self) -> list[JobRecord]:
        return sorted(
            (r for r in self.records.values() if r.status == "queued" and r.runner_pid is None),
            key=lambda r: r.submitted,
        )

    def history(self) -> list[JobRecord]:
        """All jobs, newest first."""
        return sorted(self.records.values(), key=lambda r: r.submitted, reverse=True)

    def waiting_for(self) -> str | None:
        """What holds the compute slot while the next queued job waits for it (an export)."""
        return self.slot.running if self.slot.is_waiting(self) else None

    def config_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def shutdown(self) -> None:
        """Stop a running job (the app closes); it is recorded as interrupted (resumable)."""
        self.slot.release(self)
        if self.current is not None:
            record = self.current
            self.runner.sig_job_finished.disconnect(self._on_runner_finished)
            self.runner.shutdown()
            self.current = None
            summary = {"message": "the app was closed"}
            self._settle_run(record, "interrupted", summary, self.runner.pid)
            self._set_status(record, "interrupted", summary)

    # -- internals ----------------------------------------------------------------------------

    def _start_next(self) -> None:
        if self.current is not None or self.runner.is_running() or not self.pending():
            return
        self.slot.request(self, self._start_first_pending, "a job on the Jobs page")

    def _start_first_pending(self) -> None:
        """Our turn on the slot: start the oldest queued job (give the turn back if none is)."""
        queue = self.pending()
        if self.current is not None or self.runner.is_running() or not queue:
            if self.current is None:
                self.slot.release(self)
            return
        record = queue[0]
        self.current = record
        record.started = time.time()
        self._set_status(record, "running")
        self.sig_job_started.emit(record)
        self.runner.start(self.config_path(record.id), record.id)

    @Slot(object)
    def _on_runner_event(self, event: Event) -> None:
        if self.current is not None:
            self.sig_event_received.emit(self.current.id, event)

    @Slot(str, object)
    def _on_runner_finished(self, status: str, summary: dict[str, Any]) -> None:
        record, self.current = self.current, None
        if record is not None:
            record.finished = time.time()
            summary = dict(summary)
            if status != "done":
                self._record_outcome(record, status, summary)
            self._set_status(record, status, summary)
            self.sig_job_finished.emit(record)
        self.slot.release(self)  # someone waiting (an export) goes first, then our next job
        self._start_next()

    def _settle_run(
        self, record: JobRecord, status: str, summary: dict[str, Any], pid: int | None
    ) -> None:
        """Bring the run.json of a job that ended unfinished up to date (``pid``: its child)."""
        message = str(summary.get("message") or f"the job {status}")
        if record.out and settle_run(Path(record.out), status, message, pid):
            log.info("run %s recorded as %s", record.out, status)

    def _record_outcome(self, record: JobRecord, status: str, summary: dict[str, Any]) -> None:
        """What an unfinished job leaves behind: its run settled, or, when its output folder
        held another run (it refused to start), a flag and that run left alone."""
        if not output_taken(record, self.runner.pid):
            self._settle_run(record, status, summary, self.runner.pid)
            return
        summary[OUTPUT_TAKEN] = True
        summary["message"] = (
            f"{record.out} already holds another run; start the job again with a new output "
            "folder (Resume on the job that made that run continues it)"
        )

    def _set_status(
        self, record: JobRecord, status: str, summary: dict[str, Any] | None = None
    ) -> None:
        record.status = status
        if summary is not None:
            record.summary = dict(summary)
        self._persist(record)
        self.sig_job_updated.emit(record)

    def _persist(self, record: JobRecord) -> None:
        append_to_history(self.jobs_dir, record)

    def _load_history(self) -> dict[str, JobRecord]:
        records: dict[str, JobRecord] = {}
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return records
        for line in lines:
            try:
                record = JobRecord.from_dict(json.loads(line))
            except (ValueError, TypeError):
                log.warning("skipping a damaged line of %s", self.history_path)
                continue
            records[record.id] = record
        for record in records.values():
            if record.status not in FINAL_STATUSES and not runs_elsewhere(record):
                stopped = f"the app stopped while this job was {record.status}"
                if record.status == "running":  # its child may have been killed with the app
                    self._settle_run(record, "interrupted", {"message": stopped}, None)
                record.status = "interrupted"
                record.summary.setdefault("message", stopped)
        if len(lines) > COMPACT_FACTOR * len(records) + 20:
            self._compact(records)
        return records

    def _compact(self, records: dict[str, JobRecord]) -> None:
        """Rewrite the history with one line per job (it grows by a line per status change)."""
        tmp = self.history_path.with_suffix(".tmp")
        ordered = sorted(records.values(), key=lambda r: r.submitted)
        tmp.write_text("".join(r.to_json() + "\n" for r in ordered), encoding="utf-8")
        tmp.replace(self.history_path)
