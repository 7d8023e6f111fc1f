"""A vertical scroll area for content that must keep its natural height (forms, detail text).

Rows inside keep their size hints; when the window is too short the area scrolls instead of
squeezing or overlapping them. The area is transparent, so it sits on a card unnoticed.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

TRANSPARENT = "QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }"


class FittingScrollArea(QScrollArea):
    """A scroll area whose size hint follows its content's current height at its width.

    (``QScrollArea`` caches the content's hint once, so a panel whose text changes would keep
    the hint of its first, empty text.) Call :meth:`updateGeometry` after changing the content.
    """

    def sizeHint(self) -> QSize:
        content = self.widget()
        if content is None:
            return super().sizeHint()
        hint = content.sizeHint()
        layout = content.layout()
        width = self.viewport().width()
        height = hint.height()
        if layout is not None and layout.hasHeightForWidth() and width > 0:
            height = layout.totalHeightForWidth(width)
        frame = 2 * self.frameWidth()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(hint.width() + bar + frame, height + frame)

    def minimumSizeHint(self) -> QSize:
        """As narrow as the content allows (read when laid out, after styling), no narrower."""
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        width = content.minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # wrapped text is taller or shorter at the new width


def vertical_scroll(content: QWidget, name: str = "") -> FittingScrollArea:
    """``content`` in a frameless, resizable, vertically scrolling area.

    The area is never narrower than ``content``'s minimum width plus the scroll bar (see
    :meth:`FittingScrollArea.minimumSizeHint`), so nothing on the right (a Browse… button) is
    clipped.
    """
    area = FittingScrollArea()
    area.setObjectName(name or f"scroll_{content.objectName() or 'content'}")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setStyleSheet(TRANSPARENT)
    area.setWidget(content)
    return area
