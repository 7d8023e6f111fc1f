"""The Export wizard, driven by pytest-qt: validation per step, the job(s) it starts through
:class:`app.jobs.JobRunner`, progress, cancel, failures and the summary.

Most tests run ``tests/fake_export_job.py`` (torch-free, scripted events and a fake report) as
the job program; one exports a real trained run through the app's own ``job`` command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.job_queue import HISTORY_FILE
from app.pages.export import OPTIONS, RUN, RUNNING, SUMMARY, ExportPage
from app.pages.export_plan import read_exported
from app.widgets import formatting
from tests.fake_export_job import FP32_BYTES, INT8_BYTES, bundle_meta, report
from tests.run_factory import make_bundle, make_run

FAKE_PROGRAM = [sys.executable, str(Path(__file__).resolve().parent / "fake_export_job.py")]


def exportable(root: Path, name: str, **kwargs) -> Path:
    run = make_run(root, name, "finetune", weights=64, **kwargs)
    (run / "model.json").write_text(json.dumps({"arch": "resnet10t"}), encoding="utf-8")
    (run / "split.json").write_text("{}", encoding="utf-8")
    return run


@pytest.fixture
def workspace(studio_workspace):
    runs = studio_workspace.runs
    exportable(runs, "20261123-0900-finetune", created="2026-11-23T09:00:00Z")
    exportable(runs, "20261123-1000-prune", created="2026-11-23T10:00:00Z")
    make_run(runs, "20261123-1100-unfinished", "finetune", created="2026-11-23T11:00:00Z")
    make_bundle(runs, "old-bundle", None, 0.9)
    return studio_workspace


def make_page(qtbot, workspace, program=FAKE_PROGRAM) -> ExportPage:
    page = ExportPage(workspace, program=program, grace_ms=1500)
    qtbot.addWidget(page)
    page.resize(1100, 720)
    qtbot.waitUntil(
        lambda: page.run_tree.topLevelItemCount() > 0 or page.runs_empty.isVisibleTo(page)
    )
    return page


@pytest.fixture
def page(qtbot, workspace):
    page = make_page(qtbot, workspace)
    yield page
    page.shutdown()


def listed(page: ExportPage) -> list[str]:
    return [page.run_tree.topLevelItem(i).text(0) for i in range(page.run_tree.topLevelItemCount())]


def to_options(page: ExportPage, run: str = "20261123-0900-finetune") -> None:
    page.select_run(page.workspace.runs / run)
    page.next_button.click()
    assert page.current_step() == OPTIONS


def export_and_wait(qtbot, page: ExportPage, timeout: int = 30000) -> tuple[str, dict]:
    with qtbot.waitSignal(page.sig_export_finished, timeout=timeout) as blocker:
        page.next_button.click()
    return blocker.args[0], blocker.args[1]


# -- step 1 ------------------------------------------------------------------------------------------
def test_only_finished_runs_with_weights_are_listed_newest_first(page):
    assert listed(page) == ["20261123-1000-prune", "20261123-0900-finetune"]
    assert page.current_step() == RUN
    assert page.step_labels[RUN].property("state") == "current"


def test_next_without_a_run_is_explained_on_the_run_step(page, tmp_path):
    page.next_button.click()
    assert page.current_step() == RUN
    assert page.run_error.isVisibleTo(page)
    assert "Select a run" in page.run_error.text()
    half = tmp_path / "copied-run"
    half.mkdir()
    (half / "model.json").write_text("{}", encoding="utf-8")
    page.use_run_folder(half)
    assert page.selected_run() == half
    page.next_button.click()
    assert page.current_step() == RUN
    assert "best.safetensors, split.json missing" in page.run_error.text()


def test_a_run_still_running_is_refused_and_a_cancelled_one_exported(page):
    import os
    import socket

    run = page.workspace.runs / "20261123-0900-finetune"
    body = json.loads((run / "run.json").read_text(encoding="utf-8"))
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    (run / "run.json").write_text(json.dumps({**body, "status": "running", **owner}), "utf-8")
    page.select_run(run)
    page.next_button.click()
    assert page.current_step() == RUN
    assert "still running; wait until it has finished" in page.run_error.text()
    (run / "run.json").write_text(json.dumps({**body, "status": "cancelled"}), "utf-8")
    page.next_button.click()  # cancelled when good enough: its best weights are a model
    assert page.current_step() != RUN


# -- step 2 ------------------------------------------------------------------------------------------
def test_invalid_options_are_explained_on_the_options_step(page, tmp_path):
    to_options(page)
    assert page.name_edit.text() == "20261123-0900-finetune"
    assert page.folder_edit.text() == str(page.workspace.bundles)
    page.fp32_check.setChecked(False)
    page.int8_check.setChecked(False)
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    page.folder_edit.setText(str(a_file))
    page.name_edit.setText("bad/name")
    page.next_button.click()
    assert page.current_step() == OPTIONS
    assert not page.is_running()
    assert "Choose FP32, INT8 or both" in page.precision_error.text()
    assert "is a file" in page.folder_error.text()
    assert "plain file name" in page.name_error.text()

    page.int8_check.setChecked(True)
    assert not page.precision_error.isVisibleTo(page)
    page.folder_edit.setText("/proc/deepfake-studio-test/bundles")
    page.name_edit.setText("tiny")
    page.next_button.click()
    assert "not writable" in page.folder_error.text()

    page.folder_edit.setText(str(page.workspace.runs / "20261123-0900-finetune" / "out"))
    page.next_button.click()
    assert "inside the run folder" in page.folder_error.text()

    page.folder_edit.setText(str(tmp_path))
    (tmp_path / "tiny-int8").mkdir()
    (tmp_path / "tiny-int8" / "notes.txt").write_text("mine", encoding="utf-8")
    page.next_button.click()
    assert "exists and is not a bundle" in page.name_error.text()
    assert page.current_step() == OPTIONS
    assert list(page.workspace.jobs.iterdir()) == []


def test_an_existing_bundle_is_announced_as_replaced(page, tmp_path):
    to_options(page)
    make_bundle(tmp_path, "tiny-fp32", None, 0.9)
    page.folder_edit.setText(str(tmp_path))
    page.name_edit.setText("tiny")
    assert page.replace_note.isVisibleTo(page)
    assert "tiny-fp32" in page.replace_note.text()


# -- steps 3 and 4 -----------------------------------------------------------------------------------
def test_fp32_and_int8_export_runs_two_jobs_and_summarises_the_reports(qtbot, page, tmp_path):
    to_options(page)
    page.folder_edit.setText(str(tmp_path / "out"))
    page.name_edit.setText("tiny")
    page.risk_spin.setValue(5.0)
    assert "at most 5% of the images it does answer are wrong" in page.risk_words.text()
    assert not page.flip_check.isChecked()  # mirror averaging is opt-in
    status, details = export_and_wait(qtbot, page)
    assert status == "done"
    fp32, int8 = tmp_path / "out" / "tiny-fp32", tmp_path / "out" / "tiny-int8"
    assert details["bundles"] == [str(fp32), str(int8)]
    assert page.current_step() == SUMMARY
    jobs = sorted(page.workspace.jobs.glob("export-*.json"))
    configs = [json.loads(p.read_text(encoding="utf-8")) for p in jobs]
    assert [(c["int8"], c["out"]) for c in configs] == [(False, str(fp32)), (True, str(int8))]
    for config in configs:
        assert config["kind"] == "export" and config["zip"] is True
        assert config["target_risk"] == 0.05 and config["flip_average"] is False
        assert config["energy_floor"] is None  # the energy floor is opt-in
        assert config["weights"] == "best"
        assert config["run"] == str((page.workspace.runs / "20261123-0900-finetune").resolve())
    assert page.progress.value() == page.progress.maximum()
    history = [json.loads(line) for line in (page.workspace.jobs / HISTORY_FILE).open()]
    assert [(h["kind"], h["status"], h["config"]["int8"]) for h in history] == [
        ("export", "running", False),
        ("export", "done", False),
        ("export", "running", True),
        ("export", "done", True),
    ]  # the Jobs page lists them
    assert [h["summary"].get("bundle") for h in history[1::2]] == [str(fp32), str(int8)]
    assert [h["id"] for h in history[1::2]] == [p.stem for p in jobs]  # one id per job file

    table = page.summary.variant_table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in range(6)] for r in range(3)}
    assert list(rows) == ["PyTorch (reference)", "ONNX FP32", "ONNX INT8"]
    assert rows["ONNX FP32"][1:] == [
        "91.2%",
        formatting.size(FP32_BYTES),
        "1.84 ms/image",
        "max logit |Δ| vs PyTorch 2.4e-06",
        "tiny-fp32",
    ]
    assert rows["ONNX INT8"][1:4] == ["90.0%", formatting.size(INT8_BYTES), "0.92 ms/image"]
    assert rows["ONNX INT8"][4] == "agrees with FP32 on 97.5% · max logit |Δ| 0.031"
    assert rows["ONNX INT8"][5] == "tiny-int8"
    assert rows["PyTorch (reference)"][5] == "not shipped"
    checks = page.summary.checks_label.text()
    assert "✕" not in checks
    # FP32 parity is measured by both exports and listed once; the rest per bundle
    assert checks.count("✓") == 4
    assert checks.count("torch vs ONNX FP32 max |diff| 2.40e-06") == 1
    assert "FP32: golden vectors OK" in checks and "INT8: golden vectors OK" in checks
    assert "INT8 accuracy 90.00% vs FP32 91.25%" in checks and "INT8: INT8" not in checks
    words = page.summary.threshold_label.text()
    assert "Threshold <b>0.80</b>" in words
    assert "at most 5% errors" in words and "answered 89% of the images" in words
    assert page.summary.measured_label.text() == "Measured on 80 images of the run's test split"
    assert "tiny-fp32.zip" in page.summary.bundle_paths.text()

    with qtbot.waitSignal(page.sig_bundle_selected) as chosen:
        page.use_button.click()
    assert chosen.args == [str(fp32)]
    page.summary.variant_table.selectRow(2)
    opened = []
    from PySide6.QtGui import QDesktopServices

    original = QDesktopServices.openUrl
    QDesktopServices.openUrl = staticmethod(lambda url: opened.append(url.toLocalFile()))
    try:
        page.open_button.click()
    finally:
        QDesktopServices.openUrl = original
    assert opened == [str(int8)]
    page.another_button.click()
    assert page.current_step() == RUN


def test_progress_then_cancel_writes_no_bundle(qtbot, page, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EXPORT_DELAY", "0.15")
    to_options(page)
    page.fp32_check.setChecked(False)
    page.folder_edit.setText(str(tmp_path))
    page.name_edit.setText("slow")
    page.next_button.click()
    assert page.current_step() == RUNNING and page.is_running()
    assert not page.back_button.isEnabled()
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=15000)
    assert page.phase_label.text().startswith(("Export", "Quantize"))
    with qtbot.waitSignal(page.sig_export_finished, timeout=15000) as blocker:
        page.cancel_button.click()
    assert blocker.args[0] == "cancelled"
    assert not (tmp_path / "slow-int8").exists()
    assert "Export cancelled" in page.run_message.text()
    assert "export cancelled; no bundle written" in page.log.toPlainText()
    assert (page.job_record.status, page.job_record.kind) == ("cancelled", "export")
    assert page.back_button.isEnabled()
    page.back_button.click()
    assert page.current_step() == OPTIONS


@pytest.mark.parametrize(
    ("failure", "shown", "logged"),
    [
        ("error", "Export failed: export refused, no bundle written: INT8 accuracy", "drop 11.25"),
        ("crash", "without reporting a result", "MemoryError (fake crash)"),
    ],
)
def test_a_failed_export_is_explained(qtbot, page, tmp_path, monkeypatch, failure, shown, logged):
    monkeypatch.setenv("FAKE_EXPORT_FAIL", failure)
    to_options(page)
    page.folder_edit.setText(str(tmp_path / "out"))
    status, _ = export_and_wait(qtbot, page)
    assert status == "failed"
    assert page.current_step() == RUNNING
    assert shown in page.run_message.text()
    assert logged in page.log.toPlainText()
    assert page.back_button.isEnabled()
    assert not (tmp_path / "out").exists()


def test_use_for_checking_makes_the_bundle_the_main_windows(qtbot, workspace, tmp_path):
    from app.main_window import MainWindow

    window = MainWindow(workspace)
    qtbot.addWidget(window)
    page = window.page("export")
    assert isinstance(page, ExportPage)
    window.show_page("export")
    config = {"run": "r", "target_risk": 0.05, "int8": False}
    bundle = tmp_path / "b-fp32"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps(bundle_meta(config, False)), "utf-8")
    (bundle / "verification.json").write_text(json.dumps(report(False)), "utf-8")
    page.summary.show_bundles([read_exported(bundle)])
    page.exported = page.summary.bundles
    page.go_to(SUMMARY)
    page.use_button.click()
    assert window.bundle == str(bundle)
    assert window.current_page_name() == "check"
    check = window.page("check")
    qtbot.waitUntil(lambda: "could not be loaded" in check.model_name.text(), timeout=10000)
    assert "lacks a required field" in check.model_detail.text()  # a fake bundle: no model
    window.close()


@pytest.mark.slow
def test_a_real_export_through_the_job_runner(qtbot, studio_workspace, trained_run, tmp_path):
    """The app's own ``job`` command exports a real trained resnet10t; the summary shows the
    numbers of the verification report it wrote."""
    from core.bundle import load_bundle

    page = make_page(qtbot, studio_workspace, program=None)
    page.use_run_folder(trained_run)
    page.next_button.click()
    assert page.current_step() == OPTIONS
    page.int8_check.setChecked(False)
    page.flip_check.setChecked(True)
    page.folder_radio.setChecked(True)
    page.folder_edit.setText(str(tmp_path))
    page.name_edit.setText("real")
    status, _ = export_and_wait(qtbot, page, timeout=240000)
    assert status == "done", page.run_message.text() + page.log.toPlainText()[-2000:]
    bundle = load_bundle(tmp_path / "real-fp32")
    assert bundle.meta["model"]["precision"] == "fp32"
    assert bundle.meta["export"]["flip_average"] is True
    report = json.loads((tmp_path / "real-fp32" / "verification.json").read_text("utf-8"))
    rows = {
        page.summary.variant_table.item(r, 0).text(): page.summary.variant_table.item(r, 1).text()
        for r in range(page.summary.variant_table.rowCount())
    }
    assert rows["ONNX FP32"] == f"{report['variants']['fp32']['accuracy']:.1%}"
    assert f"{bundle.calibration.threshold:.2f}" in page.summary.threshold_label.text()
    assert not (tmp_path / "real-fp32.zip").exists()
    page.shutdown()


def test_the_energy_floor_and_the_weights_reach_the_job(page):
    from app.pages.export_plan import job_configs

    to_options(page)
    assert not page.floor_spin.isEnabled() and page.read_choices().energy_floor is None
    page.floor_check.setChecked(True)
    page.floor_spin.setValue(85.0)
    assert page.floor_spin.isEnabled()
    assert "less familiar to the model than 85% of the validation images" in (
        page.risk_words.text()
    )
    choices = page.read_choices()
    assert choices.energy_floor == 0.85
    assert {c["energy_floor"] for c in job_configs(choices)} == {0.85}
    page.floor_check.setChecked(False)
    assert "less familiar" not in page.risk_words.text()
    page.weights_combo.setCurrentIndex(page.weights_combo.findData("last"))  # the final epoch
    assert {c["weights"] for c in job_configs(page.read_choices())} == {"last"}


def test_the_bundle_name_follows_the_run_unless_the_user_typed_one(page):
    to_options(page)
    assert page.name_edit.text() == "20261123-0900-finetune"
    page.back_button.click()
    to_options(page, "20261123-1000-prune")
    assert page.name_edit.text() == "20261123-1000-prune"
    page.name_edit.setText("my-detector")
    page.back_button.click()
    to_options(page)
    assert page.name_edit.text() == "my-detector"


def test_wizard_steps_show_progress_marks(page):
    to_options(page)
    assert page.step_labels[RUN].text().startswith("✓")
    assert page.step_labels[OPTIONS].property("state") == "current"
    page.back_button.click()
    assert page.current_step() == RUN
    assert page.step_labels[RUN].property("state") == "current"
    assert page.run_tree.selectedItems()[0].data(0, Qt.ItemDataRole.UserRole).endswith("finetune")


def test_an_unwritable_job_history_costs_only_the_record(
    qtbot, page, tmp_path, monkeypatch, caplog
):
    import app.pages.export as export_page

    def full_disk(*_args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_page, "append_to_history", full_disk)
    to_options(page)
    page.fp32_check.setChecked(False)
    page.folder_edit.setText(str(tmp_path / "out"))
    with caplog.at_level("WARNING", logger="app.pages.export"):
        status, _ = export_and_wait(qtbot, page)
    assert status == "done" and (tmp_path / "out" / "20261123-0900-finetune-int8").is_dir()
    assert "could not record export job" in caplog.text and "No space left" in caplog.text
    assert page.job_record.status == "done"  # still handed to the Jobs page


def write_bundle(folder: Path, int8: bool = False, **metrics) -> Path:
    """A fake exported bundle (tests/fake_export_job.py's files) with ``metrics`` overridden."""
    config = {"run": "r", "target_risk": 0.05, "int8": int8}
    folder.mkdir(parents=True)
    meta = bundle_meta(config, int8)
    meta["metrics"].update(metrics)
    (folder / "bundle.json").write_text(json.dumps(meta), "utf-8")
    (folder / "verification.json").write_text(json.dumps(report(int8)), "utf-8")
    return folder


def test_a_weak_model_is_exported_with_an_amber_warning(qtbot, tmp_path):
    from app import style
    from app.pages.export_summary import ExportSummary

    summary = ExportSummary()
    qtbot.addWidget(summary)
    good = read_exported(write_bundle(tmp_path / "good"))
    summary.show_bundles([good])
    assert "weak" not in summary.headline.text() and "#15803d" in summary.headline.text()

    weak = write_bundle(tmp_path / "weak", accuracy=0.36, coverage=0.3, selective_risk=2 / 3)
    summary.show_bundles([read_exported(weak)])
    text = summary.headline.text()
    assert "exported and verified, but this model is weak" in text
    assert style.WARNING in text and "#15803d" not in text
    assert "66.7% errors among the test images it answered (target 5%)" in text
    assert "test accuracy 36.0%, near chance (33%)" in text  # 3 classes

    risky = write_bundle(tmp_path / "risky", selective_risk=0.09)  # 9 % vs 5 %: not far enough
    summary.show_bundles([read_exported(risky)])
    assert "weak" not in summary.headline.text()


def test_the_summary_scrolls_on_the_smallest_window_instead_of_overlapping(qtbot, page, tmp_path):
    from PySide6.QtWidgets import QScrollArea

    bundles = [
        read_exported(write_bundle(tmp_path / "b-fp32")),
        read_exported(write_bundle(tmp_path / "b-int8", int8=True)),
    ]
    page.resize(770, 560)  # the page's share of a 960x640 window
    page.show()
    page.summary.show_bundles(bundles)
    page.go_to(SUMMARY)
    qtbot.wait(50)
    area = page.stack.currentWidget()
    assert isinstance(area, QScrollArea) and area.widget() is page.summary
    summary = page.summary
    parts = [summary.headline, summary.bundle_paths, summary.variant_table]
    parts += [summary.measured_label, summary.checks_label]
    for index, part in enumerate(parts):
        assert part.height() >= part.minimumSizeHint().height(), part
        for other in parts[index + 1 :]:
            assert not part.geometry().intersects(other.geometry()), (part, other)
    threshold = summary.threshold_label
    assert threshold.height() >= threshold.heightForWidth(threshold.width())


def test_options_stack_their_columns_on_the_smallest_window(qtbot, page):
    from PySide6.QtWidgets import QPushButton

    page.resize(770, 560)  # the page's share of a 960x640 window
    page.show()
    to_options(page)
    qtbot.wait(50)
    viewport = page.stack.currentWidget().viewport()
    for button in page.stack.currentWidget().widget().findChildren(QPushButton):
        right = button.mapTo(viewport, button.rect().topRight()).x()
        assert right <= viewport.width(), f"{button.text()} is clipped"
