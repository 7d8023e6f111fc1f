"""The Datasets page driven by pytest-qt: indexing, cancel, thumbnails, hygiene clicks, splits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QThreadPool, QUrl
from PySide6.QtGui import QDropEvent
from test_datasets_support import add_bad_files, copy_file, make_dataset

from app.pages import datasets as page_module
from app.pages.dataset_grid import PAGE_ROWS
from app.pages.datasets import DatasetsPage
from app.widgets import background
from core import datasets
from core.thumbnails import thumbnail_path
from core.workspace import Workspace

WAIT_MS = 20_000


@pytest.fixture
def page(qtbot, tmp_path: Path):
    """A shown page; teardown fails if any worker thread or pool task is left running."""
    widget = DatasetsPage(Workspace(tmp_path / "ws"))
    qtbot.addWidget(widget)
    widget.resize(1100, 760)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()
    background.pool().waitForDone(5000)
    assert not widget.is_busy()
    assert widget.model.pool.activeThreadCount() == 0
    assert background.pool().activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = make_dataset(tmp_path / "data", {"real": 14, "fake": 9})
    add_bad_files(root / "fake")
    copy_file(root / "real" / "real_001.png", root / "real" / "copy.png")
    return root


def index_through(page: DatasetsPage, qtbot, root: Path):
    """Index ``root`` through the page; returns the view once its hygiene report is shown."""
    signals = [page.sig_index_finished, page.sig_hygiene_checked]
    with qtbot.waitSignals(signals, order="strict", timeout=WAIT_MS):
        page.add_folder(root)
    assert page.report is not None and page.report.root == str(page.view.index.root)
    return page.view


def test_constructor_is_cheap(tmp_path: Path, qtbot) -> None:
    workspace = Workspace(tmp_path / "ws")
    widget = DatasetsPage(workspace, parent=None)
    qtbot.addWidget(widget)
    assert not widget.is_busy() and widget.view is None
    assert not list(workspace.indexes.iterdir())
    assert widget.datasets.count() == 0
    widget.shutdown()


def test_indexing_shows_counts_chart_and_findings(page: DatasetsPage, qtbot, data: Path) -> None:
    with qtbot.waitSignal(page.sig_indexes_listed, timeout=WAIT_MS):
        view = index_through(page, qtbot, data)
    assert view.counts == {"fake": 9, "real": 15} and view.unreadable == 3
    assert list(page.bars.opts["height"]) == [9, 15]
    assert "27 files in 2 classes, 3 unreadable" in page.summary.text()
    assert "real: 15" in page.summary.text()
    combo = [page.class_combo.itemText(i) for i in range(page.class_combo.count())]
    assert combo == ["All classes", "fake (9)", "real (15)"]
    assert page.datasets.count() == 1 and page.datasets.item(0).text() == f"{data.parent.name}/data"
    kinds = [f.kind for f in page.report.findings]
    assert "unreadable" in kinds and "duplicates" in kinds
    top = [page.findings.topLevelItem(i).text(0) for i in range(page.findings.topLevelItemCount())]
    assert any(text == "Error: unreadable files, left out of training: 3 files" for text in top)
    from app.style import ERROR

    unreadable = page.findings.topLevelItem(top.index(next(t for t in top if "unreadable" in t)))
    assert unreadable.foreground(0).color().name() == ERROR  # severity in colour, not a prefix only
    assert page.tabs.tabText(2) == f"Hygiene ({len(kinds)})"
    assert not page.progress.isVisible() and page.add_button.isEnabled()
    assert "Indexed" in page.status.text()


def test_thumbnails_are_made_off_thread_and_cached(page: DatasetsPage, qtbot, data: Path) -> None:
    index_through(page, qtbot, data)
    page.class_combo.setCurrentIndex(2)  # real
    page.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: page.model.loaded >= 14, timeout=WAIT_MS)  # 15 files, 14 contents
    assert page.model.rowCount() == 15
    copy, original = page.model.row_of("real/copy.png"), page.model.row_of("real/real_001.png")
    decoration = Qt.ItemDataRole.DecorationRole
    copy_image = page.model.data(page.model.index(copy), decoration)
    assert copy_image is page.model.data(page.model.index(original), decoration)
    facts = page.model.facts(0)
    cached = thumbnail_path(page.workspace.thumbnails, facts.sha256)
    assert cached.is_file()
    image = page.model.data(page.model.index(0), Qt.ItemDataRole.DecorationRole)
    assert image.width() == 96  # 16 px images are enlarged to the icon size
    assert "real/" in page.model.data(page.model.index(0), Qt.ItemDataRole.ToolTipRole)
    page.class_combo.setCurrentIndex(1)  # fake: unreadable files get the broken placeholder
    qtbot.waitUntil(lambda: page.model.rowCount() == 12, timeout=WAIT_MS)  # fetched by the view
    broken = page.model.index(page.model.row_of("fake/empty.png"))
    assert "unreadable: file is empty" in page.model.data(broken, Qt.ItemDataRole.ToolTipRole)
    assert page.model.data(broken, decoration) is page.model._broken


def test_rows_are_read_by_page_and_the_grid_reaches_the_end(
    page: DatasetsPage, qtbot, tmp_path: Path
) -> None:
    root = make_dataset(tmp_path / "big", {"a": 2 * PAGE_ROWS + 20, "b": 2})
    index_through(page, qtbot, root)
    page.class_combo.setCurrentIndex(1)  # a
    model = page.model
    assert model.rowCount() == 2 * PAGE_ROWS + 20  # every row from the start
    reads = model.page_reads
    last = model.facts(2 * PAGE_ROWS + 19)
    assert last.relpath == f"a/a_{2 * PAGE_ROWS + 19:03d}.png"
    assert model.facts(2 * PAGE_ROWS).relpath == f"a/a_{2 * PAGE_ROWS:03d}.png"
    assert model.page_reads == reads + 1  # one page read, then cached
    paths = [model.relpath(r) for r in range(model.rowCount())]
    assert paths == sorted(paths) and len(set(paths)) == 2 * PAGE_ROWS + 20
    assert model.row_of("a/a_300.png") == 300
    qtbot.waitUntil(lambda: len(model._page_ends) == 2, timeout=WAIT_MS)  # deep pages by key
    model._pages.clear()
    assert [model.relpath(r) for r in range(model.rowCount())] == paths

    page.tabs.setCurrentIndex(1)
    page.grid.scrollToBottom()
    qtbot.waitUntil(lambda: page.grid.verticalScrollBar().value() > 0, timeout=WAIT_MS)
    corner = page.grid.viewport().rect().bottomLeft() + QPoint(30, -60)
    qtbot.waitUntil(lambda: page.grid.indexAt(corner).row() > 2 * PAGE_ROWS, timeout=WAIT_MS)
    bottom = page.grid.indexAt(corner).row()
    qtbot.waitUntil(
        lambda: model._images.get(model.facts(bottom).sha256) is not None, timeout=WAIT_MS
    )


def test_a_finding_selects_all_its_files(page: DatasetsPage, qtbot, tmp_path: Path) -> None:
    index_through(page, qtbot, make_dataset(tmp_path / "big", {"a": PAGE_ROWS + 10, "b": 2}))
    wanted = [f"a/a_{i:03d}.png" for i in range(PAGE_ROWS + 10)] + ["missing.png"]
    page.show_files(wanted)
    assert page.model.rowCount() == len(wanted)
    assert page.selected_files() == sorted(wanted)
    assert page.model.facts(page.model.row_of("missing.png")) is None


@pytest.fixture
def slow_analysis(monkeypatch: pytest.MonkeyPatch):
    """Batches of 4 files, 10 ms each, so a build can be stopped half-way; call it to undo."""
    analyse = datasets.analyse_file

    def slow(*args):
        time.sleep(0.01)
        return analyse(*args)

    monkeypatch.setattr(datasets, "BATCH", 4)
    monkeypatch.setattr(datasets, "analyse_file", slow)
    return lambda: monkeypatch.setattr(datasets, "analyse_file", analyse)


def test_cancel_keeps_progress_and_reindex_resumes(
    page: DatasetsPage, qtbot, tmp_path: Path, slow_analysis
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 30, "fake": 30})
    page.add_folder(root)
    assert page.is_busy() and page.cancel_button.isVisible() and not page.add_button.isEnabled()
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=WAIT_MS)
    assert page.progress.maximum() == 60
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS) as blocker:
        page.cancel_indexing()
    view = blocker.args[0]
    assert view.cancelled and 0 < view.files < 60
    assert "cancelled" in page.status.text()
    assert not page.is_busy() and not page.cancel_button.isVisible()

    slow_analysis()
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS) as blocker:
        page.reindex_button.click()
    resumed = blocker.args[0]
    assert not resumed.cancelled and resumed.files == 60
    assert resumed.index.last_build.analysed == 60 - view.files


def test_shutdown_while_indexing_leaves_nothing_running(
    page: DatasetsPage, qtbot, tmp_path: Path, slow_analysis
) -> None:
    page.add_folder(make_dataset(tmp_path / "d", {"real": 30, "fake": 30}))
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=WAIT_MS)
    page.shutdown()
    assert not page.is_busy()
    qtbot.wait(200)  # results queued before the shutdown are dropped
    assert page.view is None and background.pool().activeThreadCount() == 0


def test_clicking_a_finding_selects_its_files(page: DatasetsPage, qtbot, data: Path) -> None:
    index_through(page, qtbot, data)
    page.tabs.setCurrentIndex(2)
    [dups] = page.report.of_kind("duplicates")
    item = next(
        page.findings.topLevelItem(i)
        for i in range(page.findings.topLevelItemCount())
        if "exact copies" in page.findings.topLevelItem(i).text(0)
    )
    rect = page.findings.visualItemRect(item)
    qtbot.mouseClick(page.findings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.tabs.currentIndex() == 1
    assert page.model.rowCount() == 2
    assert page.selected_files() == dups.files == ["real/copy.png", "real/real_001.png"]

    page.tabs.setCurrentIndex(2)
    [unreadable] = [
        page.findings.topLevelItem(i)
        for i in range(page.findings.topLevelItemCount())
        if "unreadable files" in page.findings.topLevelItem(i).text(0)
    ]
    unreadable.setExpanded(True)
    child = unreadable.child(0)
    assert child.text(0).startswith("fake/empty.png: file is empty")
    rect = page.findings.visualItemRect(child)
    qtbot.mouseClick(page.findings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.selected_files() == ["fake/empty.png"]


def test_make_splits_button(page: DatasetsPage, qtbot, data: Path, tmp_path: Path) -> None:
    index_through(page, qtbot, data)
    page.seed.setValue(7)
    page.val.setValue(0.2)
    signals = [page.sig_index_finished, page.sig_hygiene_checked]
    with qtbot.waitSignals(signals, order="strict", timeout=WAIT_MS):
        page.split_button.click()
    view = page.view
    assert view.split_params == {"seed": 7, "val": 0.2, "test": 0.1}
    assert sum(view.splits.values()) == 24
    assert f"train {view.splits['train']}" in page.split_label.text()
    assert "(seed 7)" in page.split_label.text()

    index_through(page, qtbot, make_dataset(tmp_path / "one", {"only": 4}))
    with qtbot.waitSignal(page.sig_index_failed, timeout=WAIT_MS) as blocker:
        page.split_button.click()
    assert "at least 2 classes" in blocker.args[0]
    assert "at least 2 classes" in page.status.text() and page.split_button.isEnabled()


def test_bad_folder_is_reported(page: DatasetsPage, qtbot, tmp_path: Path) -> None:
    with qtbot.waitSignal(page.sig_index_failed, timeout=WAIT_MS) as blocker:
        page.add_folder(tmp_path / "missing")
    assert "no such folder" in blocker.args[0]
    assert "no such folder" in page.status.text()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=WAIT_MS)
    assert page.add_button.isEnabled()


def test_dropping_a_folder_indexes_it(page: DatasetsPage, qtbot, data: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(data))])
    event = QDropEvent(
        QPointF(QPoint(10, 10)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS) as blocker:
        page.dropEvent(event)
    assert blocker.args[0].counts == {"fake": 9, "real": 15}


def test_open_dataset_from_the_list(page: DatasetsPage, qtbot, data: Path, tmp_path: Path) -> None:
    index_through(page, qtbot, data)
    index_through(page, qtbot, make_dataset(tmp_path / "other", {"x": 2, "y": 3}))
    qtbot.waitUntil(lambda: page.datasets.count() == 2, timeout=WAIT_MS)
    item = next(
        page.datasets.item(i)
        for i in range(page.datasets.count())
        if page.datasets.item(i).text().endswith("/data")
    )
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS) as blocker:
        page.datasets.itemClicked.emit(item)
    view = blocker.args[0]
    assert view.index.root == data and view.index.last_build is None
    assert "Opened" in page.status.text()


def test_load_view_is_qt_free_data(tmp_path: Path) -> None:
    index = datasets.DatasetIndex.build(
        make_dataset(tmp_path / "d", {"a": 2, "b": 2}), Workspace(tmp_path / "ws")
    )
    view = page_module.load_view(index)
    assert view.class_files == {"a": 2, "b": 2} and view.splits is None and not view.cancelled


def test_an_incomplete_index_says_so_and_is_not_checked(
    page: DatasetsPage, qtbot, tmp_path: Path, slow_analysis
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 30, "fake": 30})
    page.add_folder(root)
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=WAIT_MS)
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS):
        page.cancel_indexing()
    files = page.view.files
    page._clear_view()
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS):
        page.open_dataset(root)  # as after a restart: the index alone tells
    notice = f"Index incomplete: {files} of 60 files — Re-index to finish"
    assert notice in page.summary.text() and notice in page.status.text()
    assert page.findings.topLevelItem(0).text(0).startswith("Not checked")
    assert page.findings.topLevelItemCount() == 1 and page.report is None
    assert page.tabs.tabText(2) == "Hygiene (not checked)"
    assert not page.split_button.isEnabled() and "wait" in page.split_label.text()
    assert page.reindex_button.isEnabled()


def test_summary_counts_what_the_scan_passed_over(
    page: DatasetsPage, qtbot, tmp_path: Path
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 3})
    (root / "real" / "a.txt").write_text("x")
    (root / "real" / "b.txt").write_text("x")
    (root / "real" / "loop").symlink_to(root / "real", target_is_directory=True)
    index_through(page, qtbot, root)
    text = page.summary.text()
    assert "3 files in 1 class," in text
    assert "2 non-image files ignored, 1 folder link skipped (loop or repeat)" in text
    assert "needs at least 2 classes to train" in text


def test_a_moved_folder_is_reported_and_can_be_forgotten(
    page: DatasetsPage, qtbot, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = index_through(page, qtbot, data)
    moved = data.rename(data.parent / "moved")
    with qtbot.waitSignal(page.sig_index_failed, timeout=WAIT_MS) as blocker:
        page.reindex_button.click()
    assert blocker.args[0] == f"Folder not found: {data} (moved or deleted?)"
    assert "Folder not found" in page.status.text() and page.view is None
    assert page.summary.text() == "No data set selected." and page.model.rowCount() == 0
    assert page.forget_button.isVisible()

    monkeypatch.setattr(page, "_confirm_forget", lambda root: False)
    page.forget_button.click()
    assert view.index.db_path.is_file()
    monkeypatch.setattr(page, "_confirm_forget", lambda root: root == str(data))
    with qtbot.waitSignal(page.sig_indexes_listed, timeout=WAIT_MS) as listed:
        page.forget_button.click()
    assert listed.args[0] == 0 and not view.index.db_path.exists()
    assert "Forgot" in page.status.text() and not page.forget_button.isVisible()
    assert moved.is_dir()  # the images are never touched


def test_forget_from_the_list_context_menu(
    page: DatasetsPage, qtbot, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_through(page, qtbot, data)
    qtbot.waitUntil(lambda: page.datasets.count() == 1, timeout=WAIT_MS)
    monkeypatch.setattr(page, "_confirm_forget", lambda root: True)
    shown: list = []
    monkeypatch.setattr(page_module.QMenu, "popup", lambda menu, _pos: shown.append(menu))
    rect = page.datasets.visualItemRect(page.datasets.item(0))
    page.datasets.customContextMenuRequested.emit(rect.center())
    [forget] = shown[0].actions()
    assert forget.text() == "Forget this data set…"
    with qtbot.waitSignal(page.sig_indexes_listed, timeout=WAIT_MS) as listed:
        forget.trigger()
    assert listed.args[0] == 0 and page.view is None


def test_clicking_a_data_set_while_indexing_says_why_not(
    page: DatasetsPage, qtbot, data: Path, tmp_path: Path, slow_analysis
) -> None:
    with qtbot.waitSignal(page.sig_indexes_listed, timeout=WAIT_MS):
        index_through(page, qtbot, data)
    page.add_folder(make_dataset(tmp_path / "d", {"real": 30, "fake": 30}))
    rect = page.datasets.visualItemRect(page.datasets.item(0))
    qtbot.mouseClick(page.datasets.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert "wait for it to finish or cancel it" in page.status.text()
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS):
        page.cancel_indexing()


def test_a_failed_hygiene_check_is_shown(
    page: DatasetsPage, qtbot, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_index):
        raise ValueError("no memory left")

    monkeypatch.setattr(page_module.hygiene, "check", broken)
    with qtbot.waitSignal(page.sig_index_finished, timeout=WAIT_MS):
        page.add_folder(data)
    qtbot.waitUntil(lambda: page.tabs.tabText(2) == "Hygiene (failed)", timeout=WAIT_MS)
    assert page.findings.topLevelItem(0).text(0) == "The hygiene check failed: no memory left"


def test_an_empty_workspace_says_how_to_add_a_data_set(page: DatasetsPage, qtbot) -> None:
    qtbot.waitUntil(lambda: page.datasets_stack.currentWidget() is page.datasets_empty)
    assert "No data sets yet" in page.datasets_empty.text()
    assert page.chart_stack.currentWidget() is page.chart_placeholder  # no empty 0.1-0.9 axes
    assert page.chart_placeholder.text().startswith("Add a data set folder")


def test_the_chart_replaces_its_placeholder_once_a_data_set_shows(
    page: DatasetsPage, qtbot, data: Path
) -> None:
    with qtbot.waitSignal(page.sig_indexes_listed, timeout=WAIT_MS):
        index_through(page, qtbot, data)
    assert page.datasets_stack.currentWidget() is page.datasets
    assert page.chart_stack.currentWidget() is page.chart
    assert page.chart.isVisible()
