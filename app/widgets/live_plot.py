"""Live curves the pyqtgraph way (``examples/scrollingPlots.py``): each curve is created once,
points go into growing NumPy buffers, and ``setData`` runs on a ~100 ms timer, never per event.

The timer runs only while there is new data: the first append starts it, a tick with nothing new
stops it, and hiding the widget stops it, so a closed window leaves no timer behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
import numpy as np
import pyqtgraph as pg
import PySide6.QtWidgets  # noqa: F401  (pyqtgraph must see PySide6 before anything else)
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.style import MUTED, PLOT_COLOURS, TEXT
from app.widgets.plot_axes import ValueAxis, WholeNumberAxis, y_range

pg.setConfigOptions(antialias=True, background="w", foreground=TEXT)

REFRESH_MS = 100


class GrowingArray:
    """An append-only float buffer that doubles its capacity (amortised O(1) appends)."""

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty(capacity, dtype=float)
        self._size = 0

    def append(self, value: float) -> None:
        if self._size == len(self._data):
            self._data = np.resize(self._data, 2 * len(self._data))
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: Sequence[float]) -> None:
        for value in values:
            self.append(value)

    def clear(self) -> None:
        self._size = 0

    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size


@dataclass(frozen=True)
class Series:
    """One curve: its key, legend label, and whether it is dashed."""

    key: str
    label: str
    dashed: bool = False
    colour: str | None = None


class LivePlot(QWidget):
    """A titled plot whose curves are fed point by point with :meth:`append`."""

    def __init__(
        self,
        title: str,
        series: Sequence[Series],
        *,
        x_label: str = "epoch",
        y_label: str = "",
        log_y: bool = False,
        legend_at_bottom: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(
            axisItems={"left": ValueAxis("left"), "bottom": WholeNumberAxis("bottom")}
        )
        self.plot.setMinimumHeight(150)
        item = self.plot.getPlotItem()
        item.setTitle(f"<span style='font-size:10pt;font-weight:600'>{title}</span>")
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", x_label, color=MUTED)
        if y_label:
            item.setLabel("left", y_label, color=MUTED)
        item.setLogMode(False, log_y)
        item.addLegend(offset=(-8, -8 if legend_at_bottom else 8), labelTextColor=TEXT)
        self._x: dict[str, GrowingArray] = {}
        self._y: dict[str, GrowingArray] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        for index, spec in enumerate(series):
            colour = spec.colour or PLOT_COLOURS[index % len(PLOT_COLOURS)]
            style = Qt.PenStyle.DashLine if spec.dashed else Qt.PenStyle.SolidLine
            pen = pg.mkPen(colour, width=2, style=style)
            self.curves[spec.key] = item.plot(
                [],
                [],
                pen=pen,
                name=spec.label,
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                symbolPen=None,
            )
            self._x[spec.key], self._y[spec.key] = GrowingArray(), GrowingArray()
        self._dirty: set[str] = set()
        self.flushes = 0
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def append(self, key: str, x: float, y: float) -> None:
        """Buffer one point of curve ``key`` (unknown keys are ignored); drawn on the next tick."""
        if key not in self.curves or y is None:
            return
        self._x[key].append(float(x))
        self._y[key].append(float(y))
        self._dirty.add(key)
        if not self._timer.isActive():
            self._timer.start()

    def set_series(self, key: str, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Replace a whole curve (e.g. from a finished run's metrics.csv)."""
        if key not in self.curves:
            return
        self._x[key].clear()
        self._y[key].clear()
        self._x[key].extend(xs)
        self._y[key].extend(ys)
        self._dirty.add(key)
        self.flush()

    def clear(self) -> None:
        for key in self.curves:
            self._x[key].clear()
            self._y[key].clear()
        self._dirty = set(self.curves)
        self.flush()

    def data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The buffered points of a curve (including those not drawn yet)."""
        return self._x[key].view(), self._y[key].view()

    def flush(self) -> None:
        """Draw the buffered points of the curves that changed."""
        for key in self._dirty:
            self.curves[key].setData(self._x[key].view(), self._y[key].view())
        if self._dirty:
            self.flushes += 1
            self._fit_y()
        self._dirty.clear()

    def set_x_label(self, label: str) -> None:
        self.plot.getPlotItem().setLabel("bottom", label, color=MUTED)

    def _fit_y(self) -> None:
        """Pad flat curves (one point, a constant) around their value; else auto-range."""
        view = self.plot.getPlotItem().getViewBox()
        flat = y_range(float(y) for buffer in self._y.values() for y in buffer.view())
        if flat is None:
            view.enableAutoRange(axis="y")
        else:
            view.setYRange(*flat, padding=0)

    def _on_timer_timeout(self) -> None:
        if not self._dirty:
            self._timer.stop()
            return
        self.flush()

    def hideEvent(self, event) -> None:
        self._timer.stop()
        self.flush()
        super().hideEvent(event)
