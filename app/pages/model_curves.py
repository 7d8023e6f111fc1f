"""The Models page's learning curves (``curve`` jobs): the list and the selected curve's plot.

The plot shows test error against training images on log-log axes: the measured points, the
fitted power law ``error = a * n^-b`` drawn on to twice the largest point (or to the target's
image count when that lies within 10x), and the target error as a dashed line; the verdict of
``curve.json`` sits under it. The records come from :func:`core.learning_curve.scan_curves`,
read on a worker thread by the page.
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.style import ACCENT, MUTED
from app.widgets.formatting import percent
from app.widgets.plot_axes import LogAxis
from app.widgets.plot_legend import place_legend
from app.widgets.tree_headers import set_header_tips
from core.learning_curve import CurveInfo

COLUMNS = ("Curve", "Data", "Model", "Points", "Largest: test accuracy", "Exponent b")
HEADER_TIPS = (
    "the learning curve job: the same model trained on growing shares of a data set",
    "the data set the points were trained on",
    "the architecture trained at every point",
    "points trained so far, of the data shares planned",
    "test accuracy of the point trained on the most images",
    "how fast the error falls with more images: error ≈ a·n^-b, so a bigger b means more "
    "data helps more (doubling the images multiplies the error by 2^-b)",
)
"""Header tooltips, in :data:`COLUMNS` order."""
PLOT_MIN_HEIGHT = 180
"""Pixels below which the plot would shrink to its axes alone."""
TITLE = "<span style='font-size:10pt;font-weight:600'>Test error by training images</span>"
"""The plot's title names both axes (an axis label would cost the plot a line of height)."""
VERDICT_LINES = 4
"""Lines of the verdict text under the plot kept in view."""
FARTHEST_EXTRAPOLATION = 10.0
"""The fit is drawn at most this many times past the largest point."""


def curve_cells(curve: CurveInfo) -> list[str]:
    """A curve's row, in :data:`COLUMNS` order."""
    largest = percent(curve.test_acc[-1]) if curve.test_acc else ""
    return [
        curve.name,
        os.path.basename(curve.data.rstrip("/\\")),
        curve.arch,
        f"{len(curve.n_train)} of {len(curve.shares)}",
        largest,
        f"{curve.fit.b:.2f}" if curve.fit else "",
    ]


def fit_line(curve: CurveInfo) -> tuple[np.ndarray, np.ndarray] | None:
    """``(n, error)`` of the fitted law from the smallest point on, or ``None`` without a fit."""
    if curve.fit is None or not curve.n_train:
        return None
    largest = max(curve.n_train)
    end = 2.0 * largest
    needed = curve.fit.images_for(curve.target) if curve.target else None
    if needed is not None and needed <= FARTHEST_EXTRAPOLATION * largest:
        end = max(end, needed)
    n = np.geomspace(min(curve.n_train), end, 50)
    return n, curve.fit.error_at(n)


class CurvesPanel(QWidget):
    """The workspace's learning curves as a list and the selected one as a plot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
        import pyqtgraph as pg

        import app.widgets.live_plot  # noqa: F401  (pyqtgraph configured for PySide6)

        self._pg = pg
        self.curves: list[CurveInfo] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        left = QVBoxLayout()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        set_header_tips(self.tree, HEADER_TIPS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(lambda *_: self._show_selected())
        left.addWidget(self.tree, 1)
        self.empty_label = QLabel(
            "No learning curves yet: the Jobs page's Learning curve job trains one"
        )
        self.empty_label.setObjectName("muted")
        left.addWidget(self.empty_label)
        layout.addLayout(left, 1)
        right = QVBoxLayout()
        self.plot = pg.PlotWidget(axisItems={"left": LogAxis("left"), "bottom": LogAxis("bottom")})
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        item = self.plot.getPlotItem()
        item.setTitle(TITLE)
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLogMode(x=True, y=True)
        self.legend = item.addLegend(offset=(-8, 8))
        right.addWidget(self.plot, 1)
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        # a wrapped label's height is not in the layout's minimum: reserve its lines, so the
        # plot is not squeezed under it
        lines = self.verdict_label.fontMetrics().lineSpacing() * VERDICT_LINES
        self.verdict_label.setMinimumHeight(lines)
        self.verdict_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right.addWidget(self.verdict_label)
        layout.addLayout(right, 1)
        self.empty_label.setVisible(True)

    def show_curves(self, curves: list[CurveInfo]) -> None:
        """Replace the rows (the page calls this with each scan's result), keeping the
        selected curve when it is still there."""
        selected = self.selected_curve()
        keep = selected.folder if selected else None
        self.curves = list(curves)
        self.tree.clear()
        for index, curve in enumerate(self.curves):
            row = QTreeWidgetItem(curve_cells(curve))
            row.setData(0, Qt.ItemDataRole.UserRole, index)
            row.setToolTip(0, curve.folder)
            row.setToolTip(1, curve.data)
            self.tree.addTopLevelItem(row)
        self.empty_label.setVisible(not self.curves)
        if self.curves:
            folders = [c.folder for c in self.curves]
            index = folders.index(keep) if keep in folders else len(self.curves) - 1
            self.tree.setCurrentItem(self.tree.topLevelItem(index))
        self._show_selected()

    def selected_curve(self) -> CurveInfo | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        return self.curves[item.data(0, Qt.ItemDataRole.UserRole)]

    @Slot()
    def _show_selected(self) -> None:
        pg = self._pg
        item = self.plot.getPlotItem()
        item.clear()
        curve = self.selected_curve()
        if curve is None:
            self.verdict_label.setText("")
            return
        if curve.n_train:
            item.plot(
                list(curve.n_train),
                [1.0 - acc for acc in curve.test_acc],
                pen=None,
                symbol="o",
                symbolBrush=ACCENT,
                symbolPen=ACCENT,
                name="measured",
            )
        line = fit_line(curve)
        if line is not None:
            pen = pg.mkPen(ACCENT, width=2, style=Qt.PenStyle.DashLine)
            item.plot(*line, pen=pen, name=f"fit: n^-{curve.fit.b:.2f}")
        if curve.target:
            xs = line[0] if line is not None else np.asarray(curve.n_train, dtype=float)
            if len(xs):
                pen = pg.mkPen(MUTED, width=1, style=Qt.PenStyle.DotLine)
                target_error = 1.0 - curve.target
                item.plot(
                    [xs.min(), xs.max()],
                    [target_error, target_error],
                    pen=pen,
                    name=f"target {percent(curve.target)}",
                )
        place_legend(self.legend, item)
        self.verdict_label.setText(curve.verdict)
