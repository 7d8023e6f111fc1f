"""The Datasets page: import a folder-per-class data set, see its classes, images and problems.

* **Index** (add a folder by button or drop): :meth:`core.datasets.DatasetIndex.build` runs on a
  ``QThread`` in an :class:`IndexWorker` (a ``QObject``), which reports progress by signals and
  hands back a plain :class:`DatasetView`; it never touches widgets. Cancel keeps finished
  batches; indexing again resumes.
* **Overview**: classes as a bar chart (one pyqtgraph ``BarGraphItem``, updated in place), split
  sizes, and a seeded "make splits" form.
* **Images**: a virtualised grid (``QListView`` in icon mode over :class:`ThumbnailModel`) that
  pages rows from SQLite as the view scrolls (``canFetchMore``/``fetchMore``, keyset pages) and
  asks a dedicated ``QThreadPool`` for thumbnails of the rows actually painted; thumbnails are
  cached on disk by SHA-256 (:mod:`core.thumbnails`) and in memory (LRU).
* **Hygiene**: the :mod:`core.hygiene` findings as a tree, checked on a pool thread after the
  counts and grid are shown (it takes ~1.5 s at 40k images); clicking a finding or one of its
  groups shows and selects exactly those files in the grid.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSize,
    Qt,
    QThread,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage, QPainter, QShowEvent
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
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.style import ERROR, MUTED, PLOT_COLOURS
from app.widgets.background import pool as background_pool
from app.widgets.background import run_in_background
from app.widgets.page_header import PageHeader
from core import hygiene
from core.dataset_index import FileFacts
from core.datasets import DatasetIndex, known_indexes
from core.errors import UserError
from core.thumbnails import DEFAULT_SIZE, make_thumbnail
from core.workspace import Workspace

log = logging.getLogger(__name__)

PAGE_ROWS = 256
"""Rows fetched from SQLite per ``fetchMore``."""
IMAGE_CACHE = 4000
"""Thumbnails kept in memory (least recently used dropped first)."""
MAX_GROUPS_SHOWN = 500
"""Groups listed under one finding in the tree (the finding itself still selects all files)."""
ALL_CLASSES = "All classes"


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

    @property
    def imbalance_ratio(self) -> float | None:
        sizes = [n for n in self.counts.values() if n]
        return max(sizes) / min(sizes) if len(sizes) > 1 else None


def load_view(index: DatasetIndex, cancelled: bool = False) -> DatasetView:
    """Read an index's summary (SQLite queries: call on a worker thread)."""
    return DatasetView(
        index=index,
        counts=index.counts(),
        class_files={label: index.count(label) for label in index.class_names},
        files=index.count(),
        unreadable=len(index.errors()),
        splits=index.split_counts() if index.has_splits() else None,
        split_params=index.split_params(),
        cancelled=cancelled,
    )


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

    def __init__(self, root: str, workspace: Workspace, build: bool = True) -> None:
        super().__init__()
        self.root, self.workspace, self.build = root, workspace, build
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the build to stop after the current batch (safe from any thread)."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        try:
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
class _ThumbnailSignals(QObject):
    sig_thumbnail_ready = Signal(int, str, QImage)
    """``(generation, sha256, image)``; the image is null when the file cannot be decoded."""


class _ThumbnailTask(QRunnable):
    """Make (or find) one thumbnail file and load it as a ``QImage`` (thread-safe, unlike
    ``QPixmap``)."""

    def __init__(
        self, signals: _ThumbnailSignals, generation: int, path: Path, sha: str, cache: Path
    ) -> None:
        super().__init__()
        self.signals, self.generation = signals, generation
        self.path, self.sha, self.cache = path, sha, cache

    def run(self) -> None:
        made = make_thumbnail(self.path, self.sha, self.cache, DEFAULT_SIZE)
        image = QImage(str(made)) if made else QImage()
        if not image.isNull() and max(image.width(), image.height()) < DEFAULT_SIZE:
            # tiny images (32 px CIFAKE) are enlarged with visible pixels, not blurred
            image = image.scaled(
                DEFAULT_SIZE,
                DEFAULT_SIZE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        self.signals.sig_thumbnail_ready.emit(self.generation, self.sha, image)


def _placeholder(text: str, colour: str) -> QImage:
    image = QImage(DEFAULT_SIZE, DEFAULT_SIZE, QImage.Format.Format_RGB32)
    image.fill(QColor("#f3f4f6"))
    painter = QPainter(image)
    painter.setPen(QColor(colour))
    painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return image


class ThumbnailModel(QAbstractListModel):
    """The files of one class (or an explicit list), paged lazily from the index.

    Rows are :class:`core.dataset_index.FileFacts`. ``DecorationRole`` returns the cached
    thumbnail or, the first time a row is painted, a placeholder while a pool thread makes it.
    """

    sig_thumbnail_loaded = Signal(int)
    """A thumbnail reached the model; the argument is how many have so far (per source)."""

    def __init__(self, cache_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.pool.setExpiryTimeout(2000)
        self._signals = _ThumbnailSignals(self)
        self._signals.sig_thumbnail_ready.connect(self._on_task_thumbnail_ready)
        self._index: DatasetIndex | None = None
        self._label: str | None = None
        self._wanted: list[str] | None = None
        self._rows: list[FileFacts] = []
        self._rows_of: dict[str, list[int]] = {}
        self._exhausted = True
        self._generation = 0
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self._pending: set[str] = set()
        self.loaded = 0
        self._loading = _placeholder("…", MUTED)
        self._broken = _placeholder("unreadable", ERROR)

    # -- sources -------------------------------------------------------------------------------
    def show_class(self, index: DatasetIndex | None, label: str | None) -> None:
        """Show the files of class ``label`` (``None``: every class) of ``index``."""
        self._reset(index, label, None)

    def show_files(self, index: DatasetIndex, relpaths: list[str]) -> None:
        """Show exactly these files (sorted), e.g. those of a hygiene finding."""
        self._reset(index, None, sorted(relpaths))

    def _reset(self, index: DatasetIndex | None, label: str | None, wanted) -> None:
        self.beginResetModel()
        self._generation += 1
        self._pending.clear()
        self.pool.clear()
        self._index, self._label, self._wanted = index, label, wanted
        self._rows, self._rows_of = [], {}
        self._exhausted = index is None
        self.loaded = 0
        self.endResetModel()

    def facts(self, row: int) -> FileFacts:
        return self._rows[row]

    def row_of(self, relpath: str) -> int | None:
        """The row showing ``relpath`` among the rows fetched so far."""
        for row, facts in enumerate(self._rows):
            if facts.relpath == relpath:
                return row
        return None

    # -- lazy rows -----------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:
        if parent.isValid() or self._exhausted or self._index is None:
            return
        if self._wanted is not None:
            start = len(self._rows)
            batch = self._index.find(self._wanted[start : start + PAGE_ROWS])
            self._exhausted = start + PAGE_ROWS >= len(self._wanted)
        else:
            after = self._rows[-1].relpath if self._rows else None
            batch = self._index.records(self._label, limit=PAGE_ROWS, after=after)
            self._exhausted = len(batch) < PAGE_ROWS
        if not batch:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(batch) - 1)
        for row, facts in enumerate(batch, start=first):
            self._rows_of.setdefault(facts.sha256, []).append(row)
        self._rows.extend(batch)
        self.endInsertRows()

    # -- cells ---------------------------------------------------------------------------------
    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        facts = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(facts.relpath).name
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(facts)
        if role == Qt.ItemDataRole.UserRole:
            return facts.relpath
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnail(facts)
        return None

    def _thumbnail(self, facts: FileFacts) -> QImage:
        if facts.error is not None:
            return self._broken
        image = self._images.get(facts.sha256)
        if image is not None:
            self._images.move_to_end(facts.sha256)
            return image
        if facts.sha256 not in self._pending and self._index is not None:
            self._pending.add(facts.sha256)
            task = _ThumbnailTask(
                self._signals,
                self._generation,
                self._index.path(facts.relpath),
                facts.sha256,
                self.cache_dir,
            )
            self.pool.start(task)
        return self._loading

    @Slot(int, str, QImage)
    def _on_task_thumbnail_ready(self, generation: int, sha: str, image: QImage) -> None:
        self._pending.discard(sha)
        self._images[sha] = image if not image.isNull() else self._broken
        while len(self._images) > IMAGE_CACHE:
            self._images.popitem(last=False)
        if generation != self._generation:
            return
        self.loaded += 1
        for row in self._rows_of.get(sha, []):
            cell = self.index(row)
            self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DecorationRole])
        self.sig_thumbnail_loaded.emit(self.loaded)

    def shutdown(self) -> None:
        """Drop queued thumbnail work and wait for the running tasks."""
        self._generation += 1
        self.pool.clear()
        self.pool.waitForDone()


def _tooltip(facts: FileFacts) -> str:
    lines = [facts.relpath, f"class {facts.label}, {facts.bytes:,} bytes"]
    if facts.error:
        lines.append(f"unreadable: {facts.error}")
    else:
        detail = f"{facts.format} {facts.width}x{facts.height}"
        if facts.jpeg_quality:
            detail += f", JPEG quality ~{facts.jpeg_quality}"
        lines.append(detail)
    if facts.split:
        lines.append(f"split: {facts.split}")
    return "\n".join(lines)


# -- the page ----------------------------------------------------------------------------------
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
        layout.addWidget(self.status)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.datasets = QListWidget()
        self.datasets.setToolTip("Data sets indexed in this workspace")
        self.datasets.itemActivated.connect(self._on_datasets_item_activated)
        self.datasets.itemClicked.connect(self._on_datasets_item_activated)
        splitter.addWidget(self.datasets)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_overview(), "Overview")
        self.tabs.addTab(self._build_images(), "Images")
        self.tabs.addTab(self._build_hygiene(), "Hygiene")
        splitter.addWidget(self.tabs)
        splitter.setSizes([220, 900])
        layout.addWidget(splitter, 1)
        self._set_busy(False)

    # -- construction --------------------------------------------------------------------------
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
        layout.addWidget(self.chart, 1)

        splits = QGroupBox("Splits")
        form = QHBoxLayout(splits)
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
        for title, spin in (("Seed", self.seed), ("Validation", self.val), ("Test", self.test)):
            form.addWidget(QLabel(title))
            form.addWidget(spin)
        form.addWidget(self.split_button)
        form.addWidget(self.split_label, 1)
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
        self.model.rowsInserted.connect(self._on_model_rows_inserted)
        self.model.modelReset.connect(self._on_model_reset)
        self._select_new_rows = False
        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(PAGE_ROWS)
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
        self.findings.setHeaderLabels(["Finding", "Files"])
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
        """Show exactly these files in the grid and select them (pages fetched later, as the
        grid scrolls, are selected too)."""
        if self.view is None:
            return
        self.model.show_files(self.view.index, relpaths)
        self._select_new_rows = True
        self.model.fetchMore()
        self.grid_label.setText(f"{len(relpaths):,} files of a finding")
        self.tabs.setCurrentIndex(1)

    def selected_files(self) -> list[str]:
        """Relative paths of the files selected in the grid, sorted."""
        rows = self.grid.selectionModel().selectedIndexes()
        return sorted(self.model.facts(i.row()).relpath for i in rows)

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
            self.status.setText("Already indexing; cancel it first.")
            return
        self._thread = QThread(self)
        self._worker = IndexWorker(root, self.workspace, build)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.sig_progress_changed.connect(self._on_worker_progress_changed)
        self._worker.sig_index_finished.connect(self._on_worker_index_finished)
        self._worker.sig_index_failed.connect(self._on_worker_index_failed)
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
        self.split_button.setEnabled(not busy and self.view is not None)

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
                f"Indexed {view.index.root}: {build.analysed} files analysed, "
                f"{build.removed} removed, in {build.seconds:.1f} s."
            )
        else:
            self.status.setText(f"Opened {view.index.root}.")
        self.refresh_list()
        self.sig_index_finished.emit(view)

    @Slot(str)
    def _on_worker_index_failed(self, message: str) -> None:
        self._end_thread()
        self.status.setText(f"<span style='color:{ERROR}'>{message}</span>")
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
        names = list(view.counts)
        self.bars.setOpts(x=list(range(len(names))), height=list(view.counts.values()))
        self.chart.getPlotItem().getAxis("bottom").setTicks([list(enumerate(names))])
        self.chart.getPlotItem().enableAutoRange()
        ratio = view.imbalance_ratio
        self.summary.setText(
            f"<b>{view.index.root}</b><br>{view.files:,} files in {len(names)} classes, "
            f"{view.unreadable:,} unreadable"
            + (f", imbalance {ratio:.1f}:1" if ratio else "")
            + "<br>"
            + ", ".join(f"{name}: {count:,}" for name, count in view.counts.items())
        )
        if view.splits:
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
        self.report = None
        self.findings.clear()
        QTreeWidgetItem(self.findings, ["Checking…", ""])
        self.tabs.setTabText(2, "Hygiene (…)")
        run_in_background(hygiene.check, view.index, on_done=self._on_hygiene_checked)
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
            item = QTreeWidgetItem(
                self.findings, [f"{finding.severity}: {finding.message}", f"{len(files):,}"]
            )
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
        if root and not self.is_busy() and (self.view is None or str(self.view.index.root) != root):
            self.open_dataset(root)

    @Slot(object)
    def _on_indexes_listed(self, found: list[tuple[Path, Path]]) -> None:
        self.datasets.clear()
        for root, _db in found:
            item = QListWidgetItem(f"{root.parent.name}/{root.name}" if root.name else str(root))
            item.setToolTip(str(root))
            item.setData(Qt.ItemDataRole.UserRole, str(root))
            self.datasets.addItem(item)
        self.sig_indexes_listed.emit(len(found))

    @Slot(int)
    def _on_class_combo_changed(self, _position: int) -> None:
        if self.view is None:
            return
        label = self.class_combo.currentData()
        self.model.show_class(self.view.index, label)
        total = self.view.files if label is None else self.view.class_files.get(label, 0)
        self.grid_label.setText(f"{total:,} files")

    @Slot(QModelIndex, int, int)
    def _on_model_rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        if self._select_new_rows:
            rows = QItemSelection(self.model.index(first), self.model.index(last))
            self.grid.selectionModel().select(rows, QItemSelectionModel.SelectionFlag.Select)

    @Slot()
    def _on_model_reset(self) -> None:
        self._select_new_rows = False

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
            on_error=self._on_splits_failed,
        )

    @Slot(object)
    def _on_splits_made(self, view: DatasetView) -> None:
        self._show_view(view)
        self.status.setText(f"Splits made: {self.split_label.text()}")
        self.sig_index_finished.emit(view)

    @Slot(str)
    def _on_splits_failed(self, message: str) -> None:
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
