"""The Datasets page: import a folder-per-class data set, see its classes, images and problems.

* **Index** (add a folder by button or drop): :meth:`core.datasets.DatasetIndex.build` runs on a
  ``QThread`` in an :class:`IndexWorker` (a ``QObject``), which reports progress by signals and
  hands back a plain :class:`DatasetView`; it never touches widgets. Cancel keeps finished
  batches; indexing again resumes.
* **Overview**: classes as a bar chart (one pyqtgraph ``BarGraphItem``, updated in place), split
  sizes, and a seeded "make splits" form.
* **Images**: a virtualised grid (``QListView`` in icon mode over :class:`ThumbnailModel`) with
  one row per file from the start (the scroll bar spans them all; End jumps to the last); rows
  are read from SQLite a page at a time when painted (LRU cache of pages) and a dedicated
  ``QThreadPool`` makes thumbnails of the rows actually painted; thumbnails are cached on disk
  by SHA-256 (:mod:`core.thumbnails`) and in memory (LRU).
* An **incomplete** index (a build cancelled or killed) says so (N of M files, Re-index to
  finish) and is neither checked for hygiene nor split; an indexed folder that is gone says so
  and can be forgotten (its index deleted), as can any data set from the list's context menu.
* **Hygiene**: the :mod:`core.hygiene` findings as a tree, checked on a pool thread after the
  counts and grid are shown (it takes ~1.5 s at 40k images); clicking a finding or one of its
  groups shows and selects exactly those files in the grid.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QObject,
    QPoint,
    QSize,
    Qt,
    QThread,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.pages.dataset_grid import ThumbnailModel
from app.style import ERROR, MUTED, PLOT_COLOURS, WARNING
from app.widgets.background import pool as background_pool
from app.widgets.background import run_in_background
from app.widgets.formatting import plural
from app.widgets.page_header import PageHeader
from app.widgets.placeholder import placeholder
from core import hygiene
from core.datasets import DatasetIndex, default_db_path, forget_index, known_indexes
from core.errors import UserError
from core.thumbnails import DEFAULT_SIZE
from core.workspace import Workspace

log = logging.getLogger(__name__)

MAX_GROUPS_SHOWN = 500
"""Groups listed under one finding in the tree (the finding itself still selects all files)."""
ALL_CLASSES = "All classes"
SEVERITY_LOOK = {
    "error": ("Error", ERROR),
    "warning": ("Warning", WARNING),
    "info": ("Note", MUTED),
}
"""How a hygiene finding's severity reads and is coloured in the findings tree."""
LIST_MIN_WIDTH = 150
"""The data set list keeps room for a folder name (and its empty-list line) at the smallest window."""
NO_DATASETS = "No data sets yet.\nAdd folder… or drop one here."
NO_DATASET_CHART = (
    "Add a data set folder: Add folder… above, or drop it here. Its images per class show here."
)
PICK_DATASET_CHART = "Select a data set in the list to see its images per class."


# -- plain data built off the GUI thread --------------------------------------------------------
@dataclass(frozen=True)
class DatasetView:
    """Everything the page shows about one index, computed on a worker thread."""

    index: DatasetIndex
    counts: dict[str, int]
    """Readable images per class."""
    class_files: dict[str, int]
    """Files per class, unreadable included (what the grid lists)."""
    files: int
    unreadable: int
    splits: dict[str, int] | None
    split_params: dict[str, float] | None
    cancelled: bool = False
    complete: bool = True
    """Whether the last build finished; an incomplete index is neither checked nor split."""
    expected: int | None = None
    """Image files the last build found in the folder (``None``: not recorded)."""
    ignored: int = 0
    """Non-image files the last scan passed over."""
    links_skipped: int = 0
    """Folder links the last scan did not follow (a loop, or a folder already indexed)."""

    @property
    def imbalance_ratio(self) -> float | None:
        sizes = [n for n in self.counts.values() if n]
        return max(sizes) / min(sizes) if len(sizes) > 1 else None

    def incomplete_notice(self) -> str | None:
        """``"Index incomplete: N of M files — Re-index to finish"``, or ``None`` if complete."""
        if self.complete:
            return None
        if self.expected is not None and self.files < self.expected:
            done = f"{self.files:,} of {plural(self.expected, 'file')}"
        else:
            done = "indexing stopped early"
        return f"Index incomplete: {done} — Re-index to finish"

    def passed_over(self) -> str:
        """``"2 non-image files ignored, 1 folder link skipped (loop or repeat)"``, or blank."""
        parts = []
        if self.ignored:
            parts.append(f"{plural(self.ignored, 'non-image file')} ignored")
        if self.links_skipped:
            parts.append(f"{plural(self.links_skipped, 'folder link')} skipped (loop or repeat)")
        return ", ".join(parts)


def load_view(index: DatasetIndex, cancelled: bool = False) -> DatasetView:
    """Read an index's summary (SQLite queries: call on a worker thread)."""
    ignored, links_skipped = index.passed_over()
    return DatasetView(
        index=index,
        counts=index.counts(),
        class_files={label: index.count(label) for label in index.class_names},
        files=index.count(),
        unreadable=len(index.errors()),
        splits=index.split_counts() if index.has_splits() else None,
        split_params=index.split_params(),
        cancelled=cancelled,
        complete=index.is_complete(),
        expected=index.expected_files(),
        ignored=ignored,
        links_skipped=links_skipped,
    )


def summary_html(view: DatasetView) -> str:
    """The Overview's rich-text summary: folder, notices, counts, what the scan passed over."""
    names = list(view.counts)
    lines = [f"<b>{view.index.root}</b>"]
    notice = view.incomplete_notice()
    if notice:
        lines.append(f"<span style='color:{ERROR}'>{notice}</span>")
    elif len(names) == 1:
        lines.append(
            f"<span style='color:{ERROR}'>Only 1 class: needs at least 2 classes to "
            "train (one subfolder per class).</span>"
        )
    ratio = view.imbalance_ratio
    lines.append(
        f"{plural(view.files, 'file')} in {plural(len(names), 'class', 'classes')}, "
        f"{view.unreadable:,} unreadable" + (f", imbalance {ratio:.1f}:1" if ratio else "")
    )
    if view.passed_over():
        lines.append(view.passed_over())
    lines.append(", ".join(f"{name}: {count:,}" for name, count in view.counts.items()))
    return "<br>".join(lines)


def make_splits_view(index: DatasetIndex, seed: int, val: float, test: float) -> DatasetView:
    """Make splits, then reload the view (worker thread)."""
    index.make_splits(seed=seed, val=val, test=test)
    return load_view(index)


# -- indexing worker ---------------------------------------------------------------------------
class IndexWorker(QObject):
    """Builds (or opens) an index on its own thread; talks only through signals."""

    sig_progress_changed = Signal(int, int)
    sig_index_finished = Signal(object)
    """A :class:`DatasetView` (``cancelled`` set when the user stopped it)."""
    sig_index_failed = Signal(str)
    sig_folder_missing = Signal(str)
    """The folder of an indexed data set is gone (moved or deleted); its root."""

    def __init__(self, root: str, workspace: Workspace, build: bool = True) -> None:
        super().__init__()
        self.root, self.workspace, self.build = root, workspace, build
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the build to stop after the current batch (safe from any thread)."""
        self._cancel.set()

    def _folder_missing(self) -> bool:
        """Whether the folder is gone although the workspace holds its index."""
        root = Path(self.root)
        return not root.is_dir() and default_db_path(root, self.workspace).is_file()

    @Slot()
    def run(self) -> None:
        try:
            if self._folder_missing():
                self.sig_folder_missing.emit(self.root)
                return
            if self.build:
                index = DatasetIndex.build(
                    self.root,
                    self.workspace,
                    progress=self.sig_progress_changed.emit,
                    cancel=self._cancel.is_set,
                )
                cancelled = index.last_build.cancelled
            else:
                index, cancelled = DatasetIndex.open(self.root, self.workspace), False
            view = load_view(index, cancelled)
        except UserError as exc:
            self.sig_index_failed.emit(str(exc))
        except Exception as exc:  # shown to the user; the page stays usable
            log.exception("indexing %s failed", self.root)
            self.sig_index_failed.emit(f"indexing failed: {exc}")
        else:
            self.sig_index_finished.emit(view)


# -- thumbnails --------------------------------------------------------------------------------
class DatasetsPage(QWidget):
    """Index data sets, browse their images, make splits and review hygiene findings."""

    sig_index_finished = Signal(object)
    """A :class:`DatasetView` is shown (after indexing, opening or making splits)."""
    sig_index_failed = Signal(str)
    sig_hygiene_checked = Signal(object)
    """The :class:`core.hygiene.HygieneReport` of the data set shown is ready."""
    sig_indexes_listed = Signal(int)
    """The list of the workspace's indexed data sets was (re)loaded; how many."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        self.setAcceptDrops(True)
        self.workspace = workspace
        self.view: DatasetView | None = None
        self.report: hygiene.HygieneReport | None = None
        self._thread: QThread | None = None
        self._worker: IndexWorker | None = None
        self._listed = False
        self._closed = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        header = PageHeader(
            "Datasets",
            "A data set is a folder with one subfolder per class (real/, fake/ or one per "
            "generator). Add or drop one here: it is indexed once, re-indexed incrementally, "
            "and checked for unreadable files, duplicates and shortcuts.",
        )
        self.add_button = QPushButton("Add folder…")
        self.add_button.setObjectName("primary")
        self.add_button.clicked.connect(self._on_add_clicked)
        self.reindex_button = QPushButton("Re-index")
        self.reindex_button.setToolTip("Pick up added, changed and removed files")
        self.reindex_button.clicked.connect(self._on_reindex_clicked)
        header.actions.addWidget(self.reindex_button)
        header.actions.addWidget(self.add_button)
        layout.addWidget(header)

        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m files")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        self.status = QLabel("Add a folder to start.")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        self.forget_button = QPushButton("Forget…")
        self.forget_button.setToolTip("Remove this data set from the list and delete its index")
        self.forget_button.clicked.connect(self._on_forget_clicked)
        self.forget_button.setVisible(False)
        self._missing_root: str | None = None
        status_row.addWidget(self.forget_button)
        layout.addLayout(status_row)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.datasets = QListWidget()
        self.datasets.setToolTip("Data sets indexed in this workspace")
        self.datasets.itemActivated.connect(self._on_datasets_item_activated)
        self.datasets.itemClicked.connect(self._on_datasets_item_activated)
        self.datasets.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.datasets.customContextMenuRequested.connect(self._on_datasets_context_menu)
        splitter.addWidget(self._build_list())
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_overview(), "Overview")
        self.tabs.addTab(self._build_images(), "Images")
        self.tabs.addTab(self._build_hygiene(), "Hygiene")
        splitter.addWidget(self.tabs)
        splitter.setSizes([220, 900])
        layout.addWidget(splitter, 1)
        self._set_busy(False)

    # -- construction --------------------------------------------------------------------------
    def _build_list(self) -> QWidget:
        """The data set list under its heading, or a line saying how to add the first one."""
        box = QWidget()
        box.setMinimumWidth(LIST_MIN_WIDTH)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        heading = QLabel("Data sets")
        heading.setObjectName("sectionTitle")
        layout.addWidget(heading)
        self.datasets_empty = placeholder(NO_DATASETS)
        self.datasets_stack = QStackedWidget()
        self.datasets_stack.addWidget(self.datasets_empty)
        self.datasets_stack.addWidget(self.datasets)
        self.datasets_stack.setCurrentWidget(self.datasets)  # until the listing says it is empty
        layout.addWidget(self.datasets_stack, 1)
        return box

    def _build_overview(self) -> QWidget:
        os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
        import pyqtgraph as pg

        import app.widgets.live_plot  # noqa: F401  (pyqtgraph configured for PySide6)

        box = QWidget()
        layout = QVBoxLayout(box)
        self.summary = QLabel("No data set selected.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.chart = pg.PlotWidget()
        plot = self.chart.getPlotItem()
        plot.setTitle("<span style='font-size:10pt;font-weight:600'>Readable images per class</span>")  # fmt: skip
        plot.showGrid(y=True, alpha=0.15)
        plot.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=PLOT_COLOURS[0])
        plot.addItem(self.bars)
        self.chart_placeholder = placeholder(NO_DATASET_CHART)
        self.chart_stack = QStackedWidget()
        self.chart_stack.addWidget(self.chart_placeholder)
        self.chart_stack.addWidget(self.chart)
        layout.addWidget(self.chart_stack, 1)

        splits = QGroupBox("Splits")
        column = QVBoxLayout(splits)
        form = QHBoxLayout()
        column.addLayout(form)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.val = QDoubleSpinBox()
        self.test = QDoubleSpinBox()
        for spin, value in ((self.val, 0.1), (self.test, 0.1)):
            spin.setRange(0.0, 0.9)
            spin.setSingleStep(0.05)
            spin.setValue(value)
        self.split_button = QPushButton("Make splits")
        self.split_button.setToolTip(
            "Seeded and stratified per class; identical files stay in one split"
        )
        self.split_button.clicked.connect(self._on_split_clicked)
        self.split_label = QLabel("No splits yet.")
        self.split_label.setWordWrap(True)  # its own line: the row stays whole at 960 px
        for title, spin in (("Seed", self.seed), ("Validation", self.val), ("Test", self.test)):
            form.addWidget(QLabel(title))
            form.addWidget(spin)
        form.addWidget(self.split_button)
        form.addStretch(1)
        column.addWidget(self.split_label)
        layout.addWidget(splits)
        return box

    def _build_images(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        self.class_combo = QComboBox()
        self.class_combo.currentIndexChanged.connect(self._on_class_combo_changed)
        row.addWidget(self.class_combo, 1)
        self.grid_label = QLabel()
        self.grid_label.setObjectName("muted")
        row.addWidget(self.grid_label)
        layout.addLayout(row)
        self.model = ThumbnailModel(self.workspace.thumbnails, self)
        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setIconSize(QSize(DEFAULT_SIZE, DEFAULT_SIZE))
        self.grid.setGridSize(QSize(DEFAULT_SIZE + 24, DEFAULT_SIZE + 28))
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setModel(self.model)
        layout.addWidget(self.grid, 1)
        return box

    def _build_hygiene(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        note = QLabel("Click a finding or a group to see its files in Images.")
        note.setObjectName("muted")
        layout.addWidget(note)
        self.findings = QTreeWidget()
        self.findings.setHeaderLabels(["Finding", "Files involved"])
        self.findings.headerItem().setToolTip(
            1, "every file of the finding: all copies of a duplicate group count, the original too"
        )
        self.findings.setWordWrap(True)
        self.findings.header().setStretchLastSection(False)
        self.findings.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.findings.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.findings.itemClicked.connect(self._on_findings_item_clicked)
        layout.addWidget(self.findings, 1)
        return box

    # -- public API ----------------------------------------------------------------------------
    def add_folder(self, path: str | os.PathLike) -> None:
        """Index ``path`` (incrementally) on a worker thread and show it."""
        self._start(str(path), build=True)

    def open_dataset(self, root: str | os.PathLike) -> None:
        """Show an already indexed data set (no re-indexing)."""
        self._start(str(root), build=False)

    def cancel_indexing(self) -> None:
        """Stop the running build after its current batch; what was done is kept."""
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("Cancelling…")

    def is_busy(self) -> bool:
        return self._thread is not None

    def refresh_list(self) -> None:
        """Reload the list of data sets indexed in the workspace (worker thread)."""
        if self._closed:
            return
        run_in_background(known_indexes, self.workspace, on_done=self._on_indexes_listed)

    def show_files(self, relpaths: list[str]) -> None:
        """Show exactly these files in the grid and select all of them (one range)."""
        if self.view is None:
            return
        self.model.show_files(self.view.index, relpaths)
        if relpaths:
            every = QItemSelection(self.model.index(0), self.model.index(len(relpaths) - 1))
            self.grid.selectionModel().select(every, QItemSelectionModel.SelectionFlag.Select)
        self.grid_label.setText(f"{plural(len(relpaths), 'file')} of a finding")
        self.tabs.setCurrentIndex(1)

    def selected_files(self) -> list[str]:
        """Relative paths of the files selected in the grid, sorted."""
        ranges = self.grid.selectionModel().selection()
        rows = (row for r in ranges for row in range(r.top(), r.bottom() + 1))
        return sorted(path for row in rows if (path := self.model.relpath(row)) is not None)

    def forget_dataset(self, root: str) -> None:
        """After the user confirms, delete the index of ``root`` from the workspace (the folder
        itself is not touched) and drop it from the list."""
        if self.is_busy() or not self._confirm_forget(root):
            return
        run_in_background(
            forget_index,
            default_db_path(Path(root), self.workspace),
            on_done=lambda _=None: self._on_dataset_forgotten(root),
            on_error=self._on_task_failed,
        )

    def shutdown(self) -> None:
        """Stop the worker thread and the thumbnail pool (the window calls this on close).

        Results still queued for the page are dropped, so no new work starts afterwards.
        """
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        self._end_thread()
        self.model.shutdown()
        background_pool().waitForDone()  # a hygiene check or split still reading the index

    # -- indexing ------------------------------------------------------------------------------
    def _start(self, root: str, build: bool) -> None:
        if self.is_busy():
            self.status.setText(
                "Indexing is running: wait for it to finish or cancel it, then open another "
                "data set."
            )
            return
        self._thread = QThread(self)
        self._worker = IndexWorker(root, self.workspace, build)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.sig_progress_changed.connect(self._on_worker_progress_changed)
        self._worker.sig_index_finished.connect(self._on_worker_index_finished)
        self._worker.sig_index_failed.connect(self._on_worker_index_failed)
        self._worker.sig_folder_missing.connect(self._on_worker_folder_missing)
        self.forget_button.setVisible(False)
        self.progress.setRange(0, 0)
        self.status.setText(f"{'Indexing' if build else 'Opening'} {root}…")
        self._set_busy(True)
        self._thread.start()

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.add_button.setEnabled(not busy)
        self.reindex_button.setEnabled(not busy and self.view is not None)
        self.split_button.setEnabled(not busy and self.view is not None and self.view.complete)
        self.forget_button.setEnabled(not busy)

    @Slot(int, int)
    def _on_worker_progress_changed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    @Slot(object)
    def _on_worker_index_finished(self, view: DatasetView) -> None:
        self._end_thread()
        self._show_view(view)
        build = view.index.last_build
        if view.cancelled:
            self.status.setText(
                f"Indexing cancelled after {build.analysed} files; "
                "Re-index continues where it stopped."
            )
        elif build is not None:
            self.status.setText(
                f"Indexed {view.index.root}: {plural(build.analysed, 'file')} analysed, "
                f"{build.removed:,} removed, in {build.seconds:.1f} s."
            )
        else:
            notice = view.incomplete_notice()
            self.status.setText(f"Opened {view.index.root}." + (f" {notice}." if notice else ""))
        self.refresh_list()
        self.sig_index_finished.emit(view)

    @Slot(str)
    def _on_worker_index_failed(self, message: str) -> None:
        self._end_thread()
        self.status.setText(f"<span style='color:{ERROR}'>{message}</span>")
        self.sig_index_failed.emit(message)

    @Slot(str)
    def _on_worker_folder_missing(self, root: str) -> None:
        self._end_thread()
        self._clear_view()
        message = f"Folder not found: {root} (moved or deleted?)"
        self.status.setText(
            f"<span style='color:{ERROR}'>{message}</span> Forget it to remove it from the list."
        )
        self._missing_root = root
        self.forget_button.setVisible(True)
        self.sig_index_failed.emit(message)

    def _end_thread(self) -> None:
        """Wait for the index thread to end: at once after the worker's last signal, or after
        at most one batch once cancelled."""
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
            self._thread.deleteLater()
        if self._worker is not None:
            self._worker.deleteLater()
        self._worker = self._thread = None
        self._set_busy(False)

    # -- showing a data set --------------------------------------------------------------------
    def _show_view(self, view: DatasetView) -> None:
        if self._closed:
            return
        self.view = view
        self.forget_button.setVisible(False)
        names = list(view.counts)
        self._show_chart(view.counts)
        self.summary.setText(summary_html(view))
        if not view.complete:
            self.split_label.setText("Splits wait until indexing finishes (Re-index).")
        elif view.splits:
            params = view.split_params or {}
            self.split_label.setText(
                " · ".join(f"{name} {count:,}" for name, count in view.splits.items())
                + f" (seed {params.get('seed')})"
            )
        else:
            self.split_label.setText("No splits yet.")
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem(ALL_CLASSES, None)
        for name in names:
            self.class_combo.addItem(f"{name} ({view.counts[name]:,})", name)
        self.class_combo.blockSignals(False)
        self._on_class_combo_changed(0)
        self._check_hygiene(view)
        self._set_busy(self.is_busy())

    def _show_chart(self, counts: dict[str, int]) -> None:
        names = list(counts)
        self.chart_stack.setCurrentWidget(self.chart if names else self.chart_placeholder)
        self.bars.setOpts(x=list(range(len(names))), height=list(counts.values()))
        self.chart.getPlotItem().getAxis("bottom").setTicks([list(enumerate(names))])
        self.chart.getPlotItem().enableAutoRange()

    def _check_hygiene(self, view: DatasetView) -> None:
        """Start the hygiene check on a pool thread; an incomplete index is not checked."""
        self.report = None
        self.findings.clear()
        if not view.complete:
            note = "Not checked: hygiene is checked once indexing finishes (Re-index to finish)."
            QTreeWidgetItem(self.findings, [note, ""])
            self.tabs.setTabText(2, "Hygiene (not checked)")
            return
        QTreeWidgetItem(self.findings, ["Checking…", ""])
        self.tabs.setTabText(2, "Hygiene (…)")
        root = str(view.index.root)
        run_in_background(
            hygiene.check,
            view.index,
            on_done=self._on_hygiene_checked,
            on_error=lambda message: self._on_hygiene_failed(root, message),
        )

    def _on_hygiene_failed(self, root: str, message: str) -> None:
        if self.view is None or str(self.view.index.root) != root:
            return
        self.findings.clear()
        QTreeWidgetItem(self.findings, [f"The hygiene check failed: {message}", ""])
        self.tabs.setTabText(2, "Hygiene (failed)")

    def _clear_view(self) -> None:
        """Show no data set (its folder is gone, or its index was forgotten)."""
        self.view = self.report = None
        self.summary.setText("No data set selected.")
        self._show_chart({})
        self.split_label.setText("No splits yet.")
        self.class_combo.clear()
        self.model.show_class(None, None, 0)
        self.grid_label.clear()
        self.findings.clear()
        self.tabs.setTabText(2, "Hygiene")
        self._set_busy(self.is_busy())

    @Slot(object)
    def _on_hygiene_checked(self, report: hygiene.HygieneReport) -> None:
        if self.view is None or report.root != str(self.view.index.root):
            return  # another data set was opened meanwhile
        self.report = report
        self._show_findings(report)
        self.tabs.setTabText(2, f"Hygiene ({len(report.findings)})")
        self.sig_hygiene_checked.emit(report)

    def _show_findings(self, report: hygiene.HygieneReport) -> None:
        self.findings.clear()
        if not report.findings:
            QTreeWidgetItem(self.findings, ["No problems found.", ""])
        for finding in report.findings:
            files = finding.files
            word, colour = SEVERITY_LOOK.get(finding.severity, (finding.severity, MUTED))
            item = QTreeWidgetItem(self.findings, [f"{word}: {finding.message}", f"{len(files):,}"])
            item.setForeground(0, QBrush(QColor(colour)))
            item.setData(0, Qt.ItemDataRole.UserRole, files)
            item.setToolTip(0, finding.message)
            if len(finding.groups) > 1:
                for group in finding.groups[:MAX_GROUPS_SHOWN]:
                    child = QTreeWidgetItem(item, [", ".join(group[:4]), str(len(group))])
                    child.setData(0, Qt.ItemDataRole.UserRole, group)
                hidden = len(finding.groups) - MAX_GROUPS_SHOWN
                if hidden > 0:
                    QTreeWidgetItem(item, [f"… {hidden:,} more groups", ""])
            for relpath, note in list(finding.notes.items())[:MAX_GROUPS_SHOWN]:
                child = QTreeWidgetItem(item, [f"{relpath}: {note}", "1"])
                child.setData(0, Qt.ItemDataRole.UserRole, [relpath])

    # -- handlers ------------------------------------------------------------------------------
    @Slot()
    def _on_add_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data set folder (one subfolder per class)")
        if folder:
            self.add_folder(folder)

    @Slot()
    def _on_reindex_clicked(self) -> None:
        if self.view is not None:
            self.add_folder(self.view.index.root)

    @Slot(QListWidgetItem)
    def _on_datasets_item_activated(self, item: QListWidgetItem) -> None:
        root = item.data(Qt.ItemDataRole.UserRole)
        shown = self.view is not None and str(self.view.index.root) == root
        if root and (self.is_busy() or not shown):
            self.open_dataset(root)  # while an index runs, this says to wait or cancel

    @Slot(QPoint)
    def _on_datasets_context_menu(self, position: QPoint) -> None:
        item = self.datasets.itemAt(position)
        if item is None:
            return
        menu = QMenu(self)
        forget = menu.addAction("Forget this data set…")
        forget.setEnabled(not self.is_busy())
        root = item.data(Qt.ItemDataRole.UserRole)
        forget.triggered.connect(lambda: self.forget_dataset(root))
        menu.popup(self.datasets.viewport().mapToGlobal(position))

    @Slot()
    def _on_forget_clicked(self) -> None:
        if self._missing_root:
            self.forget_dataset(self._missing_root)

    def _confirm_forget(self, root: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Forget data set",
            f"Remove {root} from the list and delete its index? The folder and its images are "
            "not touched; adding the folder again re-indexes it.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_dataset_forgotten(self, root: str) -> None:
        if self.view is not None and str(self.view.index.root) == root:
            self._clear_view()
        self.forget_button.setVisible(False)
        self._missing_root = None
        self.status.setText(f"Forgot {root}: its index was deleted (the folder was not touched).")
        self.refresh_list()

    @Slot(object)
    def _on_indexes_listed(self, found: list[tuple[Path, Path]]) -> None:
        self.datasets.clear()
        for root, _db in found:
            item = QListWidgetItem(f"{root.parent.name}/{root.name}" if root.name else str(root))
            item.setToolTip(str(root))
            item.setData(Qt.ItemDataRole.UserRole, str(root))
            self.datasets.addItem(item)
        self.datasets_stack.setCurrentWidget(self.datasets if found else self.datasets_empty)
        self.chart_placeholder.setText(PICK_DATASET_CHART if found else NO_DATASET_CHART)
        self.sig_indexes_listed.emit(len(found))

    @Slot(int)
    def _on_class_combo_changed(self, _position: int) -> None:
        if self.view is None:
            return
        label = self.class_combo.currentData()
        total = self.view.files if label is None else self.view.class_files.get(label, 0)
        self.model.show_class(self.view.index, label, total)
        self.grid_label.setText(plural(total, "file"))

    @Slot(QTreeWidgetItem, int)
    def _on_findings_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        files = item.data(0, Qt.ItemDataRole.UserRole)
        if files:
            self.show_files(list(files))

    @Slot()
    def _on_split_clicked(self) -> None:
        if self.view is None:
            return
        self.split_button.setEnabled(False)
        self.status.setText("Making splits…")
        run_in_background(
            make_splits_view,
            self.view.index,
            self.seed.value(),
            round(self.val.value(), 4),
            round(self.test.value(), 4),
            on_done=self._on_splits_made,
            on_error=self._on_task_failed,
        )

    @Slot(object)
    def _on_splits_made(self, view: DatasetView) -> None:
        self._show_view(view)
        self.status.setText(f"Splits made: {self.split_label.text()}")
        self.sig_index_finished.emit(view)

    @Slot(str)
    def _on_task_failed(self, message: str) -> None:
        self.status.setText(f"<span style='color:{ERROR}'>{message}</span>")
        self._set_busy(self.is_busy())
        self.sig_index_failed.emit(message)

    # -- Qt events -----------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._listed:
            self._listed = True
            self.refresh_list()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(Path(url.toLocalFile()).is_dir() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = [
            u.toLocalFile() for u in event.mimeData().urls() if Path(u.toLocalFile()).is_dir()
        ]
        if folders:
            event.acceptProposedAction()
            self.add_folder(folders[0])
