"""The Check page's results table: a growing table model, a verdict filter and two delegates.

* :class:`CheckResultsModel` holds :class:`core.inference.CheckResult` rows, appended in chunks;
  thumbnails are decoded lazily on a worker thread for the rows the view actually paints.
* :class:`VerdictFilterProxy` sorts (numerically where it matters) and filters by verdict.
* :class:`VerdictDelegate` paints a badge (colour + glyph + word, never colour alone);
  :class:`ConfidenceDelegate` paints the calibrated confidence as a bar with the threshold tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app import style
from app.check_worker import THUMBNAIL_SIZE, load_thumbnails
from app.widgets.background import run_in_background
from core.inference import CheckResult

ERROR_STYLE = ("#475569", "!", "Unreadable")
"""``(colour, glyph, word)`` of an unreadable file (slate, distinct from every verdict)."""
VERDICT_ORDER = {"real": 0, "fake": 1, "unknown": 2, "error": 3}
"""Sort order, and the order of the filters and counts."""
GENERIC_FAKE_LABELS = {"fake", "ai", "generated", "synthetic"}
THUMBNAIL_BATCH = 64

Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    THUMBNAIL = 0
    FILE = 1
    VERDICT = 2
    CONFIDENCE = 3
    EXPLANATION = 4


HEADERS = {
    Column.THUMBNAIL: "#",
    Column.FILE: "File",
    Column.VERDICT: "Verdict",
    Column.CONFIDENCE: "Confidence",
    Column.EXPLANATION: "Explanation",
}

RESULT_ROLE = Qt.ItemDataRole.UserRole + 1
"""``data(index, RESULT_ROLE)`` is the row's :class:`CheckResult`."""
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
"""Numbers / lower-cased text for sorting."""
MODEL_ROLE = Qt.ItemDataRole.UserRole + 3
"""``data(index, MODEL_ROLE)`` is the :class:`ModelInfo` of the model that made the row."""


@dataclass(frozen=True)
class ModelInfo:
    """What a row needs to know about the model that checked it (heatmap channel, report)."""

    class_names: tuple[str, ...]
    preprocess: Any
    description: str

    @classmethod
    def of(cls, predictor: Any) -> ModelInfo:
        return cls(tuple(predictor.class_names), predictor.preprocess, predictor.description)


def verdict_style(verdict: str) -> tuple[str, str, str]:
    """``(colour, glyph, word)`` of a verdict (``error`` included), from :mod:`app.style`."""
    if verdict == "error":
        return ERROR_STYLE
    return style.VERDICTS.get(verdict, style.VERDICTS["unknown"])


def verdict_text(result: CheckResult) -> str:
    """``"Real"``, ``"Fake (sd14)"``, ``"Unknown"`` or ``"Unreadable"``: the words of the
    explanation sentences (a generic fake label such as ``fake`` adds nothing)."""
    _, _, word = verdict_style(result.verdict)
    if (
        result.verdict == "fake"
        and result.label
        and result.label.lower() not in GENERIC_FAKE_LABELS
    ):
        return f"{word} ({result.label})"
    return word


def verdict_filters() -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    """The Show filter's ``(title, verdicts)`` choices, titled with the table's words."""
    verdicts = tuple((verdict_style(v)[2], (v,)) for v in VERDICT_ORDER)
    return (("All results", None), *verdicts)


def count_words() -> dict[str, str]:
    """``verdict -> word`` of the counts line ("3 real · 1 unknown · 2 unreadable")."""
    return {verdict: verdict_style(verdict)[2].lower() for verdict in VERDICT_ORDER}


def file_name(result: CheckResult) -> str:
    return Path(result.path).name


def detail_text(result: CheckResult) -> str:
    """The explanation column: the verdict's sentence, or the error message."""
    if not result.ok:
        message = result.message or "unreadable file"
        prefix = f"{result.path}: "
        return message[len(prefix) :] if message.startswith(prefix) else message
    return result.explanation


class CheckResultsModel(QAbstractTableModel):
    """Check results in arrival order; see the module docstring."""

    def __init__(self, parent: QObject | None = None, thumbnail_size: int = THUMBNAIL_SIZE) -> None:
        super().__init__(parent)
        self.results: list[CheckResult] = []
        self.infos: list[ModelInfo | None] = []
        """The model of each row (one shared object per run)."""
        self.score_kind = "max_softmax"
        """The bundle's score (``max_softmax``: the threshold is on the confidence axis)."""
        self.thumbnail_size = thumbnail_size
        self._thumbnails: dict[str, QPixmap | None] = {}
        self._row_of: dict[str, list[int]] = {}
        self._wanted: set[str] = set()
        self._loading = 0
        self._generation = 0
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(15)
        self._thumb_timer.timeout.connect(self._on_thumb_timer_timeout)

    # -- contents -------------------------------------------------------------------------------

    def append(self, results: Sequence[CheckResult], info: ModelInfo | None = None) -> None:
        """Add a chunk of results made by the model ``info`` at the end (one insert
        notification per chunk)."""
        if not results:
            return
        first = len(self.results)
        self.beginInsertRows(QModelIndex(), first, first + len(results) - 1)
        for offset, result in enumerate(results):
            self._row_of.setdefault(result.path, []).append(first + offset)
        self.results.extend(results)
        self.infos.extend([info] * len(results))
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.results.clear()
        self.infos.clear()
        self._row_of.clear()
        self._thumbnails.clear()
        self._wanted.clear()
        self._generation += 1
        self.endResetModel()

    def counts(self) -> dict[str, int]:
        """Rows per verdict (``real``, ``fake``, ``unknown``, ``error``)."""
        counts = dict.fromkeys(VERDICT_ORDER, 0)
        for result in self.results:
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        return counts

    def stop(self) -> None:
        """Stop the thumbnail timer (the page is closing)."""
        self._thumb_timer.stop()
        self._wanted.clear()

    # -- Qt model API -------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.results)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.results):
            return None
        result = self.results[index.row()]
        column = Column(index.column())
        if role == RESULT_ROLE:
            return result
        if role == MODEL_ROLE:
            return self.infos[index.row()]
        if role == SORT_ROLE:
            return self._sort_key(result, column, index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(result, column)
        if role == Qt.ItemDataRole.DecorationRole and column == Column.THUMBNAIL:
            return self._thumbnail(result)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (Column.FILE, Column.THUMBNAIL):
                return result.path
            return detail_text(result)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == Column.THUMBNAIL:
            return Qt.AlignmentFlag.AlignCenter
        return None

    def _display(self, result: CheckResult, column: Column) -> str | None:
        if column == Column.FILE:
            return file_name(result)
        if column == Column.VERDICT:
            return verdict_text(result)
        if column == Column.CONFIDENCE:
            return "" if result.confidence is None else f"{result.confidence:.2f}"
        if column == Column.EXPLANATION:
            return detail_text(result)
        return None

    @staticmethod
    def _sort_key(result: CheckResult, column: Column, row: int) -> Any:
        if column == Column.FILE:
            return file_name(result).lower()
        if column == Column.VERDICT:
            return VERDICT_ORDER.get(result.verdict, 9) * 1000 + (
                result.confidence if result.confidence is not None else 0.0
            )
        if column == Column.CONFIDENCE:
            return -1.0 if result.confidence is None else result.confidence
        if column == Column.EXPLANATION:
            return detail_text(result).lower()
        return row

    # -- thumbnails (lazy, worker thread) -------------------------------------------------------

    def _thumbnail(self, result: CheckResult) -> QPixmap | QIcon | None:
        if not result.ok:
            colour, glyph, _ = ERROR_STYLE
            return style.badge_icon(colour, glyph, 12)
        if result.path in self._thumbnails:
            return self._thumbnails[result.path]
        if result.ok:
            self._wanted.add(result.path)
            if self._loading == 0 and not self._thumb_timer.isActive():
                self._thumb_timer.start()
        return None

    def _on_thumb_timer_timeout(self) -> None:
        if not self._wanted or self._loading:
            return
        batch = sorted(self._wanted)[:THUMBNAIL_BATCH]
        self._wanted.difference_update(batch)
        self._loading += 1
        generation = self._generation
        run_in_background(
            load_thumbnails,
            batch,
            self.thumbnail_size,
            on_done=lambda images: self._on_thumbnails_loaded(generation, images),
        )

    def _on_thumbnails_loaded(self, generation: int, images: dict[str, QImage | None]) -> None:
        self._loading -= 1
        if generation == self._generation:
            for path, image in images.items():
                self._thumbnails[path] = None if image is None else QPixmap.fromImage(image)
                for row in self._row_of.get(path, ()):
                    cell = self.index(row, Column.THUMBNAIL)
                    self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DecorationRole])
        if self._wanted:
            self._thumb_timer.start()


class VerdictFilterProxy(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE` and shows only the chosen verdicts (all by default)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.verdicts: frozenset[str] | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_verdicts(self, verdicts: Sequence[str] | None) -> None:
        """Show only rows whose verdict is in ``verdicts`` (``None``: every row)."""
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            self.verdicts = None if verdicts is None else frozenset(verdicts)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.verdicts = None if verdicts is None else frozenset(verdicts)
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self.verdicts is None:
            return True
        model = self.sourceModel()
        result = model.results[source_row] if isinstance(model, CheckResultsModel) else None
        return result is not None and result.verdict in self.verdicts


# -- delegates ------------------------------------------------------------------------------------
def _paint_background(painter: QPainter, option: QStyleOptionViewItem) -> None:
    """The cell's selection / hover background, as the view's style draws it."""
    widget = option.widget
    qstyle = widget.style() if widget is not None else QApplication.style()
    qstyle.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)


class VerdictDelegate(QStyledItemDelegate):
    """A rounded badge: the verdict's colour, a white glyph, the verdict's word."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        result = index.data(RESULT_ROLE)
        if result is None:
            super().paint(painter, option, index)
            return
        _paint_background(painter, option)
        colour, glyph, _ = verdict_style(result.verdict)
        text = verdict_text(result)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(option.font)
        font.setBold(True)
        metrics = QFontMetrics(font)
        height = metrics.height() + 6
        rect = QRectF(option.rect).adjusted(6, 0, -6, 0)
        width = min(rect.width(), metrics.horizontalAdvance(f"{glyph}  {text}") + height + 4)
        badge = QRectF(rect.left(), rect.center().y() - height / 2, width, height)
        tint = QColor(colour)
        tint.setAlpha(30)
        painter.setPen(QPen(QColor(colour), 1))
        painter.setBrush(tint)
        painter.drawRoundedRect(badge, height / 2, height / 2)
        circle = QRectF(badge.left() + 3, badge.top() + 3, height - 6, height - 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(colour))
        painter.drawEllipse(circle)
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(circle, Qt.AlignmentFlag.AlignCenter, glyph)
        painter.setPen(QColor(colour).darker(115))
        text_rect = badge.adjusted(height - 1, 0, -8, 0)
        elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, int(text_rect.width()))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
        )
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width() + 40, max(hint.height(), 26))


class ConfidenceDelegate(QStyledItemDelegate):
    """The calibrated confidence as a bar in the verdict's colour, the threshold as a tick.

    The tick is drawn when the bundle's score is ``max_softmax`` (the threshold is then on the
    confidence axis); an ``energy`` threshold lives on another scale and is shown in the tooltip.
    """

    def __init__(self, model: CheckResultsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.results_model = model

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        result = index.data(RESULT_ROLE)
        _paint_background(painter, option)
        if result is None or result.confidence is None:
            return
        colour, _, _ = verdict_style(result.verdict)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = QFontMetrics(option.font)
        label = f"{result.confidence:.2f}"
        label_width = metrics.horizontalAdvance("0.00") + 8
        rect = QRectF(option.rect).adjusted(6, 0, -6 - label_width, 0)
        bar = QRectF(rect.left(), rect.center().y() - 5, max(rect.width(), 4), 10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#e5e7eb"))
        painter.drawRoundedRect(bar, 4, 4)
        filled = QRectF(bar)
        filled.setWidth(bar.width() * min(max(result.confidence, 0.0), 1.0))
        painter.setBrush(QColor(colour))
        painter.drawRoundedRect(filled, 4, 4)
        threshold = result.threshold
        if self.results_model.score_kind == "max_softmax" and threshold is not None:
            x = bar.left() + bar.width() * min(max(threshold, 0.0), 1.0)
            painter.setPen(QPen(QColor(style.TEXT), 2))
            painter.drawLine(int(x), int(bar.top() - 4), int(x), int(bar.bottom() + 4))
        painter.setPen(QColor(style.TEXT))
        painter.setFont(option.font)
        text_rect = QRectF(rect.right() + 6, option.rect.top(), label_width, option.rect.height())
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, label
        )
        painter.restore()

    def helpEvent(self, event, view, option, index) -> bool:
        result = index.data(RESULT_ROLE)
        if result is not None and result.confidence is not None:
            from PySide6.QtWidgets import QToolTip

            QToolTip.showText(
                event.globalPos(),
                f"confidence {result.confidence:.3f}; score {result.score:.3f} "
                f"vs threshold {result.threshold:.3f}",
                view,
            )
            return True
        return super().helpEvent(event, view, option, index)


def describe_threshold(calibration: Any, verdict: str = "Unknown") -> str:
    """The rejection threshold in words, for the model line and the export summary.

    ``calibration`` is a :class:`core.rejection.Calibration` or its ``bundle.json`` mapping;
    ``verdict`` is the word for what the model answers below it (the Check page's "Unknown").
    """

    def get(key: str, default: Any = None) -> Any:
        if isinstance(calibration, Mapping):
            return calibration.get(key, default)
        return getattr(calibration, key, default)

    word = "confidence" if get("score", "max_softmax") == "max_softmax" else "familiarity score"
    text = f"answers “{verdict}” when the calibrated {word} is below {float(get('threshold', 0.0)):.2f}"
    target = get("target_risk")
    floor, keep = get("energy_floor"), get("floor_keep")
    if floor is not None:
        kept = f" (which {keep:.0%} of held-out images reach)" if keep is not None else ""
        text += (
            f" or when the image is unfamiliar to it: familiarity score below {float(floor):.2f}"
            + kept
        )
    if target is not None:
        text += f", chosen for at most {target:.0%} errors among the images it does answer"
    coverage, risk, n = get("coverage"), get("risk"), get("n")
    if coverage is not None and risk is not None and n:
        text += f" (on {n} held-out images it answered {coverage:.0%}, {risk:.1%} of them wrong)"
    if not get("reached", True):
        text += "; that target could not be reached, so the lowest-risk threshold was kept"
    return text + "."
