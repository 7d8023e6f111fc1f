"""The Check page: drop photos or folders, get Real / Fake / Unknown verdicts as they come.

Everything slow happens off the GUI thread: the bundle loads on the background pool
(:func:`app.check_worker.load_predictor`), images are checked by a :class:`CheckRunner` thread
that sends results in rate-limited chunks, thumbnails and the large preview with its heatmap are
decoded on the pool. The page only appends rows and paints. Dropping a bundle (a folder or .zip
with ``bundle.json``) switches the model instead of checking it.

Hooks for the main window: :meth:`CheckPage.set_bundle` (its ``sig_bundle_changed``) and
:attr:`CheckPage.sig_bundle_selected` (a bundle dropped or chosen here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontMetrics,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app import style
from app.check_worker import (
    CheckRunner,
    is_bundle,
    load_default_predictor,
    load_predictor,
)
from app.pages.check_detail import DetailPanel
from app.pages.check_model import (
    MODEL_ROLE,
    RESULT_ROLE,
    CheckResultsModel,
    Column,
    ConfidenceDelegate,
    ModelInfo,
    VerdictDelegate,
    VerdictFilterProxy,
    count_words,
    describe_threshold,
    verdict_filters,
    verdict_style,
)
from app.widgets.background import run_in_background
from app.widgets.formatting import plural
from app.widgets.page_header import PageHeader
from core.bundle import BUNDLE_FILE, default_bundle_path
from core.inference import IMAGE_EXTENSIONS, CheckResult
from core.report_export import write_report
from core.workspace import Workspace

log = logging.getLogger(__name__)

FILTERS = verdict_filters()
COUNT_WORDS = count_words()
ROW_HEIGHT = 54
COLUMN_WIDTHS = ((Column.THUMBNAIL, ROW_HEIGHT + 4), (Column.FILE, 160), (Column.CONFIDENCE, 120))
"""Starting widths; Verdict fits the model's longest verdict, Explanation takes the rest."""
VERDICT_WIDTH = (150, 220)
"""The Verdict column's width range in pixels."""
DETAIL_SHARE = 0.32
"""The detail panel's share of the results area when the page is first laid out."""
IMAGE_FILTER = "Images ({})".format(" ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS)))

PAGE_STYLE = f"""
QLabel#dropZone {{
    border: 2px dashed #cbd5e1; border-radius: 12px; background: {style.SURFACE};
    color: {style.MUTED}; font-size: 11pt; padding: 30px;
}}
QLabel#dropZone[dragging="true"] {{ border-color: {style.ACCENT}; background: #eff6ff; }}
QFrame#modelBar {{ background: {style.SURFACE}; border: 1px solid {style.BORDER}; border-radius: 8px; }}
QFrame#modelBar[state="missing"] {{ background: #fffbeb; border-color: #fcd34d; }}
QFrame#modelBar[state="error"] {{ background: #fef2f2; border-color: #fecaca; }}
QLabel#modelName {{ font-weight: 600; }}
QLabel#message {{ border-radius: 6px; padding: 6px 10px; }}
QLabel#message[kind="info"] {{ background: #eff6ff; color: #1e3a8a; }}
QLabel#message[kind="warning"] {{ background: #fffbeb; color: #92400e; }}
QLabel#message[kind="error"] {{ background: #fef2f2; color: {style.ERROR}; }}
QFrame#detail {{ background: {style.SURFACE}; border: 1px solid {style.BORDER}; border-radius: 8px; }}
QLabel#detailTitle {{ font-size: 11.5pt; font-weight: 600; }}
QLabel#detailImage {{ background: #f8fafc; border-radius: 6px; }}
QLabel#detailVerdict {{ font-size: 12pt; font-weight: 700; }}
QTableView {{
    background: {style.SURFACE}; border: 1px solid {style.BORDER}; border-radius: 6px;
    selection-background-color: #dbeafe; selection-color: {style.TEXT};
    alternate-background-color: #f9fafb;
}}
"""


def model_label(predictor: Any) -> str:
    """The bundle's name as the page shows it, e.g. ``default (default model)``."""
    bundle = predictor.bundle
    name = Path(bundle.source or bundle.root).name
    if bundle.source is None or Path(bundle.source).resolve() == default_bundle_path():
        name = f"{name} (default model)"
    return name


def _restyle(widget: QWidget, name: str, value: str) -> None:
    """Set a dynamic property used by the style sheet and re-polish the widget."""
    widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class CheckPage(QWidget):
    """Check images with the active model bundle; see the module docstring."""

    sig_bundle_selected = Signal(str)
    """A bundle the user dropped or chose here, once it loaded (the main window makes it the
    active one)."""
    sig_model_changed = Signal(str)
    """The model in use changed: its one-line description ('' when none could be loaded)."""
    sig_check_finished = Signal(dict)
    """A run ended: ``{"checked", "errors", "cancelled", "seconds", "message"}``."""
    sig_report_written = Signal(str)

    def __init__(
        self, workspace: Workspace, parent: QWidget | None = None, *, chunk_ms: int = 80
    ) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        self.setAcceptDrops(True)
        self.setStyleSheet(PAGE_STYLE)
        self.workspace = workspace
        self.predictor: Any = None
        self.bundle_path: str | None = None
        """The bundle asked for (``None``: the default bundle)."""
        self.model_loading = False
        self.pending: list[str] = []
        self.last_paths: list[str] = []
        """What Check again re-checks: the items of the runs since the last Clear."""
        self.counts: dict[str, int] = {}
        self._run_total = 0
        self._run_done = 0
        self._run_started = 0.0
        self._run_info: ModelInfo | None = None
        """The model of the running check (its rows keep it)."""
        self._run_paths: list[str] = []
        self._waiting_model: Any = None
        """A model that loaded during a check: it takes over when the check ends."""
        self._load_token = 0
        self._model_requested = False
        self._announce: str | None = None
        """A bundle the user dropped here: announced once it has loaded."""

        self.runner = CheckRunner(self, chunk_ms=chunk_ms)
        self.runner.sig_run_started.connect(self._on_runner_run_started)
        self.runner.sig_results_ready.connect(self._on_runner_results_ready)
        self.runner.sig_run_finished.connect(self._on_runner_run_finished)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        layout.setSpacing(10)
        layout.addWidget(self._build_header())
        layout.addWidget(self._build_model_bar())
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)
        layout.addLayout(self._build_toolbar())
        layout.addLayout(self._build_progress())
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self._build_results())
        self.detail = DetailPanel()
        self.splitter.addWidget(self.detail)
        # both follow the window; neither follows the selected file (the panel's hint is fixed)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 1)
        self._splitter_placed = False
        layout.addWidget(self.splitter, 1)
        self._reset_counts()
        self._update_controls()
        QTimer.singleShot(0, self, self._ensure_model)

    # -- building -------------------------------------------------------------------------------

    def _build_header(self) -> PageHeader:
        header = PageHeader(
            "Check images",
            "Drop photos or folders anywhere on this page. Each image gets a verdict (Real, "
            "Fake or Unknown) with a calibrated confidence and the reason for it.",
        )
        self.open_images_button = QPushButton("Open images…")
        self.open_images_button.setObjectName("primary")
        self.open_images_button.clicked.connect(self._on_open_images_clicked)
        self.open_folder_button = QPushButton("Open folder…")
        self.open_folder_button.clicked.connect(self._on_open_folder_clicked)
        self.model_button = QPushButton("Change model…")
        self.model_button.setToolTip("Open a model bundle: a folder or .zip with bundle.json")
        self.model_button.clicked.connect(self._on_model_clicked)
        for button in (self.model_button, self.open_folder_button, self.open_images_button):
            header.actions.addWidget(button)
        return header

    def _build_model_bar(self) -> QFrame:
        self.model_bar = QFrame()
        self.model_bar.setObjectName("modelBar")
        row = QHBoxLayout(self.model_bar)
        row.setContentsMargins(12, 8, 12, 8)
        column = QVBoxLayout()
        column.setSpacing(2)
        self.model_name = QLabel("Loading the model…")
        self.model_name.setObjectName("modelName")
        self.model_name.setWordWrap(True)
        self.model_detail = QLabel()
        self.model_detail.setObjectName("muted")
        self.model_detail.setWordWrap(True)
        self.model_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.model_name)
        column.addWidget(self.model_detail)
        row.addLayout(column, 1)
        return self.model_bar

    def _build_toolbar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        self.filter_combo = QComboBox()
        for title, _ in FILTERS:
            self.filter_combo.addItem(title)
        self.filter_combo.currentIndexChanged.connect(self._on_filter_changed)
        row.addWidget(QLabel("Show"))
        row.addWidget(self.filter_combo)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("muted")
        self.counts_label.setWordWrap(True)  # wraps instead of being cut off on small windows
        self.counts_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.counts_label.setMinimumWidth(80)
        row.addWidget(self.counts_label, 1)
        self.recheck_button = QPushButton("Check again")
        self.recheck_button.setToolTip("Check the last images again with the current model")
        self.recheck_button.clicked.connect(self._on_recheck_clicked)
        self.report_button = QPushButton("Export report…")
        self.report_button.setToolTip("Save the results as CSV, JSON or HTML")
        self.report_button.clicked.connect(self._on_report_clicked)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        for button in (self.recheck_button, self.report_button, self.clear_button):
            row.addWidget(button)
        return row

    def _build_progress(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("muted")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.progress, 1)
        row.addWidget(self.progress_label)
        row.addWidget(self.cancel_button)
        self._progress_widgets = (self.progress, self.progress_label, self.cancel_button)
        for widget in self._progress_widgets:
            widget.hide()
        return row

    def _build_results(self) -> QStackedWidget:
        self.results_stack = QStackedWidget()
        self.drop_zone = QLabel(
            "<div style='font-size:15pt; font-weight:600; color:#374151'>Drop images or folders "
            "here</div><p>or use <b>Open images…</b> / <b>Open folder…</b> above.</p>"
            "<p>Drop a model bundle (a folder or .zip with bundle.json) to switch the model.</p>"
        )
        self.drop_zone.setObjectName("dropZone")
        self.drop_zone.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_zone.setWordWrap(True)
        self.results_stack.addWidget(self.drop_zone)

        self.model = CheckResultsModel(self)
        self.proxy = VerdictFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        # arrival order until the user sorts: a sorted proxy places every new row by comparing
        # sort keys in Python, which would cost the GUI thread ~15 ms per chunk of 200 rows
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setIconSize(QSize(44, 44))
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setItemDelegateForColumn(Column.VERDICT, VerdictDelegate(self.table))
        self.table.setItemDelegateForColumn(
            Column.CONFIDENCE, ConfidenceDelegate(self.model, self.table)
        )
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.EXPLANATION, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)  # tooltips have the full text
        for column, width in COLUMN_WIDTHS:
            self.table.setColumnWidth(column, width)
        self._fit_verdict_column(())
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.results_stack.addWidget(self.table)
        return self.results_stack

    # -- model ----------------------------------------------------------------------------------

    @Slot(str)
    def set_bundle(self, path: str) -> None:
        """Use the bundle at ``path`` (a folder or .zip; ``""``: the default bundle)."""
        path = str(path or "") or None
        self._model_requested = True
        if path == self.bundle_path and (self.predictor is not None or self.model_loading):
            return
        self.bundle_path = path
        self._load_model()

    def _ensure_model(self) -> None:
        if not self._model_requested:
            self._model_requested = True
            self._load_model()

    def _load_model(self) -> None:
        self.model_loading = True
        self._load_token += 1
        token = self._load_token
        target = self.bundle_path
        self.model_name.setText("Loading the model…")
        self.model_detail.setText(target or str(default_bundle_path()))
        _restyle(self.model_bar, "state", "loading")
        self._update_controls()
        run_in_background(
            load_predictor if target else load_default_predictor,
            *([target] if target else []),
            on_done=lambda predictor: self._on_model_loaded(token, predictor),
            on_error=lambda message: self._on_model_failed(token, message),
        )

    def _on_model_loaded(self, token: int, predictor: Any) -> None:
        if token != self._load_token:
            return
        self.model_loading = False
        if self.runner.is_running():
            # never two models' verdicts in one table: the running check finishes with its own
            self._waiting_model = predictor
            self._show_model(self.predictor)
            self.show_message(
                f"{model_label(predictor)} is ready: it replaces the current model when this "
                "check ends (press Cancel to switch now).",
                "info",
            )
            self._update_controls()
            return
        self._use_model(predictor)

    def _use_model(self, predictor: Any) -> None:
        """Make ``predictor`` the model in use (rows of another model are cleared)."""
        switched = self.predictor is not None
        self.predictor = predictor
        self._show_model(predictor)
        if switched and self.model.rowCount():
            count = len(self.last_paths)
            self._clear_rows()
            self.show_message(
                f"Model switched to {model_label(predictor)}. The previous results were cleared; "
                f"press Check again to re-check the last {plural(count, 'item')} with it.",
                "info",
            )
        if self._announce is not None and self._announce == self.bundle_path:
            self.sig_bundle_selected.emit(self._announce)  # only bundles that work are kept
        self._announce = None
        self.sig_model_changed.emit(predictor.description)
        self._update_controls()
        self._start_pending()

    def _show_model(self, predictor: Any) -> None:
        """The model bar names ``predictor`` (the model in use)."""
        self.model_name.setText(f"Model: {model_label(predictor)} — {predictor.description}")
        self.model_detail.setText("It " + describe_threshold(predictor.calibration, "Unknown"))
        self.model_bar.setToolTip(f"{predictor.bundle.root}\n{predictor.calibration.summary()}")
        _restyle(self.model_bar, "state", "ok")
        self._fit_verdict_column(predictor.bundle.class_names)

    def _fit_verdict_column(self, class_names: Sequence[str]) -> None:
        """Make the Verdict column as wide as the longest badge ``class_names`` can give."""
        font = QFont(self.table.font())
        font.setBold(True)
        metrics = QFontMetrics(font)
        words = [verdict_style(v)[2] for v in ("unknown", "error", "real")]
        words += [f"{verdict_style('fake')[2]} ({name})" for name in class_names]
        badge = max(metrics.horizontalAdvance(f"✕  {word}") for word in words)
        width = badge + 2 * metrics.height() + 16  # the badge's glyph circle and padding
        self.table.setColumnWidth(
            Column.VERDICT, max(VERDICT_WIDTH[0], min(width, VERDICT_WIDTH[1]))
        )

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._place_splitter()

    def _place_splitter(self) -> None:
        """Give the detail panel :data:`DETAIL_SHARE` of the width, once (then the user's)."""
        total = self.splitter.width()
        if self._splitter_placed or total < 200:
            return
        self._splitter_placed = True
        detail = max(round(total * DETAIL_SHARE), self.detail.minimumSizeHint().width())
        self.splitter.setSizes([total - detail, detail])

    def _on_model_failed(self, token: int, message: str) -> None:
        if token != self._load_token:
            return
        self.model_loading = False
        if self.predictor is not None:
            # keep the model that works (the bar names it again); say why the new one was refused
            self._announce = None
            self._waiting_model = None
            self._show_model(self.predictor)
            self.show_message(f"That model bundle could not be used: {message}", "error")
            self.bundle_path = str(self.predictor.bundle.source or self.predictor.bundle.root)
            self._update_controls()
            return
        self._announce = None
        default_file = default_bundle_path() / BUNDLE_FILE
        missing = self.bundle_path is None and not default_file.is_file()
        _restyle(self.model_bar, "state", "missing" if missing else "error")
        if missing:
            self.model_name.setText("No model bundle yet")
            self.model_detail.setText(
                f"The default model is not installed ({default_bundle_path()} has no "
                "bundle.json). To get one: drop a bundle folder or .zip on this page or use "
                "Change model…; or train a model on the Jobs page and export it on the Export "
                "page (command line: deepfake-studio train …, then deepfake-studio export RUN "
                f"--out {default_bundle_path()})."
            )
        else:
            self.model_name.setText("The model bundle could not be loaded")
            self.model_detail.setText(message)
        self.sig_model_changed.emit("")
        if self.pending:
            self.show_message(
                f"{plural(len(self.pending), 'item')} waiting for a model; load one to check them.",
                "warning",
            )
        self._update_controls()

    # -- checking -------------------------------------------------------------------------------

    def check_paths(self, paths: Iterable[str | Path]) -> None:
        """Check image files and folders (queued while the model loads or a run is going)."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        self.pending.extend(paths)
        if self.predictor is None and not self.model_loading:
            self.show_message(
                "Load a model bundle first: drop a bundle folder or .zip here, or use "
                "Change model…. The images will be checked as soon as it is loaded.",
                "warning",
            )
        self._start_pending()

    def _start_pending(self) -> None:
        if not self.pending or self.predictor is None or self.runner.is_running():
            return
        paths, self.pending = self.pending, []
        self.last_paths.extend(paths)
        self._run_paths = paths
        self._run_info = ModelInfo.of(self.predictor)
        self.model.score_kind = self.predictor.calibration.score
        self._run_total = self._run_done = 0
        self._run_started = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress_label.setText("Looking for images…")
        for widget in self._progress_widgets:
            widget.show()
        self.runner.start(self.predictor, paths)
        self._update_controls()

    def cancel(self) -> None:
        """Stop the running check after its current batch; queued items are dropped."""
        self.pending.clear()
        if self.runner.is_running():
            self.progress_label.setText("Cancelling…")
            self.runner.cancel()

    def is_running(self) -> bool:
        return self.runner.is_running()

    @Slot(int)
    def _on_runner_run_started(self, total: int) -> None:
        self._run_total = total
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self._update_progress_label()
        if total == 0:
            self.show_message(
                "No images found there (looked for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ").",
                "warning",
            )

    @Slot(list)
    def _on_runner_results_ready(self, results: list) -> None:
        first = self.model.rowCount() == 0
        self.model.append(results, self._run_info)
        for result in results:
            self.counts[result.verdict] = self.counts.get(result.verdict, 0) + 1
        self._run_done += len(results)
        # QProgressBar.setValue repaints synchronously (tens of ms under a style sheet);
        # with updates off it only stores the value and the repaint is queued instead
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(self._run_done)
        self.progress.setUpdatesEnabled(True)
        self._update_progress_label()
        self._update_counts()
        if first:
            self._update_controls()
            self.results_stack.setCurrentWidget(self.table)
            self.table.selectionModel().setCurrentIndex(
                self.proxy.index(0, Column.FILE),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )

    def _update_progress_label(self) -> None:
        elapsed = max(time.monotonic() - self._run_started, 1e-6)
        rate = self._run_done / elapsed
        self.progress_label.setText(
            f"{self._run_done:,} of {self._run_total:,} checked · {rate:,.0f} images/s"
        )

    @Slot(dict)
    def _on_runner_run_finished(self, summary: dict) -> None:
        for widget in self._progress_widgets:
            widget.hide()
        checked, errors = summary.get("checked", 0), summary.get("errors", 0)
        seconds = summary.get("seconds", 0.0)
        skipped = summary.get("skipped", "")
        if summary.get("message"):
            self.show_message(summary["message"], "error")
        elif summary.get("cancelled"):
            self.show_message(
                f"Cancelled after {checked:,} of {plural(self._run_total, 'image')}.", "warning"
            )
        elif checked:
            note = f"; {errors} could not be read (see the Unreadable rows)" if errors else ""
            note += f"; {skipped}" if skipped else ""
            kind = "warning" if skipped else "info"
            self.show_message(f"Checked {plural(checked, 'image')} in {seconds:.1f} s{note}.", kind)
        elif skipped:
            self.show_message(f"Nothing could be checked: {skipped}.", "warning")
        self._run_total = 0
        self._run_paths = []
        self.sig_check_finished.emit(dict(summary))
        waiting, self._waiting_model = self._waiting_model, None
        if waiting is not None:
            self._use_model(waiting)  # starts what is pending, with the new model
            return
        self._update_controls()
        self._start_pending()

    # -- results --------------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every result; Check again then re-checks only what is still being checked
        (a running check goes on adding new rows)."""
        self.last_paths = list(self._run_paths)
        self._clear_rows()

    def _clear_rows(self) -> None:
        self.model.clear()
        self._reset_counts()
        self.detail.show_result(None)
        self.results_stack.setCurrentWidget(self.drop_zone)
        self.message.hide()
        self._update_controls()

    def _reset_counts(self) -> None:
        self.counts = {"real": 0, "fake": 0, "unknown": 0, "error": 0}
        self._update_counts()

    def _update_counts(self) -> None:
        total = sum(self.counts.values())
        for index, (title, verdicts) in enumerate(FILTERS):
            n = total if verdicts is None else sum(self.counts.get(v, 0) for v in verdicts)
            self.filter_combo.setItemText(index, f"{title} ({n:,})")
        parts, plain = [], []
        for verdict, word in COUNT_WORDS.items():
            colour, glyph, _ = verdict_style(verdict)
            if self.counts.get(verdict):
                parts.append(
                    f"<span style='color:{colour}; font-weight:600'>{glyph}&nbsp;"
                    f"{self.counts[verdict]:,}</span>&nbsp;{word}"
                )
                plain.append(f"{self.counts[verdict]:,} {word}")
        # each count stays on one line; a narrow window wraps between counts
        self.counts_label.setText("&nbsp; · ".join(parts))
        self.counts_label.setToolTip(", ".join(plain))

    def set_filter(self, verdicts: Sequence[str] | None) -> None:
        """Show only ``verdicts`` (``None``: all); mirrors the Show combo box."""
        for index, (_, choice) in enumerate(FILTERS):
            if (choice is None and verdicts is None) or (
                choice is not None and verdicts is not None and set(choice) == set(verdicts)
            ):
                self.filter_combo.setCurrentIndex(index)
                return
        self.proxy.set_verdicts(verdicts)

    @Slot(int)
    def _on_filter_changed(self, index: int) -> None:
        self.proxy.set_verdicts(FILTERS[index][1])

    @Slot(QModelIndex, QModelIndex)
    def _on_table_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        result = current.data(RESULT_ROLE) if current.isValid() else None
        info = current.data(MODEL_ROLE) if current.isValid() else None
        if info is None:
            self.detail.show_result(result)
        else:  # the heatmap channel comes from the model that made the row
            self.detail.show_result(result, info.class_names, info.preprocess)

    def results(self) -> list[CheckResult]:
        """Every result, in arrival order."""
        return list(self.model.results)

    def visible_results(self) -> list[CheckResult]:
        """The results as the table shows them (filtered and sorted)."""
        return [self.proxy.index(row, 0).data(RESULT_ROLE) for row in range(self.proxy.rowCount())]

    def export_report(self, path: str | Path) -> None:
        """Write the results to ``path`` (.csv, .json or .html) on a worker thread.

        The report names the model and draws the heatmaps as the CLI's does (the rows' model:
        one per table, as a model switch clears the table).
        """
        results = self.results()
        info = next((i for i in self.model.infos if i is not None), None)
        run_in_background(
            partial(
                write_report,
                model=info.description if info else "",
                preprocess=info.preprocess if info else None,
            ),
            results,
            str(path),
            on_done=self._on_report_written,
            on_error=lambda message: self.show_message(message, "error"),
        )

    def _on_report_written(self, path: Path) -> None:
        self.show_message(f"Report saved to {path}.", "info")
        self.sig_report_written.emit(str(path))

    # -- user actions ---------------------------------------------------------------------------

    @Slot()
    def _on_open_images_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Check images", "", f"{IMAGE_FILTER};;All files (*)"
        )
        self.handle_paths(files)

    @Slot()
    def _on_open_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Check every image in a folder")
        if folder:
            self.handle_paths([folder])

    @Slot()
    def _on_model_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a model bundle (bundle.json or .zip)",
            str(self.workspace.bundles),
            "Model bundles (bundle.json *.zip)",
        )
        if path:
            self.handle_paths(
                [str(Path(path).parent) if Path(path).name == "bundle.json" else path]
            )

    @Slot()
    def _on_recheck_clicked(self) -> None:
        paths = list(self.last_paths)
        self.clear()
        self.last_paths = []
        self.check_paths(paths)

    @Slot()
    def _on_report_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export report",
            str(Path.home() / "check-report.html"),
            "HTML report (*.html);;CSV table (*.csv);;JSON (*.json)",
        )
        if path:
            self.export_report(path)

    def handle_paths(self, paths: Sequence[str]) -> None:
        """What a drop or an Open dialog does: switch the model or check images."""
        paths = [p for p in paths if p]
        bundles = [p for p in paths if is_bundle(p)]
        if len(paths) == 1 and bundles:
            self.show_message(f"Switching the model to {Path(bundles[0]).name}…", "info")
            self._announce = bundles[0]
            self.set_bundle(bundles[0])
            return
        if bundles:
            names = ", ".join(Path(p).name for p in bundles)
            self.show_message(
                f"{names}: model bundle(s) skipped. Drop a bundle on its own to switch the model.",
                "warning",
            )
        self.check_paths([p for p in paths if p not in bundles])

    def show_message(self, text: str, kind: str = "info") -> None:
        self.message.setText(text)
        _restyle(self.message, "kind", kind)
        self.message.show()

    def _update_controls(self) -> None:
        has_rows = self.model.rowCount() > 0
        running = self.runner.is_running()
        self.report_button.setEnabled(has_rows and not running)
        self.clear_button.setEnabled(has_rows)
        self.recheck_button.setEnabled(
            bool(self.last_paths) and not running and self.predictor is not None
        )

    # -- drag and drop ------------------------------------------------------------------------

    @staticmethod
    def _local_paths(event: QDropEvent | QDragEnterEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
            _restyle(self.drop_zone, "dragging", "true")
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        _restyle(self.drop_zone, "dragging", "false")
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        _restyle(self.drop_zone, "dragging", "false")
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.handle_paths(paths)

    # -- lifetime -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the running check and wait for its thread (the window is closing)."""
        self.pending.clear()
        self.runner.shutdown()
        self.model.stop()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
