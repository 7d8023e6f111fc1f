"""app.jobs.JobRunner and app.job_queue.JobQueue against tests/fake_job.py (a real child process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.job_queue import JobQueue
from app.jobs import JobRunner

TIMEOUT_MS = 20_000


def write_job(tmp_path: Path, name: str = "job1", **config) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"kind": "finetune", **config}), encoding="utf-8")
    return path


def run_to_end(qtbot, runner: JobRunner, job_file: Path) -> tuple[str, dict, list]:
    events: list = []
    runner.sig_event_received.connect(events.append)
    with qtbot.waitSignal(runner.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        runner.start(job_file)
    status, summary = blocker.args
    return status, summary, events


def test_events_are_parsed_in_order(qtbot, tmp_path, fake_job_program):
    runner = JobRunner(fake_job_program)
    status, summary, events = run_to_end(qtbot, runner, write_job(tmp_path, epochs=3, steps=4))
    assert status == "done"
    assert summary == {"cancelled": False, "best_val_acc": pytest.approx(0.9 - 0.4 / 3, abs=1e-4)}
    types = [e.type for e in events]
    assert types.count("progress") == 12
    assert types[-1] == "done"
    metrics = [e for e in events if e.type == "metric"]
    assert [m.epoch for m in metrics] == [1, 2, 3]
    assert [m.data["train_loss"] for m in metrics] == [1.0, 0.5, 0.3333]
    assert all(e.job == "job1" for e in events)
    progress = [e for e in events if e.type == "progress"]
    assert [(p.epoch, p.data["done"], p.data["total"]) for p in progress] == [
        (epoch, step, 4) for epoch in (1, 2, 3) for step in (1, 2, 3, 4)
    ]
    # a stdout line that is not an event arrives as a log event
    assert any(
        e.type == "log" and e.data["message"].startswith("this line is not JSON") for e in events
    )
    assert not runner.is_running()


def test_crash_without_terminal_event_is_failed_with_stderr_tail(qtbot, tmp_path, fake_job_program):
    runner = JobRunner(fake_job_program)
    status, summary, events = run_to_end(qtbot, runner, write_job(tmp_path, crash_at_epoch=2))
    assert status == "failed"
    assert summary["exit_code"] == 1
    assert "exited with status 1 without reporting a result" in summary["message"]
    assert "RuntimeError: CUDA out of memory (fake crash)" in summary["stderr_tail"]
    assert [e.epoch for e in events if e.type == "metric"] == [1]


def test_error_event_is_failed_with_its_message(qtbot, tmp_path, fake_job_program):
    runner = JobRunner(fake_job_program)
    status, summary, _ = run_to_end(qtbot, runner, write_job(tmp_path, error_at_epoch=1))
    assert status == "failed"
    assert summary["message"] == "the data set has only one class"


def test_cancel_on_stdin_ends_with_cancelled_done(qtbot, tmp_path, fake_job_program):
    runner = JobRunner(fake_job_program)
    events: list = []
    runner.sig_event_received.connect(events.append)
    runner.start(write_job(tmp_path, epochs=50, steps=5, delay=0.05))
    qtbot.waitUntil(lambda: any(e.type == "metric" for e in events), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(runner.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        runner.cancel()
    status, summary = blocker.args
    assert status == "cancelled"
    assert summary["cancelled"] is True and summary["epochs_done"] >= 1
    assert events[-1].type == "done"


def test_cancel_escalates_to_terminate_when_the_child_ignores_stdin(qtbot, tmp_path):
    stubborn = [sys.executable, "-c", "import time; time.sleep(60)"]
    runner = JobRunner(stubborn, grace_ms=200)
    runner.start(write_job(tmp_path))
    qtbot.waitUntil(lambda: runner._process is not None and runner._process.processId() > 0)
    with qtbot.waitSignal(runner.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        runner.cancel()
    status, summary = blocker.args
    assert status == "cancelled"
    assert "stopped before it could save its state" in summary["message"]


def test_missing_program_fails_to_start(qtbot, tmp_path):
    runner = JobRunner(["/nonexistent/deepfake-studio"])
    status, summary, events = run_to_end(qtbot, runner, write_job(tmp_path))
    assert status == "failed"
    assert summary["message"].startswith("could not start /nonexistent/deepfake-studio")
    assert events == []


def test_only_one_job_at_a_time(qtbot, tmp_path, fake_job_program):
    runner = JobRunner(fake_job_program)
    with qtbot.waitSignal(runner.sig_job_finished, timeout=TIMEOUT_MS):
        runner.start(write_job(tmp_path))
        with pytest.raises(RuntimeError, match="still running"):
            runner.start(write_job(tmp_path, "job2"))


def test_queue_runs_jobs_in_order_and_persists_history(qtbot, tmp_path, fake_job_program):
    jobs_dir = tmp_path / "jobs"
    queue = JobQueue(jobs_dir, program=fake_job_program)
    order: list[tuple[str, str]] = []
    queue.sig_job_started.connect(lambda r: order.append(("start", r.config["tag"])))
    queue.sig_job_finished.connect(lambda r: order.append((r.status, r.config["tag"])))
    first = queue.submit({"kind": "finetune", "tag": "a", "epochs": 2, "delay": 0.02})
    second = queue.submit({"kind": "finetune", "tag": "b", "epochs": 1})
    assert (first.status, second.status) == ("running", "queued")
    assert json.loads(queue.config_path(second.id).read_text())["tag"] == "b"
    qtbot.waitUntil(lambda: len(order) == 4, timeout=TIMEOUT_MS)
    assert order == [("start", "a"), ("done", "a"), ("start", "b"), ("done", "b")]
    assert first.finished <= second.started

    reloaded = JobQueue(jobs_dir, program=fake_job_program)
    assert [r.id for r in reloaded.history()] == [second.id, first.id]
    assert [r.status for r in reloaded.history()] == ["done", "done"]
    assert reloaded.records[first.id].summary["cancelled"] is False


def test_cancelled_job_resumes_from_its_checkpoint(qtbot, tmp_path, fake_job_program):
    queue = JobQueue(tmp_path / "jobs", program=fake_job_program)
    metric_epochs: dict[str, list[int]] = {}
    queue.sig_event_received.connect(
        lambda job, e: (
            metric_epochs.setdefault(job, []).append(e.epoch) if e.type == "metric" else None
        )
    )
    out = tmp_path / "run"
    record = queue.submit(
        {"kind": "finetune", "epochs": 6, "steps": 3, "delay": 0.12, "out": str(out)}
    )
    qtbot.waitUntil(lambda: len(metric_epochs.get(record.id, [])) >= 2, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(queue.sig_job_finished, timeout=TIMEOUT_MS):
        queue.cancel(record.id)
    assert record.status == "cancelled" and record.resumable
    done_before = record.summary["epochs_done"]
    assert 2 <= done_before < 6

    with qtbot.waitSignal(queue.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        resumed = queue.resume(record.id)
    assert resumed.config["resume"] is True and resumed.config["out"] == str(out)
    assert blocker.args[0].status == "done"
    assert metric_epochs[resumed.id] == list(range(done_before + 1, 7))
    assert not resumed.resumable
    # the run was continued to its end: the cancelled job no longer offers to resume it
    assert not queue.can_resume(record)
    with pytest.raises(ValueError, match="cannot be resumed"):
        queue.resume(record.id)


def test_interrupted_jobs_come_back_as_interrupted(qtbot, tmp_path, fake_job_program):
    jobs_dir = tmp_path / "jobs"
    queue = JobQueue(jobs_dir, program=fake_job_program)
    running = queue.submit(
        {"kind": "finetune", "epochs": 100, "delay": 0.05, "out": str(tmp_path / "x")}
    )
    waiting = queue.submit({"kind": "export", "run": "x"})
    queued_cancel = queue.submit({"kind": "export", "run": "y"})
    queue.cancel(queued_cancel.id)
    assert queued_cancel.status == "cancelled"
    queue.shutdown()  # the app closes while a job runs: killed, recorded as interrupted
    reloaded = JobQueue(jobs_dir, program=fake_job_program)
    statuses = {r.id: r.status for r in reloaded.history()}
    assert statuses == {
        running.id: "interrupted",
        waiting.id: "interrupted",
        queued_cancel.id: "cancelled",
    }
    assert reloaded.records[running.id].resumable
    assert not reloaded.records[waiting.id].resumable  # export jobs are not resumable
    assert reloaded.pending() == []


def test_history_is_compacted_and_survives_damaged_lines(qtbot, tmp_path):
    from app.job_queue import HISTORY_FILE, JobRecord

    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    lines = []
    for status in ("queued", "running", "done"):
        for job in ("a", "b"):
            record = JobRecord(id=job, kind="finetune", config={}, status=status, submitted=1.0)
            lines.extend([record.to_json()] * 5)
    lines.insert(3, '{"torn line')
    (jobs_dir / HISTORY_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    queue = JobQueue(jobs_dir)
    assert {r.id: r.status for r in queue.history()} == {"a": "done", "b": "done"}
    assert len((jobs_dir / HISTORY_FILE).read_text(encoding="utf-8").splitlines()) == 2


def test_jobs_run_elsewhere_are_listed_but_never_run_or_cancelled_here(qtbot, tmp_path):
    """The Export page records its jobs in the history; the queue only lists them."""
    import os

    from app.job_queue import HISTORY_FILE, JobRecord, append_to_history

    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    ours = JobRecord(id="e1", kind="export", config={}, status="running", runner_pid=os.getpid())
    crashed = JobRecord(id="e0", kind="export", config={}, status="running", runner_pid=1)
    for record in (crashed, ours):
        append_to_history(jobs_dir, record)
    queue = JobQueue(jobs_dir)
    assert queue.records["e1"].status == "running"  # this app runs it (the Export page)
    assert queue.records["e0"].status == "interrupted"  # an app that is gone ran it
    assert queue.records["e0"].summary["message"] == "the app stopped while this job was running"
    assert not queue.can_cancel(queue.records["e1"]) and queue.pending() == []
    queue.cancel("e1")
    assert queue.records["e1"].status == "running"
    lines = (jobs_dir / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    with qtbot.waitSignal(queue.sig_job_updated) as updated:
        queue.adopt(JobRecord(id="e1", kind="export", config={}, status="done"))
    assert updated.args[0].status == "done" and queue.records["e1"].status == "done"
    with qtbot.waitSignal(queue.sig_job_added):
        queue.adopt(JobRecord(id="e2", kind="export", config={}, status="running"))
    assert (jobs_dir / HISTORY_FILE).read_text(encoding="utf-8").splitlines() == lines


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


def test_a_job_that_dies_leaves_its_run_failed_not_running(qtbot, tmp_path, fake_job_program):
    queue = JobQueue(tmp_path / "jobs", program=fake_job_program)
    out = tmp_path / "run"
    with qtbot.waitSignal(queue.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        queue.submit({"kind": "finetune", "crash_at_epoch": 2, "out": str(out)})
    record = blocker.args[0]
    assert record.status == "failed"
    body = run_json(out)
    assert body["status"] == "failed"  # the child wrote "running" and was gone without a word
    assert "without reporting a result" in body["summary"]["message"]
    assert queue.can_resume(record)


def test_a_job_found_interrupted_at_start_up_ends_its_run(tmp_path):
    import socket
    import subprocess

    from app.job_queue import JobRecord, append_to_history

    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = {"pid": gone.pid, "host": socket.gethostname()}
    (out / "run.json").write_text(json.dumps({"status": "running", "summary": {}, **owner}))
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    config = {"kind": "finetune", "out": str(out)}
    append_to_history(jobs_dir, JobRecord("j1", "finetune", config, status="running"))
    queue = JobQueue(jobs_dir)
    assert queue.records["j1"].status == "interrupted" and queue.can_resume(queue.records["j1"])
    body = run_json(out)
    assert body["status"] == "interrupted"
    assert body["summary"]["message"] == "the app stopped while this job was running"


def test_a_job_whose_output_held_another_run_is_not_resumable(qtbot, tmp_path, fake_job_program):
    queue = JobQueue(tmp_path / "jobs", program=fake_job_program)
    out = tmp_path / "run"
    finished: list = []
    queue.sig_job_finished.connect(finished.append)
    first = queue.submit({"kind": "finetune", "epochs": 1, "out": str(out)})
    second = queue.submit({"kind": "finetune", "epochs": 1, "out": str(out)})
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT_MS)
    assert (first.status, second.status) == ("done", "failed")
    assert not second.resumable and not queue.can_resume(second)
    assert "already holds another run" in second.summary["message"]
    assert "--resume" not in second.summary["message"]
    assert run_json(out)["status"] == "done"  # the first job's run is left as it was
