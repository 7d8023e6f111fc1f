"""The main window: a sidebar of pages, the pages in a stack, a status bar.

Pages are built lazily the first time they are shown, so the window opens before heavy modules
(pyqtgraph; torch is never imported by the GUI process) load. A page module that is missing or
fails to import or construct is replaced by a placeholder showing the error (logged with its
traceback), so the app always starts.

Pages talk to the window through optional, duck-typed hooks, connected when a page is built:

* ``sig_bundle_selected(str)`` on a page -> :meth:`MainWindow.select_bundle`;
* ``set_bundle(path: str)`` on a page <- :attr:`MainWindow.sig_bundle_changed` (and called once
  with the active bundle when the page is built);
* ``sig_new_job_requested(kind, values)`` on a page -> the Jobs page's prefilled form;
* ``sig_job_finished`` (Jobs page) or ``sig_export_finished`` (Export page) -> ``refresh()`` of
  the Models page;
* ``sig_job_recorded(JobRecord)`` on a page that runs jobs itself (Export) -> ``adopt_record``
  of the Jobs page when it is built (when it is built later, it reads them from the history).
"""

from __future__ import annotations

import importlib
import json
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import style
from app.compute_slot import SHARED
from core.workspace import Workspace

log = logging.getLogger(__name__)

SETTINGS_FILE = "studio.json"
FIRST_PAGE_FALLBACK_MS = 300
"""Build the first page this long after ``show`` if no paint event came first."""


@dataclass(frozen=True)
class PageSpec:
    """A sidebar entry: ``name`` (for :meth:`MainWindow.show_page`), title, icon, class path."""

    name: str
    title: str
    icon: str
    target: str
    """``"module:Class"``; the class is called as ``Class(workspace, parent=None)``."""


PAGES: tuple[PageSpec, ...] = (
    PageSpec("check", "Check", "check", "app.pages.check:CheckPage"),
    PageSpec("datasets", "Datasets", "datasets", "app.pages.datasets:DatasetsPage"),
    PageSpec("jobs", "Jobs", "jobs", "app.pages.jobs:JobsPage"),
    PageSpec("models", "Models", "models", "app.pages.models:ModelsPage"),
    PageSpec("export", "Export", "export", "app.pages.export:ExportPage"),
)


class PagePlaceholder(QWidget):
    """Stands in for a page that could not be built; shows why."""

    def __init__(self, spec: PageSpec, error: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        self.error = error
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        title = QLabel(spec.title)
        title.setObjectName("pageTitle")
        layout.addWidget(title)
        note = QLabel("This page could not be loaded. The rest of the app works.")
        note.setObjectName("muted")
        layout.addWidget(note)
        details = QLabel(error)
        details.setObjectName("placeholderError")
        details.setWordWrap(True)
        details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(details)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    """Deepfake Studio's window over one :class:`Workspace`."""

    sig_bundle_changed = Signal(str)
    """The active model bundle (a folder or .zip path) changed."""
    sig_page_built = Signal(str)
    """A page was constructed (its name)."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style.apply_once()
        self.workspace = workspace
        self.page_specs: tuple[PageSpec, ...] = PAGES
        """This window's pages, fixed when it is built (its sidebar rows and stack slots)."""
        self.bundle: str | None = None
        self.pages: dict[str, QWidget] = {}
        self.page_errors: dict[str, str] = {}
        self._build_after_paint = False
        self._closed = False
        self.setWindowTitle("Deepfake Studio")
        self.setWindowIcon(style.icon("app"))
        self.resize(1320, 860)
        self.setMinimumSize(960, 640)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        side = QWidget()
        side.setFixedWidth(190)
        side.setStyleSheet(f"background: {style.SIDEBAR};")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        brand = QLabel("Deepfake Studio")
        brand.setObjectName("brand")
        side_layout.addWidget(brand)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setIconSize(QSize(20, 20))
        side_layout.addWidget(self.sidebar, 1)
        self.stack = QStackedWidget()
        for spec in self.page_specs:
            self.sidebar.addItem(QListWidgetItem(style.icon(spec.icon), spec.title))
            slot = QWidget()
            slot_layout = QVBoxLayout(slot)
            slot_layout.setContentsMargins(0, 0, 0, 0)
            loading = QLabel(f"Loading {spec.title}…")
            loading.setObjectName("muted")
            loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
            slot_layout.addWidget(loading)
            self.stack.addWidget(slot)
        row.addWidget(side)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.workspace_label = QLabel(f"Workspace: {workspace.root}")
        self.bundle_label = QLabel()
        self.statusBar().addWidget(self.workspace_label, 1)
        self.statusBar().addPermanentWidget(self.bundle_label)
        self._build_menu()
        self.sidebar.currentRowChanged.connect(self._on_sidebar_row_changed)
        self._restore_bundle()
        # select the first page without building it: it is built right after the window's first
        # paint (showEvent), so the window appears before the page's imports run
        self.sidebar.blockSignals(True)
        self.sidebar.setCurrentRow(0)
        self.sidebar.blockSignals(False)

    # -- public API ---------------------------------------------------------------------------

    def show_page(self, name: str) -> QWidget:
        """Show the page called ``name`` (``check``, ``jobs`` ...; case-insensitive)."""
        index = self._index(name)
        self.sidebar.setCurrentRow(index)
        return self.page(self.page_specs[index].name)

    def page(self, name: str) -> QWidget:
        """The page widget called ``name``, built now if needed (maybe a placeholder)."""
        index = self._index(name)
        self._ensure_page(index)
        return self.pages[self.page_specs[index].name]

    def current_page_name(self) -> str:
        return self.page_specs[self.stack.currentIndex()].name

    def select_bundle(self, path: str | Path | None) -> None:
        """Make ``path`` the active model bundle (saved per workspace) and tell the pages."""
        self.bundle = str(path) if path else None
        self._update_bundle_label()
        self._save_settings()
        self.sig_bundle_changed.emit(self.bundle or "")

    # -- pages --------------------------------------------------------------------------------

    def _index(self, name: str) -> int:
        for index, spec in enumerate(self.page_specs):
            if name.lower() in (spec.name, spec.title.lower()):
                return index
        raise KeyError(f"no page called {name!r}; pages: {[s.name for s in self.page_specs]}")

    @Slot(int)
    def _on_sidebar_row_changed(self, index: int) -> None:
        if index < 0:
            return
        self._ensure_page(index)
        self.stack.setCurrentIndex(index)

    def _ensure_page(self, index: int) -> None:
        spec = self.page_specs[index]
        if spec.name in self.pages:
            return
        page = self._construct(spec)
        self.pages[spec.name] = page
        slot = self.stack.widget(index)
        loading = slot.layout().takeAt(0)
        if loading is not None and loading.widget() is not None:
            loading.widget().deleteLater()
        slot.layout().addWidget(page)
        self._connect_page(page)
        self.sig_page_built.emit(spec.name)

    def _construct(self, spec: PageSpec) -> QWidget:
        module_name, class_name = spec.target.split(":")
        try:
            module = importlib.import_module(module_name)
            page = getattr(module, class_name)(self.workspace, parent=None)
        except Exception as exc:
            log.exception("the %s page could not be built", spec.title)
            if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
                error = f"{module_name} is not available in this build."
            else:
                lines = traceback.format_exception_only(type(exc), exc)
                error = f"{spec.target}: {''.join(lines).strip()}"
            self.page_errors[spec.name] = error
            return PagePlaceholder(spec, error)
        return page

    def _connect_page(self, page: QWidget) -> None:
        if hasattr(page, "sig_bundle_selected"):
            page.sig_bundle_selected.connect(self.select_bundle)
        if hasattr(page, "set_bundle"):
            self.sig_bundle_changed.connect(page.set_bundle)
            if self.bundle:
                page.set_bundle(self.bundle)
        if hasattr(page, "sig_new_job_requested"):
            page.sig_new_job_requested.connect(self._on_page_new_job_requested)
        for name in ("sig_job_finished", "sig_export_finished"):
            if hasattr(page, name):
                getattr(page, name).connect(self._on_page_job_finished)
        if hasattr(page, "sig_job_recorded"):
            page.sig_job_recorded.connect(self._on_page_job_recorded)

    @Slot(str, dict)
    def _on_page_new_job_requested(self, kind: str, values: dict) -> None:
        jobs = self.show_page("jobs")
        if hasattr(jobs, "new_job"):
            jobs.new_job(kind, values)

    def _on_page_job_recorded(self, record: object) -> None:
        jobs = self.pages.get("jobs")
        if jobs is not None and hasattr(jobs, "adopt_record"):
            jobs.adopt_record(record)

    def _on_page_job_finished(self, *_args: object) -> None:
        models = self.pages.get("models")
        if models is not None and hasattr(models, "refresh"):
            models.refresh()

    # -- window -------------------------------------------------------------------------------

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_images = QAction("&Open images…", self)
        open_images.setShortcut(QKeySequence.StandardKey.Open)
        open_images.triggered.connect(self._on_open_images_triggered)
        file_menu.addAction(open_images)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        go_menu = self.menuBar().addMenu("&Go")
        for index, spec in enumerate(self.page_specs):
            action = QAction(spec.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _=False, n=spec.name: self.show_page(n))
            go_menu.addAction(action)
        about = QAction("&About Deepfake Studio", self)
        about.triggered.connect(self._on_about_triggered)
        self.menuBar().addMenu("&Help").addAction(about)

    @Slot()
    def _on_open_images_triggered(self) -> None:
        """File > Open images… (Ctrl+O): the Check page's own file dialog."""
        page = self.show_page("check")
        if page is not None and hasattr(page, "open_images_button"):
            page.open_images_button.click()

    @Slot()
    def _on_about_triggered(self) -> None:
        QMessageBox.about(self, "About Deepfake Studio", self.about_text())

    def about_text(self) -> str:
        """The About box: what the app does, its version, where its files are, its shortcuts."""
        keys = "".join(
            f"<tr><td>Ctrl+{i + 1}</td><td>{spec.title}</td></tr>"
            for i, spec in enumerate(self.page_specs)
        )
        return (
            f"<b>Deepfake Studio {app_version()}</b><br>Tell real photos from AI-generated and "
            "edited images (Real, Fake with the generator it most resembles, or Unknown when "
            "the model cannot tell); train, shrink and ship the detectors.<br><br>"
            f"Workspace: {self.workspace.root}<br>Model: {self.bundle_label.text()}<br><br>"
            "<b>Keys</b><table><tr><td>Ctrl+O</td><td>Open images to check</td></tr>"
            f"{keys}<tr><td>Ctrl+Q</td><td>Quit</td></tr></table><br>"
            "Command line: <code>deepfake-studio --help</code>; health check: "
            "<code>deepfake-studio selftest</code>."
        )

    def _update_bundle_label(self) -> None:
        from core.bundle import default_bundle_path

        if self.bundle:
            name, tip = Path(self.bundle).name, self.bundle
        elif (default_bundle_path() / "bundle.json").is_file():
            name, tip = "default (built in)", str(default_bundle_path())
        else:
            name, tip = "none", "No model bundle: export one from the Export page"
        self.bundle_label.setText(f"Model: {name}")
        self.bundle_label.setToolTip(tip)

    def _settings_path(self) -> Path:
        return self.workspace.root / SETTINGS_FILE

    def _restore_bundle(self) -> None:
        try:
            settings = json.loads(self._settings_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            settings = {}
        bundle = settings.get("bundle") if isinstance(settings, dict) else None
        self.bundle = bundle if bundle and Path(bundle).exists() else None
        self._update_bundle_label()

    def _save_settings(self) -> None:
        try:
            self.workspace.root.mkdir(parents=True, exist_ok=True)
            self._settings_path().write_text(json.dumps({"bundle": self.bundle}), "utf-8")
        except OSError as exc:
            log.warning("could not save %s: %s", self._settings_path(), exc)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.page_specs[self.stack.currentIndex()].name not in self.pages:
            self._build_after_paint = True
            QTimer.singleShot(FIRST_PAGE_FALLBACK_MS, self._build_current_page)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._build_after_paint:
            self._build_after_paint = False
            QTimer.singleShot(0, self._build_current_page)

    @Slot()
    def _build_current_page(self) -> None:
        if not self._closed:  # a timer from showEvent may fire after the window closed
            self._ensure_page(self.stack.currentIndex())

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        SHARED.reset()  # a job waiting for its turn must not start while the pages stop theirs
        for page in self.pages.values():
            if hasattr(page, "shutdown"):
                page.shutdown()
            page.close()
        super().closeEvent(event)


def app_version() -> str:
    """This app's installed version (``unknown`` in a build without package metadata)."""
    from importlib import metadata

    try:
        return metadata.version("deepfake-studio")
    except metadata.PackageNotFoundError:
        return "unknown"
