"""Starts the Qt application. Imported only when the GUI is wanted (no subcommand)."""

from __future__ import annotations

import os
import sys


def launch(workspace: str | None = None) -> int:
    """Open the main window and run the Qt event loop until it closes."""
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from core.workspace import Workspace

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Deepfake Studio")
    app.setOrganizationName("Deepfake Studio")
    window = MainWindow(Workspace.resolve(workspace))
    window.show()
    return app.exec()
