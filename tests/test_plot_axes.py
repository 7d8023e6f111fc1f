"""app.widgets.plot_axes: readable ticks and ranges of the Jobs page's live curves (pytest-qt)."""

from __future__ import annotations

import pytest

from app.widgets.live_plot import LivePlot, Series
from app.widgets.plot_axes import tick_label, y_range


def test_tick_labels_are_short_and_tell_ticks_apart():
    assert tick_label(0.0014, 0.0002) == "0.0014"
    assert tick_label(0.00015, 0.00005) == "1.5e-4"
    assert tick_label(0.5, 0.1) == "0.5"
    assert tick_label(12.0, 2.0) == "12"
    assert tick_label(250000.0, 50000.0) == "2.5e5"
    assert tick_label(0.0, 0.1) == "0"


def test_a_flat_curve_gets_a_range_around_its_value():
    assert y_range([0.002]) == pytest.approx((0.0018, 0.0022))
    assert y_range([0.0, 0.0]) == pytest.approx((-0.1, 0.1))
    assert y_range([0.1, 0.2]) is None and y_range([]) is None


@pytest.fixture
def lr_plot(qtbot) -> LivePlot:
    plot = LivePlot("Learning rate", (Series("lr", "lr"),))
    qtbot.addWidget(plot)
    plot.resize(700, 200)
    plot.show()
    return plot


def test_one_learning_rate_point_sits_in_a_readable_range(qtbot, lr_plot):
    lr_plot.set_series("lr", [1.0], [0.002])
    low, high = lr_plot.plot.getPlotItem().viewRange()[1]
    assert low < 0.002 < high and high - low < 0.001  # not -0.4..0.4 with the point at 0
    left = lr_plot.plot.getPlotItem().getAxis("left")
    spacing, values = left.tickValues(low, high, 150)[0]
    assert "0.0020" in left.tickStrings(values, 1, spacing)


def test_small_values_get_labels_and_epochs_whole_number_ticks(qtbot, lr_plot):
    lr_plot.set_series("lr", [1.0, 2.0, 3.0], [0.0018, 0.0015, 0.0013])
    item = lr_plot.plot.getPlotItem()
    bottom, left = item.getAxis("bottom"), item.getAxis("left")
    ticks = [v for _, values in bottom.tickValues(0.9, 3.1, 600) for v in values]
    assert ticks == [1.0, 2.0, 3.0]
    assert bottom.tickStrings(ticks, 1, 1) == ["1", "2", "3"]
    spacing, values = left.tickValues(0.00127, 0.00183, 150)[0]
    labels = left.tickStrings(values, 1, spacing)
    assert labels and all(len(label) <= 7 for label in labels)
    assert left.width() >= 50  # room for them: pyqtgraph drops labels wider than its axis
