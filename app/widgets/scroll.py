"""A vertical scroll area for content that must keep its natural height (forms, detail text).

Rows inside keep their size hints; when the window is too short the area scrolls instead of
squeezing or overlapping them. The area is transparent, so it sits on a card unnoticed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

TRANSPARENT = "QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }"


def vertical_scroll(content: QWidget, name: str = "") -> QScrollArea:
    """``content`` in a frameless, resizable, vertically scrolling area.

    The area is never narrower than ``content``'s minimum width plus the scroll bar, so nothing
    on the right (a Browse… button) is clipped.
    """
    area = QScrollArea()
    area.setObjectName(name or f"scroll_{content.objectName() or 'content'}")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setStyleSheet(TRANSPARENT)
    area.setWidget(content)
    scrollbar = area.verticalScrollBar().sizeHint().width()
    area.setMinimumWidth(content.minimumSizeHint().width() + scrollbar)
    return area
