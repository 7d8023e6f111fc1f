"""The main window's pages: one module each, a ``QWidget`` subclass taking ``(workspace, parent)``."""
