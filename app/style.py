"""The app's look in one place: palette, style sheet, icons, verdict and status colours.

Colour is never the only signal: every verdict and job status also has a glyph and a word
(:data:`VERDICTS`, :data:`STATUSES`), drawn into icons by :func:`badge_icon`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parent / "resources"

ACCENT = "#2563eb"
SIDEBAR = "#111827"
SURFACE = "#ffffff"
WINDOW = "#f3f4f6"
BORDER = "#e5e7eb"
TEXT = "#111827"
MUTED = "#6b7280"
ERROR = "#b91c1c"
DISABLED_TEXT = "#9ca3af"
DISABLED_FILL = "#f3f4f6"
"""Text and fill of every disabled button, primary and danger ones included."""
WARNING = "#92400e"
"""Text of a stop that is not a failure (a cancelled export)."""

PLOT_COLOURS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777")
"""Series colours for plots, in order (colour-blind-friendly enough with distinct dashes)."""

VERDICTS: dict[str, tuple[str, str, str]] = {
    "real": ("#15803d", "✓", "Real"),
    "fake": ("#b91c1c", "✕", "Fake"),
    "unknown": ("#b45309", "?", "Unknown"),
}
"""``verdict -> (colour, glyph, label)``; the labels are the words that open core's verdict
sentences ("Unknown: …", "Fake (sd14): …"), the CLI's and the phone's."""

STATUSES: dict[str, tuple[str, str]] = {
    "queued": ("#6b7280", "…"),
    "running": ("#2563eb", "▶"),
    "done": ("#15803d", "✓"),
    "failed": ("#b91c1c", "✕"),
    "cancelled": ("#b45309", "■"),
    "interrupted": ("#b45309", "!"),
}
"""``job status -> (colour, glyph)``."""

STYLE_SHEET = f"""
QMainWindow, QWidget#page {{ background: {WINDOW}; }}
QListWidget#sidebar {{
    background: {SIDEBAR}; color: #e5e7eb; border: none; padding: 10px 6px;
    font-size: 10.5pt; outline: 0;
}}
QListWidget#sidebar::item {{ padding: 9px 10px; border-radius: 6px; margin: 1px 0; }}
QListWidget#sidebar::item:selected {{ background: {ACCENT}; color: white; }}
QListWidget#sidebar::item:hover:!selected {{ background: #1f2937; }}
QLabel#brand {{
    background: {SIDEBAR}; color: white; font-size: 12pt; font-weight: 600; padding: 14px 12px 6px;
}}
QLabel#pageTitle {{ font-size: 15pt; font-weight: 600; color: {TEXT}; }}
QLabel#pageSubtitle, QLabel#muted {{ color: {MUTED}; }}
QLabel#sectionTitle {{ font-weight: 600; color: {TEXT}; }}
QLabel#fieldError {{ color: {ERROR}; font-size: 9pt; }}
QLabel#placeholderError {{
    color: {ERROR}; background: #fef2f2; border: 1px solid #fecaca; border-radius: 6px;
    padding: 10px; font-family: monospace;
}}
QGroupBox {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 8px;
    margin-top: 14px; padding: 10px 10px 8px; font-weight: 600;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {TEXT}; }}
QGroupBox QWidget {{ font-weight: normal; }}
QPushButton {{
    background: {SURFACE}; border: 1px solid #d1d5db; border-radius: 6px; padding: 5px 12px;
}}
QPushButton:hover {{ background: #f9fafb; border-color: #9ca3af; }}
QPushButton:disabled {{ color: {DISABLED_TEXT}; background: {DISABLED_FILL}; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#primary:hover {{ background: #1d4ed8; }}
QPushButton#danger {{ color: {ERROR}; }}
QPushButton#primary:disabled, QPushButton#danger:disabled {{
    color: {DISABLED_TEXT}; background: {DISABLED_FILL}; border-color: #d1d5db; font-weight: normal;
}}
QLineEdit {{
    background: {SURFACE}; border: 1px solid #c4c9d0; border-radius: 4px; padding: 3px 6px;
    min-height: 18px;
}}
QLineEdit:focus {{ border-color: {ACCENT}; }}
QToolButton#disclosure {{ border: none; color: #374151; font-weight: 600; padding: 4px 0; }}
QTreeWidget, QTableWidget, QPlainTextEdit, QListWidget {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 6px;
    selection-background-color: #dbeafe; selection-color: {TEXT};
}}
QHeaderView::section {{
    background: #f9fafb; color: #374151; border: none; border-bottom: 1px solid {BORDER};
    padding: 5px 6px; font-weight: 600;
}}
QPlainTextEdit#log {{ font-family: monospace; font-size: 9pt; }}
QProgressBar {{
    border: 1px solid {BORDER}; border-radius: 5px; background: {SURFACE}; height: 16px;
    text-align: center;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QStatusBar {{ background: {SURFACE}; border-top: 1px solid {BORDER}; color: #374151; }}
QStatusBar QLabel {{ padding: 0 8px; }}
QSplitter::handle {{ background: transparent; }}
"""


def resource(name: str) -> Path:
    return RESOURCES / name


@cache
def icon(name: str) -> QIcon:
    """An icon from ``app/resources/<name>.svg``."""
    return QIcon(str(resource(f"{name}.svg")))


@cache
def badge_icon(colour: str, glyph: str, size: int = 16) -> QIcon:
    """A filled circle in ``colour`` with a white ``glyph``: colour plus a shape."""
    pixmap = QPixmap(size * 2, size * 2)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(QRectF(1, 1, size * 2 - 2, size * 2 - 2))
    font = QFont()
    font.setBold(True)
    font.setPixelSize(int(size * 1.15))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(QRectF(0, 0, size * 2, size * 2), Qt.AlignmentFlag.AlignCenter, glyph)
    painter.end()
    return QIcon(pixmap)


def status_icon(status: str) -> QIcon:
    colour, glyph = STATUSES.get(status, ("#6b7280", "•"))
    return badge_icon(colour, glyph)


def verdict_icon(verdict: str) -> QIcon:
    colour, glyph, _ = VERDICTS.get(verdict, VERDICTS["unknown"])
    return badge_icon(colour, glyph)


def apply(app: QApplication) -> None:
    """Fusion style, a light palette, the app font and style sheet, the window icon."""
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(WINDOW))
    palette.setColor(QPalette.ColorRole.Base, QColor(SURFACE))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor("#f9fafb"))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    app.setPalette(palette)
    font = app.font()
    font.setPointSizeF(max(font.pointSizeF(), 10.0))
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
    app.setWindowIcon(icon("app"))


def apply_once() -> None:
    """:func:`apply` to the running application unless that was done already."""
    app = QApplication.instance()
    if isinstance(app, QApplication) and not app.property("deepfake_studio_styled"):
        apply(app)
        app.setProperty("deepfake_studio_styled", True)
