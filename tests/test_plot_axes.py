"""app.widgets.plot_axes: readable ticks and ranges of the Jobs page's live curves (pytest-qt)."""

from __future__ import annotations

import math

import pytest

from app.widgets.live_plot import LivePlot, Series
from app.widgets.plot_axes import log_ticks, short_number, tick_label, y_range


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


def test_log_ticks_are_one_two_five_per_decade():
    assert log_ticks(math.log10(900), math.log10(120_000), most=12) == [
        1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5
    ]  # fmt: skip
    assert log_ticks(math.log10(900), math.log10(120_000), most=4) == [1e3, 1e4, 1e5]
    assert log_ticks(math.log10(0.025), math.log10(0.065), most=10) == pytest.approx(
        [0.03, 0.04, 0.05, 0.06]
    )  # too few 1-2-5 ticks: every mantissa


@pytest.mark.parametrize(
    ("value", "text"),
    [(1000, "1k"), (20_000, "20k"), (100_000, "100k"), (2e6, "2M"), (0.05, "0.05"), (7, "7")],
)
def test_short_numbers(value, text):
    assert short_number(value) == text


def test_learning_curve_axis_labels_do_not_pile_up(qtbot):
    from app.pages.model_curves import PLOT_MIN_HEIGHT, CurvesPanel

    panel = CurvesPanel()
    qtbot.addWidget(panel)
    axis = panel.plot.getPlotItem().getAxis("bottom")
    levels = axis.tickValues(math.log10(9_000), math.log10(200_000), 400)
    labels = axis.tickStrings(levels[0][1], 1.0, 1.0)
    assert labels == ["10k", "20k", "50k", "100k", "200k"]
    assert panel.plot.minimumHeight() == PLOT_MIN_HEIGHT > 100
