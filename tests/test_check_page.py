"""The Check page with a real tiny bundle (onnxruntime), driven by pytest-qt.

Drops are simulated with QMimeData URLs; every verdict the page shows is compared with
:class:`core.inference.OnnxPredictor` run directly on the same files.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtWidgets import QApplication

from app.pages.check import CheckPage
from app.pages.check_model import MODEL_ROLE, RESULT_ROLE, Column, ModelInfo, verdict_text
from core.bundle import load_bundle
from core.inference import CheckResult, OnnxPredictor, iter_image_files

REPO = Path(__file__).resolve().parents[1]


# -- helpers -------------------------------------------------------------------------------------
def drop(widget, paths) -> bool:
    """Send a drag-enter and a drop of ``paths`` (file URLs) onto ``widget``; enter accepted?"""
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = widget.rect().center()
    enter = QDragEnterEvent(
        QPoint(centre),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, enter)
    accepted = enter.isAccepted()
    event = QDropEvent(
        QPointF(centre),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)
    return accepted


def wait_finished(qtbot, page: CheckPage, timeout: int = 30000) -> dict:
    with qtbot.waitSignal(page.sig_check_finished, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def run_and_wait(qtbot, page: CheckPage, action, timeout: int = 30000) -> dict:
    with qtbot.waitSignal(page.sig_check_finished, timeout=timeout) as blocker:
        action()
    return blocker.args[0]


def make_page(qtbot, workspace, bundle: Path | None, **kwargs) -> CheckPage:
    page = CheckPage(workspace, **kwargs)
    qtbot.addWidget(page)
    page.resize(1100, 720)
    if bundle is not None:
        page.set_bundle(str(bundle))
        qtbot.waitUntil(lambda: page.predictor is not None, timeout=20000)
    return page


@pytest.fixture
def page(qtbot, studio_workspace, tiny_bundle):
    page = make_page(qtbot, studio_workspace, tiny_bundle)
    yield page
    page.shutdown()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    corrupt = root / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    notes = root / "notes.txt"
    notes.write_text("not a picture", encoding="utf-8")
    return {"corrupt": corrupt, "notes": notes, "missing": root / "gone.png"}


@pytest.fixture(scope="module")
def reference(tiny_bundle, tiny_image_dir) -> dict[str, object]:
    """What core's predictor says about each tiny image (the page must show the same)."""
    predictor = OnnxPredictor(load_bundle(tiny_bundle), threads=1)
    return {r.path: r for r in predictor.predict_paths(iter_image_files([tiny_image_dir]))}


# -- tests ---------------------------------------------------------------------------------------
def test_dropped_files_and_folders_become_rows_with_the_predictors_verdicts(
    qtbot, page, tiny_image_dir, bad_files, reference
):
    paths = [tiny_image_dir, bad_files["corrupt"], bad_files["notes"], bad_files["missing"]]
    with qtbot.waitSignal(page.sig_check_finished, timeout=30000) as blocker:
        assert drop(page, paths)
    summary = blocker.args[0]
    assert summary["checked"] == 15 and summary["errors"] == 3
    assert not summary["cancelled"]
    results = {r.path: r for r in page.results()}
    assert len(results) == 15
    assert page.proxy.rowCount() == 15
    for path, expected in reference.items():
        got = results[path]
        assert got.verdict == expected.verdict
        assert got.label == expected.label
        assert got.confidence == pytest.approx(expected.confidence, abs=1e-6)
        assert got.explanation == expected.explanation
        assert got.cam is not None and got.cam.shape[0] == 3
    assert {r.verdict for r in reference.values()} <= {"real", "fake", "unknown"}
    errors = {Path(p).name: r for p, r in results.items() if r.verdict == "error"}
    assert set(errors) == {"corrupt.jpg", "notes.txt", "gone.png"}
    assert "damaged" in errors["corrupt.jpg"].message
    assert "not an image" in errors["notes.txt"].message
    assert "not found" in errors["gone.png"].message
    # the error rows say so in the table, with the message as explanation
    rows = {page.proxy.index(r, Column.FILE).data(): r for r in range(page.proxy.rowCount())}
    row = rows["notes.txt"]
    assert page.proxy.index(row, Column.VERDICT).data() == "Unreadable"
    assert "not an image" in page.proxy.index(row, Column.EXPLANATION).data()
    assert page.proxy.index(row, Column.CONFIDENCE).data() == ""
    counts = page.model.counts()
    assert counts["error"] == 3
    assert sum(counts.values()) == 15
    assert page.filter_combo.itemText(0) == "All results (15)"
    assert "3 could not be read" in page.message.text()


def test_sorting_by_confidence_and_filtering_by_verdict(qtbot, page, tiny_image_dir, bad_files):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir, bad_files["corrupt"]]))
    page.table.sortByColumn(Column.CONFIDENCE, Qt.SortOrder.DescendingOrder)
    shown = page.visible_results()
    confidences = [r.confidence for r in shown if r.ok]
    assert confidences == sorted(confidences, reverse=True)
    assert shown[-1].verdict == "error"  # no confidence sorts last
    page.table.sortByColumn(Column.FILE, Qt.SortOrder.AscendingOrder)
    names = [Path(r.path).name.lower() for r in page.visible_results()]
    assert names == sorted(names)

    counts = page.model.counts()
    for verdict in ("real", "fake", "unknown", "error"):
        page.set_filter([verdict])
        shown = page.visible_results()
        assert len(shown) == counts[verdict]
        assert all(r.verdict == verdict for r in shown)
    page.set_filter(["error"])
    assert page.filter_combo.currentText() == "Unreadable (1)"
    page.set_filter(None)
    assert page.proxy.rowCount() == 13


def test_verdict_badges_have_distinct_colours_and_symbols():
    from app.pages.check_model import verdict_style

    styles = {v: verdict_style(v) for v in ("real", "fake", "unknown", "error")}
    assert len({colour for colour, _, _ in styles.values()}) == 4
    assert len({glyph for _, glyph, _ in styles.values()}) == 4
    assert len({word for _, _, word in styles.values()}) == 4


def test_selecting_a_row_shows_the_image_and_a_heatmap_overlay_of_its_size(
    qtbot, page, tiny_image_dir
):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    page.table.selectRow(3)
    result = page.proxy.index(3, 0).data(RESULT_ROLE)
    detail = page.detail
    assert detail.result is result
    qtbot.waitUntil(lambda: detail.image_pixmap is not None, timeout=10000)
    assert detail.heatmap_check.isEnabled()
    width, height = Image.open(result.path).size
    assert (detail.image_pixmap.width(), detail.image_pixmap.height()) == (width, height)
    assert detail.shown_pixmap() is detail.image_pixmap
    detail.heatmap_check.setChecked(True)
    overlay = detail.shown_pixmap()
    assert overlay is detail.overlay_pixmap
    assert (overlay.width(), overlay.height()) == (width, height)
    original = detail.image_pixmap.toImage()
    blended = overlay.toImage()
    changed = sum(
        original.pixel(x, y) != blended.pixel(x, y)
        for x in range(0, width, 4)
        for y in range(0, height, 4)
    )
    assert changed > 0.5 * (width // 4) * (height // 4)
    assert result.explanation in detail.explanation.text()
    assert detail.verdict.text().endswith(verdict_text(result))
    detail.heatmap_check.setChecked(False)
    assert detail.shown_pixmap() is detail.image_pixmap


def test_report_export_writes_csv_json_and_html(qtbot, page, tiny_image_dir, bad_files, tmp_path):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir, bad_files["corrupt"]]))
    results = {r.path: r for r in page.results()}
    for suffix in ("csv", "json", "html"):
        target = tmp_path / f"report.{suffix}"
        with qtbot.waitSignal(page.sig_report_written, timeout=10000):
            page.export_report(target)
        assert target.is_file()
    with (tmp_path / "report.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 13
    for row in rows:
        expected = results[row["path"]]
        assert row["verdict"] == expected.verdict
        if expected.ok:
            # the CSV keeps 6 significant digits
            assert float(row["confidence"]) == pytest.approx(expected.confidence, rel=1e-5)
            assert float(row["p_real"]) == pytest.approx(expected.probs["real"], rel=1e-5)
        else:
            assert "damaged" in row["message"]
    body = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert sum(body["counts"].values()) == 13 and body["counts"]["error"] == 1
    assert "resnet10t" in body["model"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("<tr><td>") == 13 and "corrupt.jpg" in html
    # the same model line and heatmaps as the CLI's report (thumbnail + overlay per image)
    assert f"Model: {page.predictor.description}<br>" in html and "Model: Model" not in html
    assert html.count("data:image/jpeg;base64,") == 2 * 12
    # a bad target is explained, not raised
    page.export_report(tmp_path / "report.pdf")
    qtbot.waitUntil(lambda: "report must end in" in page.message.text(), timeout=5000)


def test_dropping_a_bundle_switches_the_model(
    qtbot, page, tiny_bundle_zip, tiny_image_dir, tmp_path
):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    old = page.predictor
    with qtbot.waitSignal(page.sig_bundle_selected) as selected:
        assert drop(page, [tiny_bundle_zip])
    assert selected.args == [str(tiny_bundle_zip)]
    qtbot.waitUntil(lambda: page.predictor is not old, timeout=20000)
    assert page.predictor.bundle.source == tiny_bundle_zip
    assert page.model.rowCount() == 0  # verdicts of the old model are not mixed in
    assert "Model switched to tiny.zip" in page.message.text()
    assert page.recheck_button.isEnabled()
    summary = run_and_wait(qtbot, page, page.recheck_button.click)
    assert summary["checked"] == 12

    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "bundle.json").write_text("{not json", encoding="utf-8")
    current = page.predictor
    announced = []
    page.sig_bundle_selected.connect(announced.append)
    drop(page, [broken])
    qtbot.waitUntil(lambda: "could not be used" in page.message.text(), timeout=10000)
    assert page.predictor is current  # the working model stays
    assert "damaged" in page.message.text()
    assert announced == []  # a broken bundle never becomes the main window's model


def test_without_a_bundle_the_page_says_how_to_get_one_and_checks_later(
    qtbot, studio_workspace, tiny_bundle, tiny_image_dir, tmp_path, monkeypatch
):
    import app.pages.check as check_module
    import core.bundle

    missing = tmp_path / "assets" / "bundles" / "default"
    monkeypatch.setattr(core.bundle, "default_bundle_path", lambda: missing)
    monkeypatch.setattr(check_module, "default_bundle_path", lambda: missing)
    page = make_page(qtbot, studio_workspace, None)
    qtbot.waitUntil(lambda: page.model_name.text() == "No model bundle yet", timeout=10000)
    text = page.model_detail.text()
    assert str(missing) in text and "Export" in text and "drop a bundle" in text
    assert page.model_bar.property("state") == "missing"
    page.check_paths([tiny_image_dir])
    assert page.message.property("kind") == "warning" and "Load a model" in page.message.text()
    assert not page.is_running()
    summary = run_and_wait(qtbot, page, lambda: page.set_bundle(str(tiny_bundle)))
    assert summary["checked"] == 12
    page.shutdown()


def test_main_window_bundle_changes_reach_the_page(qtbot, studio_workspace, tiny_bundle):
    from app.main_window import MainWindow

    window = MainWindow(studio_workspace)
    qtbot.addWidget(window)
    page = window.page("check")
    assert isinstance(page, CheckPage)
    window.select_bundle(str(tiny_bundle))
    qtbot.waitUntil(lambda: page.predictor is not None, timeout=20000)
    assert page.predictor.bundle.root == tiny_bundle
    window.close()


@pytest.fixture(scope="module")
def thousand_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("thousand")
    rng = np.random.default_rng(0)
    for i in range(1000):
        pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i:04d}.png", compress_level=0)
    return root


def test_checking_1000_images_keeps_the_gui_responsive_and_cancel_stops_midway(
    qtbot, page, thousand_images
):
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    timer.start()
    try:
        started = time.monotonic()
        summary = run_and_wait(qtbot, page, lambda: page.check_paths([thousand_images]), 60000)
        elapsed = time.monotonic() - started
    finally:
        timer.stop()
    assert summary["checked"] == 1000 and summary["errors"] == 0
    assert page.model.rowCount() == 1000
    shown = [Path(r.path).name for r in page.visible_results()]
    assert shown == [f"{i:04d}.png" for i in range(1000)]  # arrival (= folder) order
    assert len(gaps) > 10
    worst = max(gaps[1:])
    print(f"1000 images in {elapsed:.1f} s; worst GUI timer gap {worst * 1000:.0f} ms")
    assert worst < 0.2, f"the GUI thread stalled for {worst * 1000:.0f} ms"

    page.clear()
    page.check_paths([thousand_images])
    qtbot.waitUntil(lambda: page.model.rowCount() >= 100, timeout=30000)
    with qtbot.waitSignal(page.sig_check_finished, timeout=10000) as blocker:
        page.cancel_button.click()
    assert blocker.args[0]["cancelled"]
    assert 100 <= page.model.rowCount() < 1000
    assert "Cancelled after" in page.message.text()
    assert not page.is_running()


def test_checking_in_the_page_never_imports_torch(tiny_bundle, tiny_image_dir):
    code = f"""
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.pages.check import CheckPage
from core.workspace import Workspace
page = CheckPage(Workspace.resolve({str(tiny_image_dir.parent / "ws")!r}))
page.set_bundle({str(tiny_bundle)!r})
finished = []
page.sig_check_finished.connect(finished.append)
page.check_paths([{str(tiny_image_dir)!r}])
import time
deadline = time.monotonic() + 60
while not finished and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.005)
page.detail.show_result(page.results()[0], page.predictor.class_names, page.predictor.preprocess)
deadline = time.monotonic() + 10
while page.detail.image_pixmap is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.005)
page.shutdown()
print(len(page.results()), page.detail.overlay_pixmap is not None, "torch" in sys.modules)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["12", "True", "False"]


def test_a_model_without_spatial_detail_explains_why_there_is_no_heatmap(
    qtbot, page, tiny_image_dir
):
    from app.check_worker import heatmap_problem

    image = next(iter_image_files([tiny_image_dir]))
    result = page.predictor.predict_path(image)
    spec = page.predictor.preprocess
    assert heatmap_problem(result.cam, spec) is None  # 2x2 map at 64 px
    result.cam = result.cam.mean(axis=(1, 2), keepdims=True)  # what a 32 px resnet gives: 1x1
    page.detail.show_result(result, page.predictor.class_names, spec)
    qtbot.waitUntil(lambda: page.detail.image_pixmap is not None, timeout=10000)
    assert not page.detail.heatmap_check.isEnabled()
    assert page.detail.overlay_pixmap is None
    assert "activation map is 1×1" in page.detail.heatmap_note.text()
    result.cam = None
    page.detail.show_result(result, page.predictor.class_names, spec)
    assert "no heatmap output" in page.detail.heatmap_note.text()
    qtbot.waitUntil(lambda: page.detail.image_pixmap is not None, timeout=10000)


def test_items_dropped_during_a_run_are_checked_after_it_and_text_drops_are_refused(
    qtbot, page, tiny_image_dir
):
    from PySide6.QtGui import QDragEnterEvent

    finished = []
    page.sig_check_finished.connect(finished.append)
    page.check_paths([tiny_image_dir])
    assert page.is_running()
    page.check_paths([tiny_image_dir / "real"])  # queued behind the running check
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=30000)
    assert [s["checked"] for s in finished] == [12, 4]
    assert page.model.rowCount() == 16
    assert page.last_paths == [str(tiny_image_dir), str(tiny_image_dir / "real")]

    mime = QMimeData()
    mime.setText("just some text")
    enter = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(page, enter)
    assert not enter.isAccepted()


def test_the_threshold_in_words_names_an_energy_floor() -> None:
    from app.pages.check_model import describe_threshold
    from core.rejection import Calibration

    plain = Calibration(threshold=0.77, target_risk=0.15, coverage=0.4, risk=0.14, n=1054)
    assert describe_threshold(plain) == (
        "answers “Unknown” when the calibrated confidence is below 0.77, chosen for at most 15% "
        "errors among the images it does answer (on 1054 held-out images it answered 40%, 14.0% "
        "of them wrong)."
    )
    floored = {**plain.to_dict(), "energy_floor": 3.214, "floor_keep": 0.9}
    assert describe_threshold(floored).startswith(
        "answers “Unknown” when the calibrated confidence is below 0.77 or when the image is "
        "unfamiliar to it: familiarity score below 3.21 (which 90% of held-out images reach), "
        "chosen for at most 15%"
    )


def test_an_unreadable_entry_in_a_dropped_folder_does_not_stop_the_check(
    qtbot, page, tiny_image_dir, tmp_path
):
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")  # stat fails, like /proc/1's fd entries
    summary = run_and_wait(qtbot, page, lambda: drop(page, [tiny_image_dir, tmp_path]))
    assert summary["checked"] == 12 and not summary["message"]
    assert page.model.rowCount() == 12
    assert "1 unreadable entry was skipped" in page.message.text()
    assert page.message.property("kind") == "warning"


def test_a_report_that_cannot_be_saved_says_where_and_why(qtbot, page, tiny_image_dir, tmp_path):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    (tmp_path / "file.jpg").write_bytes(b"")
    target = tmp_path / "file.jpg" / "report.csv"
    page.export_report(target)
    qtbot.waitUntil(lambda: "Could not save" in page.message.text(), timeout=5000)
    assert page.message.text() == (
        f"Could not save the report to {target}: {tmp_path / 'file.jpg'} is a file, not a folder"
    )
    assert page.message.property("kind") == "error"


def test_a_failed_model_switch_puts_the_model_in_use_back_on_the_bar(
    qtbot, page, tiny_bundle, tmp_path
):
    import shutil

    bar_text = page.model_name.text()
    assert bar_text.startswith("Model: tiny")
    garbage = tmp_path / "garbage-model"
    shutil.copytree(tiny_bundle, garbage)
    (garbage / "model.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    current = page.predictor
    drop(page, [garbage])
    assert page.model_name.text() == "Loading the model…"
    qtbot.waitUntil(lambda: "could not be used" in page.message.text(), timeout=10000)
    assert page.predictor is current
    assert page.model_name.text() == bar_text  # not "Loading the model…" forever
    assert page.model_bar.property("state") == "ok"


def test_check_again_after_clear_checks_only_what_came_after(qtbot, page, tiny_image_dir):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    page.clear_button.click()
    assert not page.recheck_button.isEnabled()  # nothing left to check again
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir / "real"]))
    summary = run_and_wait(qtbot, page, page.recheck_button.click)
    assert summary["checked"] == 4 and page.model.rowCount() == 4


def test_a_model_dropped_during_a_check_waits_for_it_to_end(qtbot, page, thousand_images):
    cifake = REPO / "assets" / "bundles" / "cifake"
    old = page.predictor
    bar_text = page.model_name.text()
    page.check_paths([thousand_images])
    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=30000)
    assert page.clear_button.isEnabled()  # rows arrived: they can be cleared during the run
    drop(page, [cifake])
    qtbot.waitUntil(lambda: "is ready" in page.message.text(), timeout=20000)
    assert page.is_running() and page.predictor is old
    assert page.model_name.text() == bar_text  # the bar names the model that is checking
    with qtbot.waitSignal(page.sig_check_finished, timeout=60000) as blocker:
        pass
    # every row of that run was made by, and keeps, the old model (heatmap channel, report)
    assert blocker.args[0]["checked"] == 1000
    qtbot.waitUntil(lambda: page.predictor is not old, timeout=5000)
    assert page.predictor.bundle.root == cifake
    assert page.model.rowCount() == 0 and "Model switched to cifake" in page.message.text()
    assert page.model_name.text().startswith("Model: cifake")
    summary = run_and_wait(qtbot, page, page.recheck_button.click, 60000)
    assert summary["checked"] == 1000
    info = page.proxy.index(0, 0).data(MODEL_ROLE)
    assert info == ModelInfo.of(page.predictor) and info.class_names != tuple(old.class_names)


def test_rows_keep_the_model_that_made_them(qtbot, page, tiny_image_dir):
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    made_by = ModelInfo.of(page.predictor)
    page.predictor = type("Other", (), {"class_names": ["x"], "preprocess": None})()
    page.table.selectRow(2)
    assert page.proxy.index(2, 0).data(MODEL_ROLE) == made_by
    qtbot.waitUntil(lambda: page.detail.overlay_pixmap is not None, timeout=10000)


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    rng = np.random.default_rng(1)
    small = rng.integers(40, 215, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(small).resize((6000, 4500), Image.Resampling.NEAREST).save(path, quality=85)
    return path


def test_a_big_photo_is_previewed_at_display_size_with_its_heatmap(qtbot, page, big_photo):
    run_and_wait(qtbot, page, lambda: page.check_paths([big_photo]))
    result = page.results()[0]
    assert result.image_size == (4500, 6000)  # the verdict saw the full image
    expected = page.predictor.predict_path(big_photo)
    assert result.confidence == pytest.approx(expected.confidence, abs=1e-6)
    detail = page.detail
    qtbot.waitUntil(lambda: detail.image_pixmap is not None, timeout=20000)
    assert (detail.image_pixmap.width(), detail.image_pixmap.height()) == (2048, 1536)
    assert detail.overlay_pixmap is not None
    assert detail.overlay_pixmap.size() == detail.image_pixmap.size()


def test_preview_loads_do_not_pile_up(qtbot, page, tiny_image_dir, monkeypatch):
    import app.pages.check_detail as check_detail

    calls: list[str] = []

    def counted(path, *args):
        calls.append(path)
        time.sleep(0.05)
        return check_detail.load_preview.__wrapped__(path, *args)

    counted.__wrapped__ = check_detail.load_preview
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir]))
    qtbot.waitUntil(lambda: not page.detail.is_loading(), timeout=10000)
    monkeypatch.setattr(check_detail, "load_preview", counted)
    for row in range(12):  # arrowing down the table
        page.table.selectRow(row)
    qtbot.waitUntil(lambda: not page.detail.is_loading(), timeout=10000)
    last = page.proxy.index(11, 0).data(RESULT_ROLE)
    assert calls[-1] == last.path and len(calls) <= 2
    assert page.detail.result is last and page.detail.image_pixmap is not None


def test_a_16_bit_grey_png_gets_a_thumbnail(tmp_path):
    from app.check_worker import load_thumbnails

    path = tmp_path / "grey16.png"
    ramp = np.linspace(0, 65535, 256 * 192).reshape(192, 256).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # shrunk in 16 bits, Pillow's reduce() fails
    assert Image.open(path).mode == "I;16"
    thumbnail = load_thumbnails([str(path)], 48)[str(path)]
    assert thumbnail is not None and (thumbnail.width(), thumbnail.height()) == (48, 36)
    dark, light = thumbnail.pixelColor(0, 0), thumbnail.pixelColor(47, 35)
    assert dark.red() == dark.green() == dark.blue() < 30
    assert light.red() == light.green() == light.blue() > 220


def test_images_too_uniform_or_small_to_judge_show_unknown_and_why(qtbot, page, tmp_path):
    """The rule's step 0 (core.content) reaches the table and the detail pane."""
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)).save(
        tmp_path / "tiny.png"
    )
    run_and_wait(qtbot, page, lambda: page.check_paths([tmp_path]))
    expected = {
        "gray.png": "Unknown: the image is almost uniform (no detail to judge)",
        "tiny.png": "Unknown: 8×8 pixels is too small to judge (at least 16 px per side)",
    }
    for row in range(page.proxy.rowCount()):
        sentence = expected.pop(page.proxy.index(row, Column.FILE).data())
        assert page.proxy.index(row, Column.VERDICT).data() == "Unknown"
        assert page.proxy.index(row, Column.EXPLANATION).data() == sentence
        page.table.selectRow(row)
        assert page.detail.explanation.text() == sentence
        qtbot.waitUntil(lambda: page.detail.image_pixmap is not None, timeout=10000)
    assert expected == {}


@pytest.mark.parametrize(
    ("kind", "label", "word"),
    [
        ("real", "real", "Real"),
        ("fake", "sd14", "Fake (sd14)"),
        ("fake", "edited", "Fake (edited)"),
        ("unknown", "sd14", "Unknown"),
    ],
)
def test_the_verdict_word_opens_the_explanation_sentence(kind, label, word):
    """The table's and detail pane's word is the one core's sentence (CLI, phone) starts with."""
    from core.rejection import Calibration
    from core.verdict import explain_verdict

    sentence = explain_verdict(kind, label, 0.9, Calibration(threshold=0.8))
    result = CheckResult(path="a.png", verdict=kind, label=label, explanation=sentence)
    assert verdict_text(result) == word
    assert sentence.startswith(f"{word}:")


def test_filters_and_counts_use_the_tables_words():
    from app.pages.check_model import count_words, describe_threshold, verdict_filters
    from core.rejection import Calibration

    assert [title for title, _ in verdict_filters()] == [
        "All results", "Real", "Fake", "Unknown", "Unreadable"
    ]  # fmt: skip
    assert count_words() == {
        "real": "real", "fake": "fake", "unknown": "unknown", "error": "unreadable"
    }  # fmt: skip
    assert describe_threshold(Calibration(threshold=0.5), "Unknown").startswith(
        "answers “Unknown” when"
    )


# -- layout --------------------------------------------------------------------------------------
LONG_NAME = "IMG_20240512_183455_HDR_portrait_mode_final_version_two_from_the_phone_camera.png"


@pytest.fixture
def long_named_image(tmp_path, tiny_image_dir) -> Path:
    """A copy of a tiny image whose name has no place to wrap."""
    source = next(iter_image_files([tiny_image_dir]))
    target = tmp_path / LONG_NAME
    target.write_bytes(Path(source).read_bytes())
    return target


def _select_path(qtbot, page: CheckPage, path: Path) -> None:
    for row in range(page.proxy.rowCount()):
        if page.proxy.index(row, 0).data(RESULT_ROLE).path == str(path):
            page.table.selectRow(row)
            break
    qtbot.waitUntil(lambda: not page.detail.is_loading(), timeout=10000)
    qtbot.wait(50)


def test_detail_parts_never_overlap_on_the_smallest_window(
    qtbot, page, tiny_image_dir, long_named_image
):
    from app.pages.check_detail import IMAGE_MIN, TEXT_MIN_HEIGHT

    page.resize(770, 560)  # the page's share of a 960x640 window
    page.show()
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir, long_named_image]))
    _select_path(qtbot, page, long_named_image)
    detail = page.detail
    parts = [detail.title, detail.image, detail.heatmap_check, detail.verdict, detail.text_area]
    rects = [part.geometry() for part in parts]
    for index, rect in enumerate(rects):
        assert detail.rect().contains(rect), parts[index]
        for other in rects[index + 1 :]:
            assert not rect.intersects(other), (rect, other)
    assert detail.image.height() >= IMAGE_MIN.height()
    assert detail.text_area.height() >= TEXT_MIN_HEIGHT
    assert detail.verdict.height() >= detail.verdict.sizeHint().height()
    counts = page.counts_label
    assert counts.geometry().right() < page.recheck_button.geometry().left()
    assert counts.height() >= counts.heightForWidth(counts.width())  # wrapped, not cut off
    assert "real" in counts.toolTip() or "fake" in counts.toolTip()


def test_a_long_file_name_neither_widens_the_panel_nor_squeezes_the_table(
    qtbot, page, tiny_image_dir, long_named_image
):
    from PySide6.QtWidgets import QHeaderView

    page.resize(1054, 700)  # the page's share of a 1280x800 window
    page.show()
    run_and_wait(qtbot, page, lambda: page.check_paths([tiny_image_dir, long_named_image]))
    page.table.selectRow(0)
    qtbot.waitUntil(lambda: not page.detail.is_loading(), timeout=10000)
    qtbot.wait(50)
    before = page.splitter.sizes()
    _select_path(qtbot, page, long_named_image)
    assert page.splitter.sizes() == before
    assert page.detail.title.toolTip() == LONG_NAME
    assert page.detail.title.text() != LONG_NAME  # elided
    header = page.table.horizontalHeader()
    assert header.sectionResizeMode(Column.EXPLANATION) == QHeaderView.ResizeMode.Stretch
    assert page.table.columnWidth(Column.EXPLANATION) >= 100
    assert not page.table.horizontalScrollBar().isVisible()
