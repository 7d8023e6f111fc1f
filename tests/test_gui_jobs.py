"""The Jobs page driven like a user would (pytest-qt), with tests/fake_job.py as the job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSpinBox, QWidget

from app.pages.job_forms import JOB_KINDS, validate_config
from app.pages.jobs import PROGRESS_STEPS, JobsPage, job_progress
from core.events import Event

TIMEOUT_MS = 20_000


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name in ("real", "fake"):
        (tmp_path / "data" / name).mkdir(parents=True)
    return tmp_path / "data"


@pytest.fixture
def page(qtbot, studio_workspace, fake_job_program) -> JobsPage:
    widget = JobsPage(studio_workspace, program=fake_job_program, grace_ms=3000)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget


def fake_config(page: JobsPage, **extra) -> dict:
    """A finetune config for the fake job with an output folder of its own (extra keys steer
    tests/fake_job.py)."""
    form = page.form_by_kind["finetune"]
    form.reset_output()
    return {**form.config(), "data": "unused", **extra}


def test_form_validates_next_to_the_fields(qtbot, page, data_dir):
    form = page.new_job("finetune")
    form.set_value("data", str(data_dir.parent / "missing"))
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert form.error_text("data") == "⚠ folder not found"
    assert page.queue.records == {}

    only_one_class = data_dir.parent / "one"
    (only_one_class / "real").mkdir(parents=True)
    form.set_value("data", str(only_one_class))
    assert not form.validate()
    assert form.error_text("data") == "⚠ needs one subfolder per class (found 1)"

    form.set_value("data", str(data_dir))
    assert form.validate()
    assert form.error_text("data") == ""
    # advanced options stay folded away until asked for, but are part of the config
    seed = form.findChild(QSpinBox, "field_seed")
    assert not seed.isVisibleTo(form)
    form.advanced_toggle.click()
    assert seed.isVisibleTo(form)
    config = form.config()
    assert config["kind"] == "finetune" and config["resume"] is False
    assert config["seed"] == 0 and config["jpeg_prob"] == 0.0
    assert (config["optimizer"], config["weight_decay"], config["ema"]) == ("adamw", 0.05, 0.0)
    from training.config import FINETUNE_DEFAULTS

    defaults = (
        "optimizer",
        "weight_decay",
        "ema",
        "sam",
        "train_share",
        "device",
        "outlier_loss",
        "monitor",
    )
    assert all(config[k] == FINETUNE_DEFAULTS[k] for k in defaults)
    assert config["device"] == "auto"  # the GPU when there is one
    form.set_value("device", "cpu")
    assert form.validate() and form.config()["device"] == "cpu"
    for kind in ("prune", "distill"):  # every training job can be kept off (or put on) the GPU
        assert "device" in {f.key for f in JOB_KINDS[kind][1] if f.advanced}
    form.set_value("train_share", 0.5)  # a learning-curve point: half of the train split
    assert form.validate() and form.config()["train_share"] == 0.5
    assert Path(config["out"]).parent == page.workspace.runs
    assert set(config) == {"kind", "resume", *(f.key for f in JOB_KINDS["finetune"][1])}
    # leave a generator out (for the quality report's unseen-generator rows): a class folder
    assert config["leave_out"] is None
    form.set_value("leave_out", "midjourney")
    assert not form.validate()
    assert form.error_text("leave_out") == "⚠ not a class folder of the data set: midjourney"
    class_name = sorted(p.name for p in data_dir.iterdir() if p.is_dir())[0]
    form.set_value("leave_out", f" {class_name} ")
    assert form.validate() and form.config()["leave_out"] == class_name
    # outlier classes: one generator or several (one per domain), separated by commas
    others = ["sd14", "stylegan1"]
    for name in others:
        (data_dir / name).mkdir()
    form.set_value("outlier_class", f"{others[0]}, midjourney")
    assert not form.validate()
    assert form.error_text("outlier_class") == "⚠ not a class folder of the data set: midjourney"
    form.set_value("outlier_class", ",".join(others))
    assert form.validate() and form.config()["outlier_class"] == ",".join(others)


def test_validate_config_ranges_and_runs(tmp_path):
    errors = validate_config(
        "prune",
        {
            "run": str(tmp_path),
            "macs_ratio": 1.5,
            "steps": 2.5,
            "epochs": 1,
            "importance": "random",
            "out": "",
        },
    )
    assert errors == {
        "run": "not a run folder (no run.json)",
        "macs_ratio": "at most 0.95",
        "steps": "a whole number is needed",
        "importance": "one of magnitude, group_norm, taylor, lamp",
        "out": "required",
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}", encoding="utf-8")
    (run / "x").write_text("", encoding="utf-8")
    ok = {"run": str(run), "int8": True, "out": str(tmp_path / "bundle")}
    assert validate_config("export", ok) == {}
    assert validate_config("export", {**ok, "out": str(run)}) == {
        "out": "folder is not empty; choose a new one"
    }
    # resuming into an existing run folder is the point of resume
    cfg = {
        "run": str(run),
        "macs_ratio": 0.5,
        "steps": 3,
        "epochs": 2,
        "importance": "magnitude",
        "out": str(run),
        "resume": True,
    }
    assert validate_config("prune", cfg) == {}


def test_forms_refuse_runs_still_running_and_unwritable_outputs(tmp_path):
    import os
    import socket

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    (teacher / "run.json").write_text(json.dumps({"status": "running", **owner}), "utf-8")
    config = {"teacher": str(teacher), "data": "x", "out": "/proc/deepfake-studio/run"}
    errors = validate_config("distill", config)
    assert errors["teacher"] == "this run is still running; wait until it has finished"
    assert errors["out"] == "cannot write in /proc; choose another folder"
    (teacher / "run.json").write_text(json.dumps({"status": "cancelled"}), "utf-8")
    assert "teacher" not in validate_config("distill", config)  # its best weights are a model
    assert "run" not in validate_config("prune", {"run": str(teacher)})
    fine = {"out": str(tmp_path / "new" / "run")}
    assert "out" not in validate_config("finetune", fine)
    assert validate_config("finetune", {"out": "/proc/x"})["out"].startswith("cannot write in")


def test_report_form_takes_several_models_and_a_new_html_file(qtbot, studio_workspace, tmp_path):
    from app.pages.job_forms import JobForm

    run, bundle, data = tmp_path / "run", tmp_path / "bundle", tmp_path / "data"
    for folder, marker in ((run, "run.json"), (bundle, "bundle.json")):
        folder.mkdir()
        (folder / marker).write_text("{}", encoding="utf-8")
    for name in ("real", "fake"):
        (data / name).mkdir(parents=True)
    taken = tmp_path / "old.html"
    taken.write_text("", encoding="utf-8")
    good = {"models": [str(run), str(bundle)], "data": str(data), "split": "test",
            "out": str(tmp_path / "new.html")}  # fmt: skip
    assert validate_config("report", good) == {}
    assert validate_config("report", {**good, "models": [], "out": str(taken)}) == {
        "models": "required: at least one run or bundle folder",
        "out": "exists; choose a new name",
    }
    assert validate_config("report", {**good, "models": [str(data)], "out": "r.txt"}) == {
        "models": f"not a run or bundle folder: {data}",
        "out": "must end in .html",
    }
    form = JobForm("report", studio_workspace)
    qtbot.addWidget(form)
    out = Path(form.value("out"))
    assert out.parent == studio_workspace.reports and out.suffix == ".html"
    form.set_values({"models": [str(run), str(bundle)], "data": str(data)})
    assert form.value("models") == [str(run), str(bundle)]  # one text box, "; " between
    assert form.validate()
    assert form.config()["models"] == [str(run), str(bundle)]


def test_start_button_runs_the_job_and_curves_get_the_data(qtbot, page, data_dir):
    form = page.new_job("finetune")
    form.set_values({"data": str(data_dir), "epochs": 4})
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    record = blocker.args[0]
    assert record.status == "done"
    config = json.loads(page.queue.config_path(record.id).read_text(encoding="utf-8"))
    assert config["data"] == str(data_dir) and config["epochs"] == 4
    # a fresh output folder is proposed for the next job
    assert form.value("out") != config["out"]

    epochs = np.array([1, 2, 3, 4], dtype=float)
    x, y = page.curve_data("val_acc")
    np.testing.assert_allclose(x, epochs)
    np.testing.assert_allclose(y, 0.9 - 0.4 / epochs, atol=1e-4)
    np.testing.assert_allclose(page.curve_data("train_loss")[1], 1.0 / epochs, atol=1e-4)
    np.testing.assert_allclose(page.curve_data("lr")[1], 0.01 / epochs, atol=1e-6)
    # the timer draws the buffers: the pyqtgraph curve holds the same points
    curve = page.plots["accuracy"].curves["val_acc"]
    qtbot.waitUntil(lambda: curve.getData()[0] is not None and len(curve.getData()[0]) == 4)
    _, drawn_y = curve.getData()
    np.testing.assert_allclose(drawn_y, 0.9 - 0.4 / epochs, atol=1e-4)
    # redraws are batched, not one per event
    assert page.plots["accuracy"].flushes <= 4

    assert page.progress.value() == PROGRESS_STEPS
    log = page.log_view.toPlainText()
    assert f"workspace: {page.workspace.root}" in log  # the child gets this window's workspace
    assert "epoch 4: train_loss 0.25" in log
    assert "this line is not JSON" in log
    item = page.job_list.topLevelItem(0)
    assert item.text(0) == "done"


def test_progress_bar_moves_and_shows_speed_and_eta(qtbot, page):
    values: list[int] = []
    page.progress.valueChanged.connect(values.append)
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS):
        page.submit(fake_config(page, epochs=2, steps=5, delay=0.03))
        qtbot.waitUntil(
            lambda: all(w in page.progress_label.text() for w in ("epoch", "images/s", "ETA")),
            timeout=TIMEOUT_MS,
        )
    # the bar spans both epochs: 10 steps, each a tenth
    assert values == [100 * i for i in range(1, 11)]


def test_cancel_then_resume(qtbot, page, tmp_path):
    out = tmp_path / "run"
    record = page.submit(fake_config(page, epochs=8, steps=3, delay=0.15, out=str(out)))
    qtbot.waitUntil(lambda: len(page.curve_data("val_acc")[0]) >= 1, timeout=TIMEOUT_MS)
    assert page.cancel_button.isEnabled() and not page.resume_button.isEnabled()
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    assert record.status == "cancelled"
    assert page.resume_button.isEnabled() and not page.cancel_button.isEnabled()
    assert "Press Resume" in page.log_view.toPlainText()
    done_before = record.summary["epochs_done"]
    # the final state, not the last progress line (no speed, no ETA)
    assert page.progress_label.text().startswith("cancelled during epoch ")
    assert "ETA" not in page.progress_label.text()
    assert page.progress.text().startswith("cancelled at ")

    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    resumed = blocker.args[0]
    assert resumed.id != record.id and resumed.status == "done"
    assert resumed.config["resume"] is True and resumed.config["out"] == str(out)
    assert f"resuming after epoch {done_before}" in page.log_view.toPlainText()
    assert page.progress.text() == "done" and page.progress_label.text().startswith("done")
    # the resumed job shows the whole run: epochs from metrics.csv, then its own
    assert page.curve_data("val_acc")[0].tolist() == list(range(1, 9))
    np.testing.assert_allclose(
        page.curve_data("val_acc")[1], 0.9 - 0.4 / np.arange(1, 9), atol=1e-4
    )
    # the cancelled job's run was continued to its end: it no longer offers Resume
    page.job_list.setCurrentItem(page._items[record.id])
    assert page.shown_job == record.id and not page.resume_button.isEnabled()
    assert "Press Resume" not in page.log_view.toPlainText()


def test_crash_shows_the_stderr_tail(qtbot, page):
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        page.submit(fake_config(page, epochs=3, crash_at_epoch=2))
    assert blocker.args[0].status == "failed"
    log = page.log_view.toPlainText()
    assert "FAILED: the job exited with status 1 without reporting a result" in log
    assert "RuntimeError: CUDA out of memory (fake crash)" in log
    assert page.job_list.topLevelItem(0).text(0) == "failed"
    assert page.progress_label.text().startswith("failed during epoch 1/3")  # died starting 2
    assert page.progress.text().startswith("failed at ")


def test_queue_order_and_history_after_recreating_the_page(
    qtbot, page, studio_workspace, fake_job_program, tmp_path
):
    finished: list[str] = []
    page.sig_job_finished.connect(lambda r: finished.append(r.config["tag"]))
    first = page.submit(fake_config(page, tag="first", epochs=2, delay=0.02))
    second = page.submit(fake_config(page, tag="second", epochs=1))
    assert page.job_list.topLevelItem(0).text(0) == "queued"
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT_MS)
    assert finished == ["first", "second"]
    page.close()

    again = JobsPage(studio_workspace, program=fake_job_program)
    qtbot.addWidget(again)
    rows = [again.job_list.topLevelItem(i) for i in range(again.job_list.topLevelItemCount())]
    assert [r.data(0, Qt.ItemDataRole.UserRole) for r in rows] == [second.id, first.id]
    assert [r.text(0) for r in rows] == ["done", "done"]
    # selecting a finished job shows it (no run folder: empty curves, its outcome in the log)
    again.job_list.setCurrentItem(rows[1])
    assert again.shown_job == first.id
    assert "finished" in again.log_view.toPlainText()


def test_job_progress_spans_epochs_and_adds_remaining_epochs_to_the_eta():
    event = Event(
        "progress",
        "j",
        epoch=2,
        step=5,
        data={"phase": "train", "done": 5, "total": 10, "eta_s": 30.0},
    )
    fraction, eta = job_progress(event, epochs=4, epoch_s=None)
    assert fraction == pytest.approx((1 + 0.5) / 4)
    assert eta == pytest.approx(30.0 + 2 * 60.0)  # this epoch takes 60 s; two more to go
    # without a number of epochs (prune steps, export phases): the phase's own figures
    assert job_progress(event, epochs=None, epoch_s=None) == (0.5, 30.0)
    # validation phases do not move a training job's bar
    validate = Event("progress", "j", epoch=2, data={"phase": "validate", "done": 0, "total": 1})
    assert job_progress(validate, epochs=4, epoch_s=60.0) == (None, None)
    # the epoch's last step: its length is unknown, the last estimate is used
    last = Event(
        "progress", "j", epoch=3, data={"phase": "train", "done": 10, "total": 10, "eta_s": 0.0}
    )
    assert job_progress(last, epochs=4, epoch_s=50.0) == (pytest.approx(0.75), 50.0)


GUI_DEFAULTS = {"int8", "split"}
"""Fields where the GUI deliberately proposes another default (INT8 bundles for phones; a
report scores the test split rather than every image)."""


@pytest.mark.parametrize(
    ("kind", "module", "name"),
    [
        ("finetune", "training.config", "FINETUNE_DEFAULTS"),
        ("prune", "training.prune", "PRUNE_DEFAULTS"),
        ("distill", "training.distill", "DISTILL_DEFAULTS"),
        ("export", "training.export", "EXPORT_DEFAULTS"),
        ("report", "training.report", "REPORT_DEFAULTS"),
        ("curve", "training.curve", "CURVE_DEFAULTS"),
    ],
)
def test_every_form_key_is_an_option_of_the_training_job(
    qtbot, studio_workspace, kind, module, name
):
    """The jobs refuse unknown options, so a form must not send one (training imports torch)."""
    import importlib

    from app.pages.job_forms import JobForm

    defaults = getattr(importlib.import_module(module), name)
    form = JobForm(kind, studio_workspace)
    qtbot.addWidget(form)
    assert set(form.config()) <= set(defaults), set(form.config()) - set(defaults)
    for field in JOB_KINDS[kind][1]:
        default = defaults[field.key]
        if field.key in GUI_DEFAULTS or default is None:
            continue
        if field.kind in ("int", "float", "bool", "choice"):
            assert form.value(field.key) == default, field.key  # the form starts from the job's


def test_headline_keeps_the_numbers_worth_a_line():
    from app.pages.jobs import headline

    summary = {
        "run_dir": "/r",
        "cancelled": False,
        "test_acc": 0.8125,
        "test_n": 80,
        "val_precision_fake": 0.5,
        "val_acc": 0.84,
        "params": 2467938,
        "best_epoch": 2,
    }
    assert headline(summary) == "test_acc 0.8125, val_acc 0.84, best_epoch 2, params 2.468e+06"
    assert headline({"cancelled": True}) == ""


def test_failed_job_row_explains_itself(qtbot, page):
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS):
        page.submit(fake_config(page, epochs=2, error_at_epoch=1))
    row = page.job_list.topLevelItem(0)
    assert row.text(0) == "failed"
    assert row.toolTip(0) == "the data set has only one class"
    assert page.resume_button.isEnabled()  # a failed training run can go on from its checkpoint
    assert "FAILED: the data set has only one class" in page.log_view.toPlainText()


def test_a_prune_job_draws_its_rows_where_metrics_csv_puts_them(qtbot, page, tmp_path):
    out = tmp_path / "pruned"
    out.mkdir()
    rows = ["step0,0,0,0.66", "step1,0,1,0.63", "step1,1,1,0.7"]
    (out / "metrics.csv").write_text("stage,epoch,step,val_acc\n" + "\n".join(rows) + "\n")
    from app.job_queue import JobRecord

    job = JobRecord("p1", "prune", {"kind": "prune", "epochs": 1, "out": str(out)}, "running")
    page.queue.records[job.id] = job
    page._show_job(job)
    assert page.curve_data("val_acc")[0].tolist() == [0.0, 1.0, 1.5]
    # live rows of the same run land on the same axis: step 2 right after pruning, then its epoch
    for epoch, acc in ((0, 0.5), (1, 0.6)):
        event = Event("metric", "p1", epoch=epoch, data={"step": 2, "val_acc": acc})
        page._on_queue_event_received("p1", event)
    assert page.curve_data("val_acc")[0].tolist() == [0.0, 1.0, 1.5, 2.0, 2.5]
    assert "step 2 epoch 1: val_acc 0.6" in page.log_view.toPlainText()


def _visible_rows(form) -> list:
    """The editor rows of ``form`` that are shown (advanced ones once unfolded)."""
    return [editor.parentWidget() for editor in form._editors.values() if editor.isVisibleTo(form)]


@pytest.mark.parametrize("kind", ["finetune", "curve", "prune"])
def test_forms_scroll_at_the_smallest_window_and_rows_keep_their_height(qtbot, page, kind):
    from PySide6.QtWidgets import QPushButton, QScrollArea

    page.resize(770, 560)  # the page's share of a 960x640 window
    form = page.new_job(kind)
    if hasattr(form, "advanced_toggle"):
        form.advanced_toggle.setChecked(True)
    qtbot.wait(50)
    area = form.parentWidget().parentWidget()
    assert isinstance(area, QScrollArea) and area.widget() is form
    rows = _visible_rows(form)
    assert rows
    for row in rows:
        assert row.height() >= row.sizeHint().height(), row.findChildren(QWidget)[0].objectName()
    viewport = area.viewport()
    for button in form.findChildren(QPushButton):
        right = button.mapTo(viewport, button.rect().topRight()).x()
        assert right <= viewport.width(), f"{button.objectName()} is clipped"
    if kind == "finetune":
        assert form.height() > viewport.height()  # it scrolls instead of squeezing
    assert page.job_list.viewport().height() >= 4 * (page.job_list.fontMetrics().height() + 4)


def test_jobs_are_named_by_what_they_write():
    from app.job_queue import JobRecord
    from app.pages.jobs import job_name

    run = JobRecord(id="20261128-011535-finetune-45d0", kind="finetune",
                    config={"out": "/w/runs/20261128-011534-finetune-c04a"})  # fmt: skip
    assert job_name(run) == "Fine-tune → 20261128-011534-finetune-c04a"  # the run folder's name
    assert job_name(JobRecord(id="j", kind="prune", config={})) == "Prune"
