"""The Models page's list of quality reports (``report`` jobs) with their headline figures.

One row per report, newest first, one child row per model in it: accuracy, ECE, the share
answered at the rejection threshold, the worst verdict flip rate under JPEG 75 / 0.5x / crop,
and for leave-one-generator-out runs the unseen class and how often it was still called fake.
Double-click or "Open report" shows the HTML report in the browser. The records come from
:func:`core.reports.scan_reports`, read on a worker thread by the page.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.widgets.formatting import fraction, percent
from app.widgets.tree_headers import set_header_tips
from core.reports import ReportedModel, ReportInfo

COLUMNS = (
    "Report / model",
    "Created",
    "Data",
    "Accuracy",
    "ECE",
    "Answered",
    "Worst flip",
    "Unseen class called fake",
)
HEADER_TIPS = (
    "the report and, under it, each model it checked (double-click to open it)",
    "when the report was made",
    "the data set and the split the report checked",
    "share of the images the model classified right",
    "expected calibration error: how far the confidences are from how often the model is "
    "right (0 is perfect)",
    "share of the images the model answers at its threshold (the rest are “Unknown”)",
    "the largest share of verdicts that change when an image is saved as JPEG 75, halved in "
    "size or cropped",
    "leave-one-generator-out: the generator the model never saw in training, and how often "
    "its images were still called fake",
)
"""Header tooltips, in :data:`COLUMNS` order."""
NUMERIC_FROM = 3


def model_cells(model: ReportedModel) -> list[str]:
    """A model's child row, in :data:`COLUMNS` order."""
    unseen = (
        f"{model.unseen}: {percent(model.unseen_called_fake)}" if model.unseen is not None else ""
    )
    return [
        model.name,
        "",
        "",
        percent(model.accuracy),
        fraction(model.ece),
        percent(model.coverage),
        percent(model.worst_flip),
        unseen,
    ]


class ReportsPanel(QWidget):
    """The reports of the workspace as a tree; opens the selected one in the browser."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        set_header_tips(self.tree, HEADER_TIPS)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.tree.currentItemChanged.connect(lambda *_: self._update_button())
        layout.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.empty_label = QLabel(
            "No quality reports yet: select runs or bundles above and press Quality report…"
        )
        self.empty_label.setObjectName("muted")
        row.addWidget(self.empty_label)
        row.addStretch(1)
        self.open_button = QPushButton("Open report")
        self.open_button.clicked.connect(self.open_selected)
        row.addWidget(self.open_button)
        layout.addLayout(row)
        self._update_button()

    def show_reports(self, reports: list[ReportInfo]) -> None:
        """Replace the rows (the page calls this with each scan's result)."""
        self.tree.clear()
        for report in reports:
            top = QTreeWidgetItem([report.name, report.created_text, _data_text(report)])
            top.setData(0, Qt.ItemDataRole.UserRole, str(report.html))
            top.setToolTip(0, str(report.html))
            top.setToolTip(2, report.data)
            for model in report.models:
                child = QTreeWidgetItem(model_cells(model))
                child.setData(0, Qt.ItemDataRole.UserRole, str(report.html))
                for column in range(NUMERIC_FROM, len(COLUMNS)):
                    child.setTextAlignment(
                        column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                top.addChild(child)
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()
        self.empty_label.setVisible(not reports)
        if reports:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._update_button()

    def selected_report(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    @Slot()
    def open_selected(self) -> None:
        path = self.selected_report()
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    @Slot(QTreeWidgetItem, int)
    def _on_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.tree.setCurrentItem(item)
        self.open_selected()

    def _update_button(self) -> None:
        self.open_button.setEnabled(self.selected_report() is not None)


def _data_text(report: ReportInfo) -> str:
    name = Path(report.data).name if report.data else "?"
    return f"{name} ({report.split})"
