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


LOG_STEPS = ((1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9))
"""Mantissas of log-axis ticks: 1-2-5 per decade, all nine where 1-2-5 leaves too few."""
LOG_LABEL_PIXELS = (56, 22)
"""Room one tick label needs along a horizontal and a vertical axis."""


def log_ticks(low: float, high: float, most: int) -> list[float]:
    """Tick values between ``10**low`` and ``10**high``: 1-2-5 per decade (every mantissa when
    that gives fewer than two, decades only when it gives more than ``most``)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return []
    decades = range(math.floor(low), math.ceil(high) + 1)
    bottom, top = 10**low * (1 - 1e-9), 10**high * (1 + 1e-9)

    def within(steps: tuple[int, ...]) -> list[float]:
        values = (step * 10.0**decade for decade in decades for step in steps)
        return [v for v in values if bottom <= v <= top]

    ticks = within(LOG_STEPS[0])
    if len(ticks) < 2:
        ticks = within(LOG_STEPS[1])
    if len(ticks) > most:
        ticks = within((1,))
    return ticks


def short_number(value: float) -> str:
    """``1000 -> "1k"``, ``20_000 -> "20k"``, ``2e6 -> "2M"``, ``0.05 -> "0.05"``."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:.6g}"


class LogAxis(pg.AxisItem):
    """An axis for log-scaled plots: ticks at 1, 2, 5 times powers of ten labelled ``1k``,
    ``20k``, ``0.05`` (pyqtgraph's ``9·10⁴10⁴`` labels pile up)."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        low, high = sorted((minVal, maxVal))
        room = LOG_LABEL_PIXELS[0 if self.orientation in ("top", "bottom") else 1]
        ticks = log_ticks(low, high, max(2, int(size // room)))
        return [(1.0, [math.log10(v) for v in ticks])]

    def tickStrings(self, values, scale, spacing) -> list[str]:
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [short_number(10**v) for v in values]
