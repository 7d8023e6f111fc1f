"""Run one job in a child process and turn its JSON-lines stdout into Qt signals (Spyder-style).

The child is ``[*app.frozen.app_command(), "job", JOB.json]`` (injectable for tests). Its stdout
is read as it arrives (partial lines are buffered), each line parsed with
:meth:`core.events.Event.from_json`; a line that is not an event becomes a ``log`` event. The tail
of stderr is kept for the failure report. Nothing here blocks the GUI thread: every step is a
slot on a :class:`QProcess` or :class:`QTimer` signal.

Statuses reported by ``sig_job_finished``: ``done``, ``cancelled`` (a ``done`` event with
``"cancelled": true``) and ``failed`` (an ``error`` event, or an exit without a terminal event:
killed, out of memory, segfault; the summary then carries ``stderr_tail`` and ``exit_code``).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from app.frozen import app_command
from core.events import TERMINAL_TYPES, Event

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 40


class JobRunner(QObject):
    """Starts one job at a time in a :class:`QProcess` and reports its events.

    Args:
        program: argv prefix of the job program; ``"job", JOB.json`` is appended. Defaults to
            this app's own CLI (:func:`app.frozen.app_command`).
        grace_ms: after ``cancel``, how long the child may take to stop on its own before it is
            terminated, and again before it is killed.
        env: extra environment variables for the child (the GUI passes its workspace).
        parent: Qt parent.
    """

    sig_job_started = Signal(str)
    """The job id, once the process runs."""
    sig_event_received = Signal(object)
    """One :class:`core.events.Event` from the child's stdout."""
    sig_stderr_received = Signal(str)
    """Text the child wrote to stderr (as it arrives)."""
    sig_job_finished = Signal(str, object)
    """``(status, summary)``: status is ``done``, ``cancelled`` or ``failed``."""

    def __init__(
        self,
        program: Sequence[str] | None = None,
        *,
        grace_ms: int = 5000,
        env: Mapping[str, str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.program = list(program) if program is not None else app_command()
        self.env = dict(env or {})
        self.grace_ms = grace_ms
        self.job_id: str | None = None
        self.pid: int | None = None
        """The process id of the running (or last) child, once it has started."""
        self._process: QProcess | None = None
        self._last_process: QProcess | None = None
        self._stdout_buffer = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_partial = ""
        self._terminal: Event | None = None
        self._cancel_requested = False
        self._terminated = False
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._on_escalation_timeout)

    # -- public API --------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._process is not None

    def start(self, job_file: str | os.PathLike, job_id: str | None = None) -> None:
        """Start the job described by ``job_file``; raises ``RuntimeError`` if one is running."""
        if self._process is not None:
            raise RuntimeError(f"job {self.job_id} is still running")
        job_file = Path(job_file)
        self.job_id = job_id or job_file.stem
        self._stdout_buffer = b""
        self._stderr_tail.clear()
        self._stderr_partial = ""
        self._terminal = None
        self._cancel_requested = False
        self._terminated = False
        self.pid = None
        self._release_last_process()
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        for key, value in self.env.items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._on_process_stdout)
        process.readyReadStandardError.connect(self._on_process_stderr)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)
        process.started.connect(self._on_process_started)
        self._process = process
        args = [*self.program[1:], "job", str(job_file)]
        log.info("starting job %s: %s %s", self.job_id, self.program[0], " ".join(args))
        process.start(self.program[0], args)

    def cancel(self) -> None:
        """Ask the child to stop (``cancel`` on stdin), then terminate, then kill it."""
        if self._process is None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._process.write(b"cancel\n")
        self._escalation.start(self.grace_ms)

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop a running child now (the app is closing), blocking at most ~``timeout_ms``.

        The child gets ``cancel`` first, so it can save a checkpoint; it is killed if it is
        still running after ``timeout_ms``.
        """
        process = self._process
        if process is None:
            return
        self._cancel_requested = True
        process.write(b"cancel\n")
        if not process.waitForFinished(timeout_ms):
            process.kill()
            process.waitForFinished(1000)

    def _release_last_process(self) -> None:
        last, self._last_process = self._last_process, None
        if last is not None:
            last.setParent(None)  # Python owns it now; it is deleted with its last reference

    def stderr_tail(self) -> str:
        lines = list(self._stderr_tail)
        if self._stderr_partial:
            lines.append(self._stderr_partial)
        return "\n".join(lines)

    # -- process slots ------------------------------------------------------------------------

    @Slot()
    def _on_process_started(self) -> None:
        if self._process is not None:
            self.pid = self._process.processId() or None
        self.sig_job_started.emit(self.job_id or "")

    @Slot()
    def _on_process_stdout(self) -> None:
        if self._process is None:
            return
        self._stdout_buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._stdout_buffer = self._stdout_buffer.split(b"\n")
        for raw in lines:
            self._handle_line(raw.decode("utf-8", errors="replace").rstrip("\r"))

    @Slot()
    def _on_process_stderr(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardError().data()).decode("utf-8", "replace")
        if not text:
            return
        self.sig_stderr_received.emit(text)
        *lines, self._stderr_partial = (self._stderr_partial + text).split("\n")
        self._stderr_tail.extend(line.rstrip("\r") for line in lines)

    def _handle_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            event = Event.from_json(line)
        except ValueError:
            event = Event("log", self.job_id or "", data={"message": line, "level": "info"})
        if event.type in TERMINAL_TYPES and self._terminal is None:
            self._terminal = event
        self.sig_event_received.emit(event)

    @Slot(int, QProcess.ExitStatus)
    def _on_process_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._on_process_stdout()
        self._on_process_stderr()
        if self._stdout_buffer.strip():
            self._handle_line(self._stdout_buffer.decode("utf-8", errors="replace"))
            self._stdout_buffer = b""
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._finish(*self._outcome(exit_code, crashed))

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return  # crashes and kills also arrive through ``finished``
        message = f"could not start {self.program[0]}: {self._process.errorString()}"
        self._finish("failed", {"message": message, "exit_code": None, "stderr_tail": ""})

    @Slot()
    def _on_escalation_timeout(self) -> None:
        process = self._process
        if process is None:
            return
        if process.state() == QProcess.ProcessState.NotRunning:
            return
        if not self._terminated:
            log.warning("job %s ignored cancel; terminating it", self.job_id)
            self._terminated = True
            process.terminate()
            self._escalation.start(self.grace_ms)
        else:
            log.warning("job %s ignored SIGTERM; killing it", self.job_id)
            process.kill()

    # -- outcome --------------------------------------------------------------------------------

    def _outcome(self, exit_code: int, crashed: bool) -> tuple[str, dict[str, Any]]:
        terminal = self._terminal
        if terminal is not None and terminal.type == "done":
            status = "cancelled" if terminal.data.get("cancelled") else "done"
            return status, dict(terminal.data)
        summary: dict[str, Any] = {"exit_code": None if crashed else exit_code}
        summary["stderr_tail"] = self.stderr_tail()
        if terminal is not None:
            summary.update(terminal.data)
            return "failed", summary
        if self._cancel_requested:
            summary["message"] = "cancelled; the job was stopped before it could save its state"
            return "cancelled", summary
        how = "crashed" if crashed else f"exited with status {exit_code}"
        summary["message"] = f"the job {how} without reporting a result"
        return "failed", summary

    def _finish(self, status: str, summary: dict[str, Any]) -> None:
        self._escalation.stop()
        self._terminated = False
        process, self._process = self._process, None
        if process is not None:
            # not deleteLater(): deleting a QProcess from inside its own ``finished`` chain
            # crashes PySide when the runner goes away first; it is released on the next start
            self._last_process = process
        log.info("job %s finished: %s", self.job_id, status)
        self.sig_job_finished.emit(status, summary)
