"""app.style: disabled buttons look disabled, whatever their role (pytest-qt)."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QPushButton, QWidget

from app import style


def colours(button: QPushButton) -> set[tuple[int, int, int]]:
    image = button.grab().toImage()
    return {
        QColor(image.pixel(x, y)).getRgb()[:3]
        for x in range(0, image.width(), 2)
        for y in range(0, image.height(), 2)
    }


@pytest.mark.parametrize("role", ["danger", "primary"])
def test_a_disabled_button_is_grey_whatever_its_role(qtbot, role):
    box = QWidget()
    box.setStyleSheet(style.STYLE_SHEET)
    qtbot.addWidget(box)
    button = QPushButton("Delete… Use for checking", box)
    button.setObjectName(role)
    button.setEnabled(False)
    button.resize(220, 32)
    box.show()
    seen = colours(button)
    reddish = {c for c in seen if c[0] - c[2] > 50}  # #b91c1c text
    bluish = {c for c in seen if c[2] - c[0] > 50}  # #93c5fd fill
    assert not reddish and not bluish, f"{role}: {sorted(reddish | bluish)[:3]}"
    assert QColor(style.DISABLED_FILL).getRgb()[:3] in seen
