"""A muted line that stands in for an empty list or plot and says what would fill it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def placeholder(text: str) -> QLabel:
    """A centred, wrapped, muted label (style sheet ``QLabel#muted``)."""
    label = QLabel(text)
    label.setObjectName("muted")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setMargin(12)
    return label
