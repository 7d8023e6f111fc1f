"""Plot axes whose tick labels stay readable (pyqtgraph ``AxisItem`` subclasses).

pyqtgraph's defaults fail on training curves: a learning rate of 0.0013-0.0018 gets labels
("0.0014") too wide for the axis, so none are drawn; whole epochs get ticks at 1.2, 1.4; and a
single point is centred in a range of ±0.5 around it. :class:`ValueAxis` writes small and large
values in short scientific notation ("1.4e-3"), :class:`WholeNumberAxis` ticks whole numbers only,
and :func:`y_range` pads a flat curve around its value instead of around 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pyqtgraph as pg

VALUE_AXIS_WIDTH = 52
"""Pixels for the left axis: room for "-1.25e-3"-sized labels."""
FLAT_PADDING = 0.1
"""A flat curve is shown at ±this share of its value (±this when the value is 0)."""


def tick_label(value: float, spacing: float) -> str:
    """A short label for ``value`` that tells ticks ``spacing`` apart: ``0.5``, ``12``,
    ``1.4e-3``, ``2.5e+5``."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    digits = max(1, magnitude - math.floor(math.log10(abs(spacing) or abs(value))) + 1)
    if -3 <= magnitude < 5:
        decimals = max(0, digits - magnitude - 1)
        return f"{value:.{decimals}f}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def y_range(values: Iterable[float]) -> tuple[float, float] | None:
    """A y range for curves that are flat (one point, or all equal), else ``None`` (auto)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or max(finite) - min(finite) > 1e-12 * max(1.0, abs(max(finite))):
        return None
    value = finite[0]
    pad = abs(value) * FLAT_PADDING or FLAT_PADDING
    return value - pad, value + pad


class ValueAxis(pg.AxisItem):
    """A value axis with :func:`tick_label` labels (no SI prefix hidden in a blank axis label)."""

    def __init__(self, orientation: str = "left", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        if orientation in ("left", "right"):
            self.setWidth(VALUE_AXIS_WIDTH)

    def tickStrings(self, values, scale, spacing) -> list[str]:
        return [tick_label(v * scale, spacing * scale) for v in values]


class WholeNumberAxis(pg.AxisItem):
    """An axis of whole numbers (epochs, pruning steps): ticks only at integers."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):
        levels = [
            (spacing, [v for v in values if abs(v - round(v)) < 1e-9])
            for spacing, values in super().tickValues(minVal, maxVal, size)
            if spacing >= 1
        ]
        if levels:
            return levels
        low, high = math.ceil(minVal), math.floor(maxVal)
        return [(1.0, [float(v) for v in range(low, high + 1)])] if high - low < 1000 else []

    def tickStrings(self, values, scale, spacing) -> list[str]:
        return [f"{round(v * scale):d}" for v in values]
