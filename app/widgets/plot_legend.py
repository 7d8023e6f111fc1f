"""Plot legends that hide as little of the curves as they can.

:func:`place_legend` moves a pyqtgraph legend into the corner of the plot with the fewest data
points and gives it a translucent background, so a curve under it still shows through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pyqtgraph as pg

CORNERS: tuple[tuple[int, int], ...] = ((1, 1), (1, 0), (0, 1), (0, 0))
"""``(x, y)`` corners of the data, 1 = right / top, in order of preference."""
CORNER_SHARE = 0.5
"""A corner's box spans this share of the data's width and height."""
MARGIN = 8
"""Pixels between the legend and the plot's edge."""
LEGEND_FILL = (255, 255, 255, 170)
LEGEND_EDGE = (209, 213, 219, 220)


def emptiest_corner(points: Iterable[tuple[float, float]]) -> tuple[int, int]:
    """The corner of the points' bounding box (see :data:`CORNERS`) with the fewest points."""
    finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        return CORNERS[0]
    xs, ys = [x for x, _ in finite], [y for _, y in finite]
    x0, y0 = min(xs), min(ys)
    width, height = (max(xs) - x0) or 1.0, (max(ys) - y0) or 1.0

    def inside(corner: tuple[int, int], x: float, y: float) -> bool:
        fx, fy = (x - x0) / width, (y - y0) / height
        near_x = fx >= 1 - CORNER_SHARE if corner[0] else fx <= CORNER_SHARE
        near_y = fy >= 1 - CORNER_SHARE if corner[1] else fy <= CORNER_SHARE
        return near_x and near_y

    counts = {c: sum(inside(c, x, y) for x, y in finite) for c in CORNERS}
    return min(CORNERS, key=lambda c: (counts[c], CORNERS.index(c)))


def drawn_points(plot: pg.PlotItem) -> list[tuple[float, float]]:
    """Every point of the curves in ``plot``, in view coordinates (log10 on a log axis)."""
    points: list[tuple[float, float]] = []
    for data in plot.listDataItems():
        xs, ys = data.getData()
        if xs is not None and ys is not None:
            points.extend(zip(map(float, xs), map(float, ys), strict=True))
    return points


def place_legend(legend: pg.LegendItem, plot: pg.PlotItem) -> tuple[int, int]:
    """Anchor ``legend`` in the :func:`emptiest_corner` of ``plot``'s curves, translucent;
    returns the corner."""
    corner = emptiest_corner(drawn_points(plot))
    # pyqtgraph anchors a legend by its offset's signs: negative x = right, negative y = bottom
    legend.setOffset((-MARGIN if corner[0] else MARGIN, MARGIN if corner[1] else -MARGIN))
    legend.setBrush(pg.mkBrush(*LEGEND_FILL))
    legend.setPen(pg.mkPen(*LEGEND_EDGE))
    return corner
