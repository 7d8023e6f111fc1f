"""The Models page: every run and bundle of the workspace as a lineage tree, with their numbers.

Fine-tuned -> pruned -> distilled -> exported runs nest under their parents. Selecting runs
overlays their validation curves from ``metrics.csv``; "Quality report…" asks the Jobs page for a
``report`` job on the selected runs and bundles, and the finished reports are listed under
"Quality reports" (:mod:`app.pages.model_reports`), learning curves under "Learning curves"
(:mod:`app.pages.model_curves`). Scanning happens on a worker thread
(:func:`app.widgets.background.run_in_background`); only the finished records reach the widgets.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.pages.model_curves import CurvesPanel
from app.pages.model_reports import ReportsPanel
from app.style import MUTED, PLOT_COLOURS, status_icon
from app.widgets import formatting
from app.widgets.background import run_in_background
from app.widgets.page_header import PageHeader
from app.widgets.placeholder import placeholder
from app.widgets.plot_axes import ValueAxis, WholeNumberAxis
from app.widgets.plot_legend import place_legend
from app.widgets.tree_headers import set_header_tips
from core.errors import UserError
from core.learning_curve import scan_curves
from core.reports import scan_reports
from core.runs import (
    RunInfo,
    build_lineage,
    delete_run,
    read_metrics,
    scan_runs,
    walk,
    x_axis,
)
from core.workspace import Workspace

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("kind", "Kind"),
    ("arch", "Architecture"),
    ("data", "Data set"),
    ("epochs", "Epochs"),
    ("params", "Params"),
    ("macs", "MACs"),
    ("size", "File size"),
    ("accuracy", "Accuracy"),
    ("f1", "F1"),
    ("auc", "AUC"),
    ("ece", "ECE"),
    ("latency", "Latency"),
)
NUMERIC_FROM = 4
"""Columns from this index on hold numbers (right-aligned)."""
HEADER_TIPS = {
    "params": "parameters (weights) of the network",
    "macs": "multiply-accumulates per image: the compute cost",
    "f1": "macro F1 over the classes (each class weighs the same)",
    "auc": "ROC AUC of real vs fake",
    "accuracy": "test split figures of the run (validation figures where it has none: no test "
    "split, or it never finished)",
    "ece": "expected calibration error of the confidences: a bundle's with its calibrated "
    "temperature (what the app shows), a run's of the raw softmax",
    "latency": "one image, measured by the export on the computer that made the bundle",
}
"""Header tooltips: what a column's figure is and what it is measured on."""
NAME_WIDTH = (160, 300)
"""Bounds of the name column's first width: its names' width, so the figures fit beside it."""
KIND_WORDS = {
    "finetune": "Fine-tune",
    "prune": "Prune",
    "distill": "Distill",
    "export": "Export",
    "bundle": "Bundle",
    "run": "Run",
}
"""The Kind column's word for a run's ``kind`` (its first word; the rest is kept)."""
USE_TIP = "Load this run's exported bundle in the Check page"
USE_BUNDLE_ROW_TIP = "Select the bundle row under the run to use it for checking"
OVERLAYS: tuple[tuple[str, str], ...] = (
    ("val_acc", "Validation accuracy"),
    ("val_loss", "Validation loss"),
)
MAX_OVERLAY = len(PLOT_COLOURS)
NO_SELECTION_HINT = "Select runs above to compare their validation curves."
NO_CURVES_HINT = "The selected runs recorded no validation curves (bundles have none)."
STALE_AFTER_S = 5.0
"""Showing the page re-scans when the last scan is older than this."""


def kind_text(kind: str) -> str:
    """``"finetune" -> "Fine-tune"``, ``"bundle (int8)" -> "Bundle (int8)"``."""
    head, space, rest = kind.partition(" ")
    return KIND_WORDS.get(head, head[:1].upper() + head[1:]) + space + rest


def display_name(run: RunInfo) -> str:
    """The run's folder name: two folders whose ``run.json`` carry the same id stay apart."""
    return run.path.name or run.name


def name_tip(run: RunInfo) -> str:
    """The name cell's tooltip: the folder, the status, and the recorded id where it differs."""
    tip = f"{run.path}\nstatus: {run.status or 'unknown'}"
    if run.name != display_name(run):
        tip += f"\nid in run.json: {run.name}"
    return tip


def bundle_for_checking(run: RunInfo) -> Path | None:
    """The bundle "Use for checking" loads for ``run``: its own, else its only bundle child."""
    if run.bundle is not None:
        return run.bundle
    bundles = [child.bundle for child in run.children if child.bundle is not None]
    return bundles[0] if len(bundles) == 1 else None


def cells(run: RunInfo) -> list[str]:
    """The table row of a run, in :data:`COLUMNS` order (blank where nothing was recorded)."""
    return [
        display_name(run),
        kind_text(run.kind),
        run.arch or "",
        Path(run.data).name if run.data else "",
        "" if run.epochs is None else str(run.epochs),
        formatting.count(run.params),
        formatting.count(run.macs),
        formatting.size(run.file_bytes),
        formatting.fraction(run.accuracy),
        formatting.fraction(run.f1),
        formatting.fraction(run.auc),
        formatting.fraction(run.ece),
        formatting.milliseconds(run.latency_ms),
    ]


def scan_lineage(*roots: Path) -> list[RunInfo]:
    """Scan ``roots`` and link the runs (runs on a worker thread)."""
    return build_lineage(scan_runs(*roots))


def read_curves(paths: list[Path]) -> dict[Path, dict[str, list[float]]]:
    """``metrics.csv`` columns of each run (runs on a worker thread)."""
    return {path: read_metrics(path / "metrics.csv") for path in paths}


def report_values(runs: list[RunInfo]) -> dict[str, Any]:
    """The report form's prefilled values for these runs/bundles: all of them as models, and
    their data set and its test split when they share one (else every image of a data set the
    user picks)."""
    data = {run.data for run in runs if run.data}
    values: dict[str, Any] = {"models": [str(run.path) for run in runs], "split": "all"}
    if len(data) == 1:
        values.update(data=data.pop(), split="test")
    return values


class ModelsPage(QWidget):
    """Runs and bundles as a lineage tree; compare, open, delete, or use one for checking."""

    sig_bundle_selected = Signal(str)
    """A bundle folder the user chose for the checker."""
    sig_new_job_requested = Signal(str, dict)
    """``(job kind, prefilled values)``: prune / distill / export the selected run, or a quality
    report of the selected runs and bundles."""
    sig_runs_loaded = Signal(int)
    """Emitted after each scan with the number of runs shown."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        self.workspace = workspace
        self.runs: dict[str, RunInfo] = {}
        self.overlay_curves: dict[str, dict[str, Any]] = {key: {} for key, _ in OVERLAYS}
        self._scanning = False
        self._rescan = False
        self._last_scan = time.monotonic()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        header = PageHeader(
            "Models",
            "Every run of this workspace, nested by lineage: fine-tuned → pruned → distilled → "
            "exported. Select two or more runs to compare their validation curves.",
        )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        header.actions.addWidget(self.refresh_button)
        layout.addWidget(header)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels([title for _, title in COLUMNS])
        set_header_tips(self.tree, (HEADER_TIPS.get(key) for key, _ in COLUMNS))
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSortingEnabled(False)
        header_view = self.tree.header()
        header_view.setStretchLastSection(False)
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header_view.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, NAME_WIDTH[1])
        self._name_width_fitted = False
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.itemSelectionChanged.connect(self._on_tree_selection_changed)
        splitter.addWidget(self.tree)
        splitter.addWidget(self._build_bottom())
        splitter.setSizes([380, 300])
        layout.addWidget(splitter, 1)
        self.empty_label = QLabel(
            "No runs yet. Start a fine-tune job on the Jobs page; its run appears here."
        )
        self.empty_label.setObjectName("muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty_label)
        self._update_buttons()
        self.refresh()

    def _build_bottom(self) -> QWidget:
        os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
        import pyqtgraph as pg

        import app.widgets.live_plot  # noqa: F401  (pyqtgraph configured for PySide6)

        bottom = QWidget()
        layout = QVBoxLayout(bottom)
        layout.setContentsMargins(0, 6, 0, 0)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.use_button = QPushButton("Use for checking")
        self.use_button.setObjectName("primary")
        self.use_button.setToolTip(USE_TIP)
        self.use_button.clicked.connect(self._on_use_clicked)
        self.job_buttons: dict[str, QPushButton] = {}
        for kind, title in (
            ("prune", "Prune…"),
            ("distill", "Distill…"),
            ("export", "Export…"),
            ("report", "Quality report…"),
        ):
            button = QPushButton(title)
            button.clicked.connect(lambda _=False, k=kind: self._on_job_clicked(k))
            self.job_buttons[kind] = button
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("danger")
        self.delete_button.clicked.connect(self._on_delete_clicked)
        for button in (self.open_button, *self.job_buttons.values()):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.use_button)
        layout.addLayout(buttons)
        self.job_buttons["report"].setToolTip(
            "Accuracy, confusion matrix, ROC, reliability, rejection, robustness and the "
            "unseen-generator rows of the selected runs and bundles, as an HTML report"
        )
        curves = QWidget()
        plots = QHBoxLayout(curves)
        plots.setContentsMargins(0, 4, 0, 0)
        self.plots: dict[str, Any] = {}
        self.legends: dict[str, Any] = {}
        for key, title in OVERLAYS:
            plot = pg.PlotWidget(
                axisItems={"left": ValueAxis("left"), "bottom": WholeNumberAxis("bottom")}
            )
            item = plot.getPlotItem()
            item.setTitle(f"<span style='font-size:10pt;font-weight:600'>{title}</span>")
            item.showGrid(x=True, y=True, alpha=0.15)
            item.setLabel("bottom", "epoch", color=MUTED)
            self.legends[key] = item.addLegend(offset=(-8, 8))
            self.plots[key] = plot
            plots.addWidget(plot)
        self.reports_panel = ReportsPanel()
        self.curves_panel = CurvesPanel()
        self.tabs = QTabWidget()
        self.curves_hint = placeholder(NO_SELECTION_HINT)
        self.curves_stack = QStackedWidget()
        self.curves_stack.addWidget(self.curves_hint)
        self.curves_stack.addWidget(curves)
        self.tabs.addTab(self.curves_stack, "Validation curves")
        self.tabs.addTab(self.reports_panel, "Quality reports")
        self.tabs.addTab(self.curves_panel, "Learning curves")
        layout.addWidget(self.tabs, 1)
        return bottom

    # -- public API ---------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if time.monotonic() - self._last_scan > STALE_AFTER_S:
            self.refresh()  # runs made elsewhere (the CLI, another window) appear

    @Slot()
    def refresh(self) -> None:
        """Re-scan the workspace's runs, bundles and reports on a worker thread."""
        self._last_scan = time.monotonic()
        run_in_background(
            scan_reports, self.workspace.reports, on_done=self.reports_panel.show_reports
        )
        run_in_background(scan_curves, self.workspace.runs, on_done=self.curves_panel.show_curves)
        if self._scanning:
            self._rescan = True
            return
        self._scanning = True
        self.refresh_button.setEnabled(False)
        run_in_background(
            scan_lineage,
            self.workspace.runs,
            self.workspace.bundles,
            on_done=self._on_scan_finished,
            on_error=self._on_scan_failed,
        )

    def selected_runs(self) -> list[RunInfo]:
        return [
            self.runs[item.data(0, Qt.ItemDataRole.UserRole)]
            for item in self.tree.selectedItems()
            if item.data(0, Qt.ItemDataRole.UserRole) in self.runs
        ]

    def select_paths(self, paths: list[Path | str]) -> None:
        """Select the rows of these run folders (tests, and keeping a selection on refresh)."""
        wanted = {str(Path(p)) for p in paths}
        self.tree.clearSelection()
        for item in self._items():
            if item.data(0, Qt.ItemDataRole.UserRole) in wanted:
                item.setSelected(True)

    # -- scan results ----------------------------------------------------------------------

    @Slot(object)
    def _on_scan_finished(self, roots: list[RunInfo]) -> None:
        self._scanning = False
        self.refresh_button.setEnabled(True)
        selected = [str(r.path) for r in self.selected_runs()]
        self.tree.clear()
        self.runs = {}
        ancestors: list[QTreeWidgetItem] = []
        for depth, run in walk(roots):
            item = QTreeWidgetItem(cells(run))
            key = str(run.path)
            self.runs[key] = run
            item.setData(0, Qt.ItemDataRole.UserRole, key)
            item.setIcon(0, status_icon(run.status or "done"))
            item.setToolTip(0, name_tip(run))
            if run.data:
                item.setToolTip(3, str(run.data))
            for column in range(NUMERIC_FROM, len(COLUMNS)):
                item.setTextAlignment(
                    column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
            if run.status in ("failed", "cancelled", "interrupted"):
                item.setForeground(0, QBrush(QColor(MUTED)))
            del ancestors[depth:]
            if ancestors:
                ancestors[-1].addChild(item)
            else:
                self.tree.addTopLevelItem(item)
            ancestors.append(item)
        self.tree.expandAll()
        self._fit_name_column_once()
        self.empty_label.setVisible(not self.runs)
        self.select_paths(selected)
        self._update_buttons()
        self.sig_runs_loaded.emit(len(self.runs))
        if self._rescan:
            self._rescan = False
            self.refresh()

    def _fit_name_column_once(self) -> None:
        """The first runs shown set the name column's width (the user's resizing wins after)."""
        if self._name_width_fitted or not self.runs:
            return
        low, high = NAME_WIDTH
        self.tree.setColumnWidth(0, max(low, min(high, self.tree.sizeHintForColumn(0) + 16)))
        self._name_width_fitted = True

    @Slot(str)
    def _on_scan_failed(self, message: str) -> None:
        self._scanning = False
        self.refresh_button.setEnabled(True)
        self.empty_label.setText(f"Could not read the runs: {message}")
        self.empty_label.setVisible(True)

    # -- selection and overlay ----------------------------------------------------------------

    @Slot()
    def _on_tree_selection_changed(self) -> None:
        self._update_buttons()
        paths = [run.path for run in self.selected_runs()][:MAX_OVERLAY]
        run_in_background(read_curves, paths, on_done=self._on_curves_read)

    @Slot(object)
    def _on_curves_read(self, curves: dict[Path, dict[str, list[float]]]) -> None:
        current = [run.path for run in self.selected_runs()][:MAX_OVERLAY]
        if list(curves) != current:
            return  # the selection moved on; a newer read is coming
        axes = {path: x_axis(columns) for path, columns in curves.items()}
        labels = sorted({label for _, label in axes.values()})
        self._show_curves_hint(curves)
        for key, _ in OVERLAYS:
            plot = self.plots[key].getPlotItem()
            plot.clear()
            plot.setLabel("bottom", " / ".join(labels) or "epoch", color=MUTED)
            self.overlay_curves[key] = {}
            for index, (path, columns) in enumerate(curves.items()):
                ys = columns.get(key)
                if not ys or all(math.isnan(y) for y in ys):
                    continue
                colour = PLOT_COLOURS[index % len(PLOT_COLOURS)]
                curve = plot.plot(
                    axes[path][0],
                    ys,
                    pen={"color": colour, "width": 2},
                    name=display_name(self.runs[str(path)]),
                    symbol="o",
                    symbolSize=5,
                    symbolBrush=colour,
                    symbolPen=None,
                )
                self.overlay_curves[key][str(path)] = curve
            place_legend(self.legends[key], plot)

    def _show_curves_hint(self, curves: dict[Path, dict[str, list[float]]]) -> None:
        """The plots when a selected run has a validation curve, else a line saying why not."""
        drawn = any(
            any(not math.isnan(y) for y in columns.get(key, []))
            for columns in curves.values()
            for key, _ in OVERLAYS
        )
        self.curves_hint.setText(NO_CURVES_HINT if curves else NO_SELECTION_HINT)
        self.curves_stack.setCurrentIndex(1 if drawn else 0)

    def _update_buttons(self) -> None:
        runs = self.selected_runs()
        one = runs[0] if len(runs) == 1 else None
        self.open_button.setEnabled(one is not None)
        self.delete_button.setEnabled(one is not None)
        self._update_use_button(one)
        is_run = one is not None and (one.path / "run.json").is_file()
        for kind, button in self.job_buttons.items():
            button.setEnabled(bool(runs) if kind == "report" else is_run)

    def _update_use_button(self, run: RunInfo | None) -> None:
        """Enabled for a run with one bundle to load; else the tooltip says which row to pick."""
        usable = run is not None and bundle_for_checking(run) is not None
        self.use_button.setEnabled(usable)
        if usable or run is None or not run.children:
            self.use_button.setToolTip(USE_TIP)
        else:
            self.use_button.setToolTip(USE_BUNDLE_ROW_TIP)

    # -- actions ------------------------------------------------------------------------------

    @Slot()
    def _on_open_clicked(self) -> None:
        runs = self.selected_runs()
        if runs:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(runs[0].path)))

    @Slot()
    def _on_use_clicked(self) -> None:
        runs = self.selected_runs()
        bundle = bundle_for_checking(runs[0]) if len(runs) == 1 else None
        if bundle is not None:
            self.sig_bundle_selected.emit(str(bundle))

    def _on_job_clicked(self, kind: str) -> None:
        runs = self.selected_runs()
        if not runs:
            return
        if kind == "report":
            self.sig_new_job_requested.emit(kind, report_values(runs))
            return
        key = "teacher" if kind == "distill" else "run"
        values: dict[str, Any] = {key: str(runs[0].path)}
        if kind == "distill" and runs[0].data:
            values["data"] = runs[0].data
        self.sig_new_job_requested.emit(kind, values)

    @Slot()
    def _on_delete_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 1:
            return
        run = runs[0]
        derived = sum(1 for _ in walk(run.children))
        question = f"Delete {display_name(run)} and all its files?\n\n{run.path}"
        if derived:
            fate = "keeps its files" if derived == 1 else "keep their files"
            question += (
                f"\n\n{formatting.plural(derived, 'derived run')} {fate} but "
                f"{'loses its' if derived == 1 else 'lose their'} parent."
            )
        answer = QMessageBox.question(
            self,
            "Delete run",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            delete_run(run.path, [self.workspace.runs, self.workspace.bundles])
        except (UserError, OSError) as exc:
            QMessageBox.warning(self, "Delete run", str(exc))
            return
        self.refresh()

    def _items(self) -> list[QTreeWidgetItem]:
        found: list[QTreeWidgetItem] = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            found.append(item)
            stack.extend(item.child(i) for i in range(item.childCount()))
        return found
