"""The Check page's detail panel: the selected image large, a heatmap toggle, the verdict.

The image (and its heatmap overlay, from the bundle's ``cam`` output) is decoded at display size
on the background pool by :func:`app.check_worker.load_preview`, one at a time: while one loads,
only the latest selection waits (arrowing through 50 rows decodes 2 images, not 50), and a
stale answer (the user selected another row meanwhile) is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QCheckBox, QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.check_worker import heatmap_problem, load_preview
from app.pages.check_model import detail_text, verdict_style, verdict_text
from app.widgets.background import run_in_background
from app.widgets.scroll import vertical_scroll
from core.inference import CheckResult


def _pixmap(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


IMAGE_MIN = QSize(120, 90)
"""The preview's smallest size: below the text it scales down to this on short windows."""
TEXT_MIN_HEIGHT = 64
"""The scrolling verdict text never gets less than about three lines."""


class ElidedLabel(QLabel):
    """One line of plain text elided in the middle to the label's width; the tooltip has it all.

    Its width never depends on the text, so a long file name cannot widen the panel.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.full_text = ""
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        """Show ``text``, elided when it does not fit."""
        self.full_text = text
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 1)
        shown = self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideMiddle, width)
        super().setText(shown)
        self.setToolTip(self.full_text if shown != self.full_text else "")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()


class ImageView(QLabel):
    """A label that shows a pixmap scaled to fit, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailImage")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(IMAGE_MIN)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.source: QPixmap | None = None

    def show_pixmap(self, pixmap: QPixmap | None, placeholder: str = "") -> None:
        self.source = pixmap
        if pixmap is None:
            self.setPixmap(QPixmap())
            self.setText(placeholder)
        else:
            self.setText("")
            self._rescale()

    def _rescale(self) -> None:
        if self.source is None or self.source.isNull():
            return
        target = self.size() - QSize(12, 12)
        if self.source.width() <= target.width() and self.source.height() <= target.height():
            # small images are enlarged with nearest-neighbour pixels (no blur) up to the box
            factor = max(
                1,
                min(target.width() // self.source.width(), target.height() // self.source.height()),
            )
            scaled = self.source.scaled(
                self.source.size() * factor,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        else:
            scaled = self.source.scaled(
                target,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        self.setPixmap(scaled)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()


class DetailPanel(QFrame):
    """The selected result: the image large, a heatmap toggle, the verdict and its explanation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detail")
        self.result: CheckResult | None = None
        self.image_pixmap: QPixmap | None = None
        self.overlay_pixmap: QPixmap | None = None
        self._token = 0
        self._loading = False
        self._waiting: tuple[int, tuple[Any, ...]] | None = None
        """The latest preview asked for while another was loading: ``(token, arguments)``."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(8)
        self.title = ElidedLabel("No image selected")
        self.title.setObjectName("detailTitle")
        layout.addWidget(self.title)
        self.image = ImageView()
        layout.addWidget(self.image, 1)
        self.heatmap_check = QCheckBox("Show heatmap (where the evidence is)")
        self.heatmap_check.setEnabled(False)
        self.heatmap_check.toggled.connect(self._on_heatmap_toggled)
        layout.addWidget(self.heatmap_check)
        self.verdict = QLabel()
        self.verdict.setObjectName("detailVerdict")
        layout.addWidget(self.verdict)
        self.text_area = vertical_scroll(self._build_text(), "detailText")
        self.text_area.setMinimumSize(0, TEXT_MIN_HEIGHT)
        self.text_area.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.text_area)
        self.show_result(None)

    def _build_text(self) -> QWidget:
        """The heatmap note, explanation, probabilities and path: they scroll when long."""
        text = QWidget()
        column = QVBoxLayout(text)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(8)
        self.heatmap_note = QLabel()
        self.heatmap_note.setObjectName("muted")
        self.heatmap_note.setWordWrap(True)
        self.heatmap_note.hide()
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.probs = QLabel()
        self.probs.setObjectName("muted")
        self.probs.setWordWrap(True)
        self.path = ElidedLabel()
        self.path.setObjectName("muted")
        self.path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for label in (self.heatmap_note, self.explanation, self.probs, self.path):
            column.addWidget(label)
        column.addStretch(1)
        return text

    def show_result(
        self, result: CheckResult | None, class_names: Sequence[str] = (), spec: Any = None
    ) -> None:
        """Show ``result`` (``None``: nothing selected); the image loads on a worker thread."""
        self._show_result(result, class_names, spec)
        self.text_area.updateGeometry()  # the text's height changed

    def _show_result(
        self, result: CheckResult | None, class_names: Sequence[str], spec: Any
    ) -> None:
        self.result = result
        self.image_pixmap = self.overlay_pixmap = None
        self._token += 1
        self.heatmap_check.setEnabled(False)
        self.heatmap_note.hide()
        if result is None:
            self.title.set_full_text("No image selected")
            self.image.show_pixmap(None, "Select a result to see it here")
            for label in (self.verdict, self.explanation, self.probs):
                label.setText("")
            self.path.set_full_text("")
            return
        colour, glyph, _ = verdict_style(result.verdict)
        self.title.set_full_text(Path(result.path).name)
        self.verdict.setText(f"{glyph}  {verdict_text(result)}")
        self.verdict.setStyleSheet(f"color: {colour};")
        self.explanation.setText(detail_text(result))
        self.path.set_full_text(result.path)
        if not result.ok:
            self.probs.setText("")
            self.image.show_pixmap(None, "This file could not be read")
            return
        ranked = sorted(result.probs.items(), key=lambda kv: -kv[1])
        self.probs.setText("Probabilities: " + " · ".join(f"{name} {p:.2f}" for name, p in ranked))
        problem = heatmap_problem(result.cam, spec)
        has_cam = problem is None and result.label in class_names
        self.heatmap_check.setToolTip(problem or "")
        self.heatmap_note.setText(problem or "")
        self.heatmap_note.setVisible(problem is not None)
        self.image.show_pixmap(None, "Loading…")
        class_index = list(class_names).index(result.label) if has_cam else None
        cam = result.cam if has_cam else None
        self._request_preview((result.path, cam, class_index, spec, result.image_size))

    def _request_preview(self, arguments: tuple[Any, ...]) -> None:
        if self._loading:
            self._waiting = (self._token, arguments)
        else:
            self._start_preview(self._token, arguments)

    def _start_preview(self, token: int, arguments: tuple[Any, ...]) -> None:
        self._loading = True
        run_in_background(
            load_preview,
            *arguments,
            on_done=lambda images: self._on_preview_loaded(token, images),
            on_error=lambda message: self._on_preview_failed(token, message),
        )

    def _preview_finished(self) -> None:
        """One load ended: start the one that waited, if it is still wanted."""
        self._loading = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None and waiting[0] == self._token:
            self._start_preview(*waiting)

    def is_loading(self) -> bool:
        """Whether a preview is being decoded."""
        return self._loading

    def _on_preview_loaded(self, token: int, images: tuple[np.ndarray, np.ndarray | None]) -> None:
        self._preview_finished()
        if token != self._token:
            return
        rgb, blended = images
        self.image_pixmap = _pixmap(rgb)
        self.overlay_pixmap = None if blended is None else _pixmap(blended)
        self.heatmap_check.setEnabled(self.overlay_pixmap is not None)
        self._show_current()

    def _on_preview_failed(self, token: int, message: str) -> None:
        self._preview_finished()
        if token == self._token:
            self.image.show_pixmap(None, message)

    @Slot(bool)
    def _on_heatmap_toggled(self, _checked: bool) -> None:
        self._show_current()

    def _show_current(self) -> None:
        use_overlay = self.heatmap_check.isChecked() and self.overlay_pixmap is not None
        self.image.show_pixmap(self.overlay_pixmap if use_overlay else self.image_pixmap)

    def shown_pixmap(self) -> QPixmap | None:
        """The full-size pixmap currently shown (the overlay when the heatmap is on)."""
        return self.image.source
