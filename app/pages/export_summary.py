"""The Export wizard's last step: what the export wrote and what its verification measured.

Shows each bundle's ``verification.json`` (parity, accuracy, size and latency per variant, the
checks) and its ``bundle.json`` calibration as sentences (:mod:`app.pages.export_plan` does the
reading and wording).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import style
from app.pages.check_model import describe_threshold
from app.pages.export_plan import (
    ExportedBundle,
    checks,
    held_out_words,
    variant_rows,
    verified_on,
    weakness,
)
from app.widgets import formatting


def card(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    layout.setSpacing(8)
    heading = QLabel(title)
    heading.setObjectName("cardTitle")
    layout.addWidget(heading)
    return frame, layout


def headline(bundles: list[ExportedBundle], verified: bool) -> str:
    """The summary's first line: green when verified, amber when verified but weak, red else."""
    precisions = " and ".join(b.precision.upper() for b in bundles)
    text = f"{precisions} bundle{'s' if len(bundles) > 1 else ''} exported and verified"
    if not verified:
        return f"<span style='color:{style.ERROR}'>✕</span> {text}"
    weak = [(b.precision.upper(), weakness(b)) for b in bundles]
    reasons = [f"{name}: {why}" if len(bundles) > 1 else why for name, why in weak if why]
    if not reasons:
        return f"<span style='color:#15803d'>✓</span> {text}"
    return (
        f"<span style='color:{style.WARNING}'>⚠ {text}, but this model is weak</span>"
        f"<div style='color:{style.WARNING}; font-size:10pt; font-weight:400'>"
        f"{' · '.join(reasons)}. Train longer or on more data before relying on it.</div>"
    )


class ExportSummary(QWidget):
    """The summary step: headline, variant table, checks and the threshold in words."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bundles: list[ExportedBundle] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        frame, box = card("Result")
        self.headline = QLabel()
        self.headline.setObjectName("headline")
        self.headline.setWordWrap(True)
        box.addWidget(self.headline)
        self.bundle_paths = QLabel()
        self.bundle_paths.setObjectName("muted")
        self.bundle_paths.setWordWrap(True)
        self.bundle_paths.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.bundle_paths)
        self.variant_table = QTableWidget(0, 6)
        self.variant_table.setHorizontalHeaderLabels(
            ["Variant", "Accuracy", "Model size", "Latency", "Parity", "Bundle"]
        )
        self.variant_table.verticalHeader().hide()
        self.variant_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.variant_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.variant_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.variant_table.setShowGrid(False)
        self.variant_table.setAlternatingRowColors(True)
        self.variant_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.variant_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        box.addWidget(self.variant_table)
        self.measured_label = QLabel()
        self.measured_label.setObjectName("muted")
        box.addWidget(self.measured_label)
        self.checks_label = QLabel()
        self.checks_label.setWordWrap(True)
        self.checks_label.setTextFormat(Qt.TextFormat.RichText)
        box.addWidget(self.checks_label)
        layout.addWidget(frame)
        frame, box = card("The “Unknown” threshold")
        self.threshold_label = QLabel()
        self.threshold_label.setObjectName("explain")
        self.threshold_label.setWordWrap(True)
        box.addWidget(self.threshold_label)
        layout.addWidget(frame)
        layout.addStretch(1)

    def show_bundles(self, bundles: list[ExportedBundle]) -> None:
        """Show the reports of ``bundles`` (an empty list clears the view)."""
        self.bundles = list(bundles)
        if not bundles:
            self.variant_table.setRowCount(0)
            return
        results = checks(bundles)
        self.headline.setText(headline(bundles, all(passed for passed, _ in results)))
        lines = []
        for bundle in bundles:
            where = str(bundle.path) + (f"  ·  zip: {bundle.zip}" if bundle.zip else "")
            lines.append(f"{bundle.precision.upper()}: {where}")
        self.bundle_paths.setText("\n".join(lines))
        rows = variant_rows(bundles)
        self.variant_table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            cells = [
                row.title,
                formatting.percent(row.accuracy),
                formatting.size(row.bytes),
                "" if row.latency_ms is None else f"{row.latency_ms:.2f} ms/image",
                row.parity,
                row.bundle.name if row.bundle else "not shipped",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (1, 2, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                item.setData(Qt.ItemDataRole.UserRole, str(row.bundle) if row.bundle else "")
                self.variant_table.setItem(index, column, item)
        self.variant_table.resizeColumnsToContents()
        self.variant_table.resizeRowsToContents()
        height = self.variant_table.horizontalHeader().height() + 4
        height += sum(self.variant_table.rowHeight(r) for r in range(len(rows)))
        self.variant_table.setFixedHeight(height)
        shipped = [i for i, row in enumerate(rows) if row.bundle is not None]
        if shipped:
            self.variant_table.selectRow(shipped[0])
        self.measured_label.setText(verified_on(bundles[0]).capitalize() if bundles else "")
        self.checks_label.setText(
            "<br>".join(
                f"<span style='color:{'#15803d' if passed else style.ERROR}'>"
                f"{'✓' if passed else '✕'}</span> {message}"
                for passed, message in results
            )
        )
        words = []
        for bundle in bundles:
            prefix = f"<b>{bundle.precision.upper()}</b>: " if len(bundles) > 1 else ""
            calibration = bundle.calibration
            text = (
                f"{prefix}Threshold <b>{float(calibration.get('threshold', 0.0)):.2f}</b> "
                f"(temperature {float(calibration.get('temperature', 1.0)):.2f}). The model "
                + describe_threshold(calibration)
            )
            held_out = held_out_words(bundle)
            if held_out:
                text += " " + held_out
            words.append(text)
        self.threshold_label.setText("<br><br>".join(words))

    def selected_bundle(self) -> Path | None:
        """The bundle of the selected summary row (the first shipped one by default)."""
        rows = self.variant_table.selectionModel().selectedRows() if self.bundles else []
        for index in rows:
            path = self.variant_table.item(index.row(), 0).data(Qt.ItemDataRole.UserRole)
            if path:
                return Path(path)
        return self.bundles[0].path if self.bundles else None
