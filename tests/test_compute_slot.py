"""One heavy job at a time: the Jobs queue and the Export wizard take turns (app.compute_slot)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.compute_slot import ComputeSlot


def test_turns_are_first_come_first_served() -> None:
    slot, started = ComputeSlot(), []
    a, b, c = object(), object(), object()
    assert slot.request(a, lambda: started.append("a"), "job a") is True
    assert slot.request(b, lambda: started.append("b"), "job b") is False
    assert slot.request(c, lambda: started.append("c"), "job c") is False
    assert slot.request(b, lambda: started.append("b again"), "job b") is False  # one turn each
    assert started == ["a"] and slot.running == "job a" and slot.is_waiting(b)
    assert slot.request(a, lambda: started.append("a2"), "job a2") is True  # still a's turn
    slot.release(b)  # b gives up its turn before it came
    assert not slot.is_waiting(b)
    slot.release(a)
    assert started == ["a", "a2", "c"] and slot.holds(c) and slot.running == "job c"
    slot.release(a)  # not a's turn any more: nothing changes
    assert slot.holds(c)
    slot.release(c)
    assert slot.running is None


def test_a_turn_that_ends_at_once_hands_on_to_the_next() -> None:
    slot, started = ComputeSlot(), []
    a, b, c = object(), object(), object()
    slot.request(a, lambda: None, "a")
    slot.request(b, lambda: (started.append("b"), slot.release(b)), "b")  # fails to start
    slot.request(c, lambda: started.append("c"), "c")
    slot.release(a)
    assert started == ["b", "c"] and slot.holds(c)


FAKE_EXPORT = [sys.executable, str(Path(__file__).resolve().parent / "fake_export_job.py")]


@pytest.fixture
def export_page(qtbot, studio_workspace, monkeypatch):
    from app.pages.export import ExportPage
    from tests.test_export_page import exportable

    monkeypatch.setenv("FAKE_EXPORT_DELAY", "0.02")
    exportable(studio_workspace.runs, "20261123-0900-finetune")
    slot = ComputeSlot()
    page = ExportPage(studio_workspace, program=FAKE_EXPORT, grace_ms=1500, slot=slot)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.run_tree.topLevelItemCount() > 0)
    yield page
    page.shutdown()


def start_export(page, folder: Path, name: str = "waited") -> None:
    from app.pages.export import OPTIONS

    page.select_run(page.workspace.runs / "20261123-0900-finetune")
    page.next_button.click()
    assert page.current_step() == OPTIONS
    page.fp32_check.setChecked(False)
    page.folder_edit.setText(str(folder))
    page.name_edit.setText(name)
    page.next_button.click()


def make_queue(workspace, program, slot):
    from app.job_queue import JobQueue

    return JobQueue(workspace.jobs, program=program, grace_ms=1500, slot=slot)


def test_an_export_waits_for_the_running_training_job(
    qtbot, export_page, studio_workspace, fake_job_program, tmp_path
) -> None:
    queue = make_queue(studio_workspace, fake_job_program, export_page.slot)
    record = queue.submit({"kind": "finetune", "epochs": 2, "steps": 4, "delay": 0.1})
    assert record.status == "running"
    start_export(export_page, tmp_path)
    assert export_page.is_running() and not export_page.runner.is_running()
    assert export_page.phase_label.text().startswith("Waiting for a job on the Jobs page")
    assert export_page.cancel_button.isEnabled()
    with qtbot.waitSignal(export_page.sig_export_finished, timeout=30000) as finished:
        pass
    assert finished.args[0] == "done" and record.status == "done"
    export_jobs = sorted(studio_workspace.jobs.glob("export-*.json"))
    assert len(export_jobs) == 1 and (tmp_path / "waited-int8" / "bundle.json").is_file()
    log = export_page.log.toPlainText()
    assert "waiting for a job on the Jobs page to finish" in log
    # the export's process started only after the training job had finished
    assert (tmp_path / "waited-int8" / "bundle.json").stat().st_mtime >= record.finished
    queue.shutdown()


def test_a_queued_job_waits_for_the_running_export_and_a_waiting_export_can_be_cancelled(
    qtbot, export_page, studio_workspace, fake_job_program, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("FAKE_EXPORT_DELAY", "0.05")
    queue = make_queue(studio_workspace, fake_job_program, export_page.slot)
    start_export(export_page, tmp_path)
    assert export_page.runner.is_running()
    record = queue.submit({"kind": "finetune", "epochs": 1, "steps": 2})
    assert record.status == "queued" and queue.slot.running == "the export"
    with qtbot.waitSignal(queue.sig_job_finished, timeout=30000):
        pass
    assert record.status == "done" and not export_page.is_running()
    assert record.started >= (tmp_path / "waited-int8" / "bundle.json").stat().st_mtime

    # an export waiting for its turn is cancelled without ever starting
    slow = queue.submit({"kind": "finetune", "epochs": 3, "steps": 4, "delay": 0.1})
    export_page.another_button.click()
    start_export(export_page, tmp_path, "never")
    assert export_page.slot.is_waiting(export_page)
    with qtbot.waitSignal(export_page.sig_export_finished, timeout=5000) as cancelled:
        export_page.cancel_button.click()
    assert cancelled.args[0] == "cancelled" and not export_page.slot.is_waiting(export_page)
    assert "before it started" in export_page.run_message.text()
    assert not (tmp_path / "never-int8").exists()
    queue.cancel(slow.id)
    with qtbot.waitSignal(queue.sig_job_finished, timeout=15000):
        pass
    assert queue.slot.running is None
    assert json.loads(queue.config_path(slow.id).read_text())["epochs"] == 3


def test_the_jobs_page_says_what_its_queued_job_waits_for(
    qtbot, studio_workspace, fake_job_program, tmp_path, monkeypatch
) -> None:
    """Both pages on the app's shared slot, as in the main window."""
    from app.compute_slot import SHARED
    from app.pages.export import ExportPage
    from app.pages.jobs import JobsPage
    from tests.test_export_page import exportable

    monkeypatch.setenv("FAKE_EXPORT_DELAY", "0.1")
    exportable(studio_workspace.runs, "20261123-0900-finetune")
    export = ExportPage(studio_workspace, program=FAKE_EXPORT, grace_ms=1500)
    jobs = JobsPage(studio_workspace, program=fake_job_program, grace_ms=1500)
    for page in (export, jobs):
        qtbot.addWidget(page)
    qtbot.waitUntil(lambda: export.run_tree.topLevelItemCount() > 0)
    start_export(export, tmp_path)
    assert export.slot is SHARED and jobs.queue.slot is SHARED and export.runner.is_running()
    record = jobs.submit({"kind": "finetune", "epochs": 1, "steps": 2})
    assert record.status == "queued"
    jobs.job_list.setCurrentItem(jobs._items[record.id])
    assert "queued, waiting for the export to finish" in jobs.job_title.text()
    with qtbot.waitSignal(jobs.queue.sig_job_finished, timeout=30000):
        pass
    assert record.status == "done" and "waiting" not in jobs.job_title.text()
    export.shutdown()
    jobs.shutdown()
