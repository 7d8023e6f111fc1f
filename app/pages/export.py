"""The Export page: a four-step wizard from a training run to verified mobile bundles.

1. **Run**: the workspace's runs that can be exported (``model.json`` + ``best.safetensors``);
2. **Options**: FP32 and/or INT8, target device, the error rate the rejection threshold aims at,
   where to save, folder or zip;
3. **Export**: the ``export`` job(s) run in a child process through :class:`app.jobs.JobRunner`
   (the GUI never imports torch), after the job the Jobs page is running, if any
   (:mod:`app.compute_slot`): progress, log, cancel; each job is recorded in the Jobs page's
   history (``sig_job_recorded``);
4. **Summary**: read back from each bundle's ``verification.json`` and ``bundle.json``: parity,
   accuracy per variant, size, latency, checks, and the threshold in words; "Open folder" and
   "Use for checking" (``sig_bundle_selected``, which the main window turns into the active
   bundle).

Invalid choices are explained on the step that caused them. The logic lives in
:mod:`app.pages.export_plan`; this module is only widgets.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import style
from app.compute_slot import SHARED, ComputeSlot
from app.job_queue import JobRecord, append_to_history
from app.jobs import JobRunner
from app.pages.export_plan import (
    TARGETS,
    ExportChoices,
    ExportedBundle,
    check_choices,
    check_run,
    exportable_runs,
    job_configs,
    overall_progress,
    read_exported,
    replaced_bundles,
)
from app.pages.export_summary import ExportSummary, card
from app.widgets import formatting
from app.widgets.background import run_in_background
from app.widgets.page_header import PageHeader
from app.widgets.scroll import vertical_scroll
from core.events import Event
from core.runs import RunInfo
from core.workspace import Workspace

log = logging.getLogger(__name__)

STEPS = ("Choose a run", "Options", "Export", "Summary")
RUN, OPTIONS, RUNNING, SUMMARY = range(4)
LOG_LINES = 3000
PROGRESS_STEPS = 1000

PAGE_STYLE = f"""
QLabel#step {{ color: {style.MUTED}; padding: 5px 12px; border-radius: 13px; }}
QLabel#step[state="current"] {{ background: {style.ACCENT}; color: white; font-weight: 600; }}
QLabel#step[state="done"] {{ color: #15803d; font-weight: 600; }}
QLabel#stepArrow {{ color: #cbd5e1; }}
QFrame#card {{ background: {style.SURFACE}; border: 1px solid {style.BORDER}; border-radius: 8px; }}
QLabel#cardTitle {{ font-size: 11.5pt; font-weight: 600; }}
QLabel#headline {{ font-size: 13pt; font-weight: 700; }}
QLabel#note {{ background: #fffbeb; color: #92400e; border-radius: 6px; padding: 6px 10px; }}
QLabel#explain {{ background: #eff6ff; color: #1e3a8a; border-radius: 6px; padding: 8px 10px; }}
QTableWidget {{ background: {style.SURFACE}; border: 1px solid {style.BORDER}; border-radius: 6px; }}
"""


def _restyle(widget: QWidget, name: str, value: str) -> None:
    widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def _percent_spin(
    bounds: tuple[float, float], step: float, suffix: str, value: float
) -> QDoubleSpinBox:
    """A one-decimal percentage field."""
    spin = QDoubleSpinBox()
    spin.setRange(*bounds)
    spin.setDecimals(1)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setValue(value)
    return spin


def _field_error() -> QLabel:
    label = QLabel()
    label.setObjectName("fieldError")
    label.setWordWrap(True)
    label.hide()
    return label


def _show_error(label: QLabel, message: str | None) -> None:
    label.setText(message or "")
    label.setVisible(bool(message))


class ReflowColumns(QWidget):
    """Side-by-side columns that stack when the widget is narrower than :attr:`NARROW`."""

    NARROW = 880

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)

    def minimumSizeHint(self) -> QSize:
        """As narrow as the widest column: stacked is always possible, so never force width."""
        hint = super().minimumSizeHint()
        items = (self.columns.itemAt(i) for i in range(self.columns.count()))
        widest = max((item.minimumSize().width() for item in items), default=0)
        margins = self.columns.contentsMargins()
        return QSize(widest + margins.left() + margins.right(), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        narrow = event.size().width() < self.NARROW
        direction = QBoxLayout.Direction.TopToBottom if narrow else QBoxLayout.Direction.LeftToRight
        if self.columns.direction() != direction:
            self.columns.setDirection(direction)


class ExportPage(QWidget):
    """The export wizard; see the module docstring.

    Args:
        workspace: where runs are listed from, job files and (by default) bundles go.
        parent: Qt parent.
        program: job program override for :class:`JobRunner` (tests use a scripted fake).
        grace_ms: how long a cancelled job may take to stop before it is terminated.
        slot: whom to take turns with (default: the app's :data:`app.compute_slot.SHARED`).
    """

    sig_bundle_selected = Signal(str)
    """A bundle the user wants the Check page to use."""
    sig_export_finished = Signal(str, dict)
    """``(status, details)``: ``done`` (with ``bundles``), ``cancelled`` or ``failed``."""
    sig_runs_loaded = Signal(int)
    sig_job_recorded = Signal(object)
    """The :class:`app.job_queue.JobRecord` of an export job, written to the workspace's job
    history when it starts and when it ends (the main window hands it to the Jobs page)."""

    def __init__(
        self,
        workspace: Workspace,
        parent: QWidget | None = None,
        *,
        program: Sequence[str] | None = None,
        grace_ms: int = 5000,
        slot: ComputeSlot | None = None,
    ) -> None:
        super().__init__(parent)
        self.slot = slot if slot is not None else SHARED
        self.setObjectName("page")
        self.setStyleSheet(PAGE_STYLE)
        self.workspace = workspace
        self.runs: list[RunInfo] = []
        self.extra_run: Path | None = None
        self.choices: ExportChoices | None = None
        self.exported: list[ExportedBundle] = []
        self._configs: list[dict[str, Any]] = []
        self._job_index = 0
        self._finished_jobs: list[dict[str, Any]] = []
        self._started = 0.0
        self._auto_name = ""
        self.job_record: JobRecord | None = None
        """The export job that runs now or ran last."""
        self.runner = JobRunner(program, grace_ms=grace_ms, parent=self)
        self.runner.sig_event_received.connect(self._on_runner_event_received)
        self.runner.sig_stderr_received.connect(self._on_runner_stderr_received)
        self.runner.sig_job_finished.connect(self._on_runner_job_finished)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        layout.setSpacing(10)
        layout.addWidget(
            PageHeader(
                "Export for mobile",
                "Turn a trained run into a verified model bundle for the Android app or this "
                "checker: ONNX FP32 and/or INT8, a calibrated “Unknown” threshold, golden vectors.",
            )
        )
        layout.addLayout(self._build_steps())
        self.stack = QStackedWidget()  # one scroll area per step: short windows scroll it
        self.summary = ExportSummary()
        steps = (
            self._build_run_step(),
            self._build_options_step(),
            self._build_running_step(),
            self.summary,
        )
        for index, step in enumerate(steps):
            self.stack.addWidget(vertical_scroll(step, f"step_{index}"))
        layout.addWidget(self.stack, 1)
        layout.addLayout(self._build_nav())
        self.go_to(RUN)
        self.refresh_runs()

    # -- building -------------------------------------------------------------------------------

    def _build_steps(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(4)
        self.step_labels: list[QLabel] = []
        for index, title in enumerate(STEPS):
            if index:
                arrow = QLabel("›")
                arrow.setObjectName("stepArrow")
                row.addWidget(arrow)
            label = QLabel(f"{index + 1}  {title}")
            label.setObjectName("step")
            self.step_labels.append(label)
            row.addWidget(label)
        row.addStretch(1)
        return row

    def _build_run_step(self) -> QWidget:
        frame, layout = card("Which run should be exported?")
        hint = QLabel(
            "Finished training, pruning or distillation runs of this workspace that have a "
            "model description and best weights. Newest first."
        )
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.run_tree = QTreeWidget()
        self.run_tree.setHeaderLabels(
            ["Run", "Kind", "Architecture", "Accuracy", "Size", "Created"]
        )
        self.run_tree.setRootIsDecorated(False)
        self.run_tree.setAlternatingRowColors(True)
        self.run_tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.run_tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.run_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.run_tree.itemSelectionChanged.connect(lambda: _show_error(self.run_error, None))
        self.run_tree.itemDoubleClicked.connect(lambda *_: self.next_step())
        layout.addWidget(self.run_tree, 1)
        self.runs_empty = QLabel(
            "No exportable runs yet. Fine-tune a model on the Jobs page first, or use "
            "Browse… to pick a run folder from elsewhere."
        )
        self.runs_empty.setObjectName("muted")
        self.runs_empty.setWordWrap(True)
        self.runs_empty.hide()
        layout.addWidget(self.runs_empty)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.browse_run_button = QPushButton("Browse…")
        self.browse_run_button.clicked.connect(self._on_browse_run_clicked)
        row.addWidget(self.refresh_button)
        row.addWidget(self.browse_run_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.run_error = _field_error()
        layout.addWidget(self.run_error)
        return frame

    def _build_options_step(self) -> QWidget:
        page = ReflowColumns()
        outer = page.columns
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(12)
        left = QVBoxLayout()
        left.setSpacing(12)

        frame, layout = card("Precision")
        self.fp32_check = QCheckBox("FP32: exact copy of the trained network (the reference)")
        self.int8_check = QCheckBox("INT8: about 4× smaller and faster on phones")
        self.int8_check.setToolTip(
            "Static INT8 quantisation (QDQ), calibrated on training images. The export is "
            "refused if INT8 loses more than 2 accuracy points against FP32."
        )
        for box in (self.fp32_check, self.int8_check):
            box.setChecked(True)
            box.toggled.connect(lambda _=False: _show_error(self.precision_error, None))
            layout.addWidget(box)
        precision_hint = QLabel(
            "Both are verified against the trained network; INT8 is refused if it loses more "
            "than 2 accuracy points. Choosing both writes two bundles."
        )
        precision_hint.setObjectName("muted")
        precision_hint.setWordWrap(True)
        layout.addWidget(precision_hint)
        self.precision_error = _field_error()
        layout.addWidget(self.precision_error)
        weights_row = QHBoxLayout()
        weights_row.addWidget(QLabel("Weights"))
        self.weights_combo = QComboBox()
        self.weights_combo.addItem("best validation epoch", "best")
        self.weights_combo.addItem("last epoch", "last")
        self.weights_combo.setToolTip(
            "Which of the run's weights to ship. The last epoch is the safer choice when the "
            "best validation accuracy came early by calling nearly everything the majority "
            "class (real)."
        )
        weights_row.addWidget(self.weights_combo, 1)
        layout.addLayout(weights_row)
        self.flip_check = QCheckBox("Mirror averaging: judge each image and its mirror image")
        self.flip_check.setToolTip(
            "Test-time augmentation inside the model: the verdict averages the image and its "
            "left-right mirror. Same size, twice the compute; it is verified like the rest."
        )
        layout.addWidget(self.flip_check)
        left.addWidget(frame)

        frame, layout = card("Target and threshold")
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.target_combo = QComboBox()
        for key, title in TARGETS.items():
            self.target_combo.addItem(title, key)
        self.target_combo.currentIndexChanged.connect(self._on_target_changed)
        form.addRow("Target", self.target_combo)
        self.target_hint = QLabel()
        self.target_hint.setObjectName("muted")
        self.target_hint.setWordWrap(True)
        form.addRow("", self.target_hint)
        self.risk_spin = _percent_spin((0.5, 40.0), 0.5, " % errors at most", 5.0)
        self.risk_spin.valueChanged.connect(self._update_risk_words)
        form.addRow("Target risk", self.risk_spin)
        layout.addLayout(form)
        self.risk_words = QLabel()
        self.risk_words.setObjectName("explain")
        self.risk_words.setWordWrap(True)
        layout.addWidget(self.risk_words)
        floor_row = QHBoxLayout()
        self.floor_check = QCheckBox("Also answer “Unknown” for unfamiliar images")
        self.floor_check.setToolTip(
            "An energy floor: images less familiar to the model than most validation images "
            "(an unseen generator, another kind of picture) get “Unknown”, however confident. "
            "Best for runs trained with outlier exposure (energy loss)."
        )
        self.floor_spin = _percent_spin((50.0, 99.9), 1.0, " % of validation images kept", 80.0)
        self.floor_spin.setEnabled(False)
        self.floor_check.toggled.connect(self.floor_spin.setEnabled)
        self.floor_check.toggled.connect(self._update_risk_words)
        self.floor_spin.valueChanged.connect(self._update_risk_words)
        floor_row.addWidget(self.floor_check)
        floor_row.addWidget(self.floor_spin)
        layout.addLayout(floor_row)
        self.risk_error = _field_error()
        layout.addWidget(self.risk_error)
        left.addWidget(frame)
        left.addStretch(1)

        right = QVBoxLayout()
        frame, layout = card("Where to save")
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        folder_row = QHBoxLayout()
        self.folder_edit = QLineEdit(str(self.workspace.bundles))
        self.folder_edit.textChanged.connect(self._on_output_edited)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_folder_clicked)
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        self.folder_error = _field_error()
        form.addRow("", self.folder_error)
        self.name_edit = QLineEdit()
        self.name_edit.textChanged.connect(self._on_output_edited)
        form.addRow("Bundle name", self.name_edit)
        self.name_error = _field_error()
        form.addRow("", self.name_error)
        layout.addLayout(form)
        self.zip_radio = QRadioButton("A .zip file next to the folder (copy it to the phone)")
        self.folder_radio = QRadioButton("A folder only")
        self.zip_group = QButtonGroup(self)
        for button in (self.zip_radio, self.folder_radio):
            self.zip_group.addButton(button)
            layout.addWidget(button)
        self.zip_radio.setChecked(True)
        self.output_preview = QLabel()
        self.output_preview.setObjectName("muted")
        self.output_preview.setWordWrap(True)
        self.output_preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.output_preview)
        self.replace_note = QLabel()
        self.replace_note.setObjectName("note")
        self.replace_note.setWordWrap(True)
        self.replace_note.hide()
        layout.addWidget(self.replace_note)
        right.addWidget(frame)
        right.addStretch(1)
        outer.addLayout(left, 1)
        outer.addLayout(right, 1)
        self._update_risk_words()
        self._on_target_changed()
        return page

    def _build_running_step(self) -> QWidget:
        frame, layout = card("Exporting")
        self.running_title = QLabel()
        self.running_title.setWordWrap(True)
        layout.addWidget(self.running_title)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        layout.addWidget(self.progress)
        self.phase_label = QLabel()
        self.phase_label.setObjectName("muted")
        layout.addWidget(self.phase_label)
        self.run_message = QLabel()
        self.run_message.setWordWrap(True)
        self.run_message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_message.hide()
        layout.addWidget(self.run_message)
        self.log = QPlainTextEdit()
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        layout.addWidget(self.log, 1)
        return frame

    def _build_nav(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.back_button = QPushButton("‹ Back")
        self.back_button.clicked.connect(self.previous_step)
        self.cancel_button = QPushButton("Cancel export")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._on_open_folder_clicked)
        self.another_button = QPushButton("Export another")
        self.another_button.clicked.connect(lambda: self.go_to(RUN))
        self.use_button = QPushButton("Use for checking")
        self.use_button.setObjectName("primary")
        self.use_button.setToolTip("Make this bundle the Check page's model")
        self.use_button.clicked.connect(self._on_use_clicked)
        self.next_button = QPushButton("Next ›")
        self.next_button.setObjectName("primary")
        self.next_button.clicked.connect(self.next_step)
        row.addWidget(self.back_button)
        row.addWidget(self.another_button)
        row.addStretch(1)
        for button in (self.cancel_button, self.open_button, self.use_button, self.next_button):
            row.addWidget(button)
        return row

    # -- navigation -----------------------------------------------------------------------------

    def current_step(self) -> int:
        return self.stack.currentIndex()

    def go_to(self, step: int) -> None:
        self.stack.setCurrentIndex(step)
        for index, label in enumerate(self.step_labels):
            state = "current" if index == step else ("done" if index < step else "todo")
            _restyle(label, "state", state)
            title = STEPS[index]
            label.setText(f"✓  {title}" if state == "done" else f"{index + 1}  {title}")
        running = self.is_running()
        self.back_button.setVisible(step in (OPTIONS, RUNNING))
        self.back_button.setEnabled(not running)
        self.next_button.setVisible(step in (RUN, OPTIONS))
        self.next_button.setText("Export" if step == OPTIONS else "Next ›")
        self.cancel_button.setVisible(step == RUNNING)
        self.cancel_button.setEnabled(running)
        for button in (self.open_button, self.use_button, self.another_button):
            button.setVisible(step == SUMMARY)

    @Slot()
    def next_step(self) -> None:
        """Validate the current step; move on (or start the export) when it is fine."""
        step = self.current_step()
        if step == RUN:
            problem = check_run(self.selected_run())
            _show_error(self.run_error, problem)
            if problem is None:
                self._prefill_options()
                self.go_to(OPTIONS)
        elif step == OPTIONS:
            choices = self.read_choices()
            errors = check_choices(choices)
            _show_error(self.precision_error, errors.get("precision"))
            _show_error(self.risk_error, errors.get("risk"))
            _show_error(self.folder_error, errors.get("folder"))
            _show_error(self.name_error, errors.get("name"))
            if not errors:
                self.start_export(choices)

    @Slot()
    def previous_step(self) -> None:
        if not self.is_running() and self.current_step() > RUN:
            self.go_to(self.current_step() - 1)

    # -- step 1 ---------------------------------------------------------------------------------

    @Slot()
    def refresh_runs(self) -> None:
        """Re-list the workspace's exportable runs (scanned on a worker thread)."""
        self.refresh_button.setEnabled(False)
        run_in_background(
            exportable_runs,
            self.workspace.runs,
            on_done=self._on_runs_loaded,
            on_error=lambda message: _show_error(self.run_error, message),
        )

    def _on_runs_loaded(self, runs: list[RunInfo]) -> None:
        self.refresh_button.setEnabled(True)
        selected = self.selected_run()
        self.runs = list(runs)
        self.run_tree.clear()
        for run in self.runs:
            self._add_run_item(run)
        if self.extra_run is not None:
            self._add_run_item(None, self.extra_run)
        self.runs_empty.setVisible(not self.runs and self.extra_run is None)
        if selected is not None:
            self.select_run(selected)
        self.sig_runs_loaded.emit(len(self.runs))

    def _add_run_item(self, run: RunInfo | None, path: Path | None = None) -> QTreeWidgetItem:
        if run is not None:
            cells = [
                run.name,
                run.kind,
                run.arch or "",
                formatting.fraction(run.accuracy),
                formatting.size(run.file_bytes),
                run.created[:16].replace("T", " "),
            ]
            path = run.path
        else:
            cells = [Path(path).name, "folder", "", "", "", ""]
        item = QTreeWidgetItem(cells)
        item.setData(0, Qt.ItemDataRole.UserRole, str(path))
        item.setToolTip(0, str(path))
        self.run_tree.addTopLevelItem(item)
        return item

    def selected_run(self) -> Path | None:
        items = self.run_tree.selectedItems()
        return Path(items[0].data(0, Qt.ItemDataRole.UserRole)) if items else None

    def select_run(self, path: str | Path) -> bool:
        """Select the run at ``path`` in the list; returns whether it is listed."""
        target = str(Path(path))
        for index in range(self.run_tree.topLevelItemCount()):
            item = self.run_tree.topLevelItem(index)
            if item.data(0, Qt.ItemDataRole.UserRole) == target:
                self.run_tree.setCurrentItem(item)
                return True
        return False

    @Slot()
    def _on_browse_run_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose a run folder", str(self.workspace.runs)
        )
        if folder:
            self.use_run_folder(folder)

    def use_run_folder(self, folder: str | Path) -> None:
        """Add a run folder from outside the workspace to the list and select it."""
        self.extra_run = Path(folder)
        if not self.select_run(folder):
            self._add_run_item(None, self.extra_run)
            self.select_run(folder)
        self.runs_empty.hide()

    # -- step 2 ---------------------------------------------------------------------------------

    def _prefill_options(self) -> None:
        """Name the bundle after the run, unless the user typed a name of their own."""
        run = self.selected_run()
        name = self.name_edit.text().strip()
        if run is not None and (not name or name == self._auto_name):
            self.name_edit.setText(run.name)
            self._auto_name = run.name
        self._on_output_edited()

    def read_choices(self) -> ExportChoices:
        """The options step's fields as :class:`ExportChoices`."""
        return ExportChoices(
            run=self.selected_run(),
            fp32=self.fp32_check.isChecked(),
            int8=self.int8_check.isChecked(),
            flip_average=self.flip_check.isChecked(),
            weights=str(self.weights_combo.currentData()),
            target=str(self.target_combo.currentData()),
            target_risk=round(self.risk_spin.value() / 100.0, 4),
            energy_floor=(
                round(self.floor_spin.value() / 100.0, 4) if self.floor_check.isChecked() else None
            ),
            folder=Path(self.folder_edit.text().strip()).expanduser(),
            name=self.name_edit.text().strip(),
            zip=self.zip_radio.isChecked(),
        )

    @Slot()
    def _on_target_changed(self) -> None:
        if self.target_combo.currentData() == "android":
            self.target_hint.setText(
                "Phones: INT8 is the usual choice. Copy the .zip to the phone and load it in "
                "the Deepfake Studio app, which re-checks the golden vectors when it loads it."
            )
        else:
            self.target_hint.setText(
                "Desktop: FP32 gives exactly the trained network's answers; INT8 is faster on "
                "slow CPUs. Use the bundle on the Check page or with `deepfake-studio check`."
            )

    @Slot()
    def _update_risk_words(self) -> None:
        risk = self.risk_spin.value()
        self.risk_words.setText(
            f"The bundle will answer “Unknown” instead of guessing whenever its calibrated "
            f"confidence is below a threshold, chosen on the run's validation images so that "
            f"at most {risk:g}% of the images it does answer are wrong. A lower target means "
            "fewer mistakes and more “Unknown” answers."
            + (
                f" Images less familiar to the model than {self.floor_spin.value():g}% of the "
                "validation images are “Unknown” too, however confident it is."
                if self.floor_check.isChecked()
                else ""
            )
        )

    @Slot()
    def _on_output_edited(self) -> None:
        _show_error(self.folder_error, None)
        _show_error(self.name_error, None)
        choices = self.read_choices()
        if choices.name:
            paths = [str(choices.bundle_path(p)) for p in ("fp32", "int8")]
            self.output_preview.setText("Bundles: " + " and/or ".join(paths))
        replaced = replaced_bundles(choices) if choices.name else []
        self.replace_note.setText(
            f"Replaces the existing {'bundle' if len(replaced) == 1 else 'bundles'} "
            + ", ".join(p.name for p in replaced)
            + " once the new export has passed verification."
        )
        self.replace_note.setVisible(bool(replaced))

    @Slot()
    def _on_browse_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save bundles in", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    # -- step 3 ---------------------------------------------------------------------------------

    def start_export(self, choices: ExportChoices) -> None:
        """Write the job file(s) and start the first export job."""
        self.choices = choices
        self._configs = job_configs(choices)
        self._job_index = 0
        self._finished_jobs = []
        self.exported = []
        self.summary.show_bundles([])
        self.log.clear()
        self.run_message.hide()
        self.progress.setValue(0)
        self._started = time.monotonic()
        self.go_to(RUNNING)
        self._start_job()

    def _start_job(self) -> None:
        config = self._configs[self._job_index]
        precision = "int8" if config["int8"] else "fp32"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        job_id = f"export-{stamp}-{precision}"
        job_file = self.workspace.jobs / f"{job_id}.json"
        job_file.write_text(json.dumps({**config, "job": job_id}, indent=2), encoding="utf-8")
        count = len(self._configs)
        step = f" (job {self._job_index + 1} of {count})" if count > 1 else ""
        self.running_title.setText(
            f"Exporting <b>{Path(config['run']).name}</b> as {precision.upper()}{step} to "
            f"{config['out']}"
        )
        self._append_log(f"— {precision.upper()} export: {job_file}")
        running = self.slot.running
        if not self.slot.request(self, lambda: self._launch(job_file, job_id), "the export"):
            self.phase_label.setText(
                f"Waiting for {running} to finish: two jobs at once would slow each other "
                "down many times over…"
            )
            self._append_log(f"waiting for {running} to finish")
            self.go_to(RUNNING)

    def _launch(self, job_file: Path, job_id: str) -> None:
        """Our turn on the compute slot: start the export process."""
        self.phase_label.setText("Starting the export process…")
        config = {**self._configs[self._job_index], "job": job_id}
        self.job_record = JobRecord(
            id=job_id,
            kind="export",
            config=config,
            status="running",
            started=time.time(),
            runner_pid=os.getpid(),
        )
        self._record_job()
        self.runner.start(job_file, job_id)
        self.go_to(RUNNING)

    def _record_job(self) -> None:
        """Write the export job's state to the job history (a failure costs only the line)."""
        record = self.job_record
        if record is None:
            return
        try:
            append_to_history(self.workspace.jobs, record)
        except OSError as exc:
            log.warning("could not record export job %s in the job history: %s", record.id, exc)
        self.sig_job_recorded.emit(record)

    def is_running(self) -> bool:
        """An export runs or waits for its turn."""
        return self.runner.is_running() or self.slot.is_waiting(self)

    @Slot()
    def cancel(self) -> None:
        """Stop the running export (no bundle is written); later jobs are dropped."""
        if self.slot.is_waiting(self):
            self.slot.release(self)
            message = "Export cancelled before it started; no bundle was written."
            self._stop_with(message, style.WARNING)
            self.sig_export_finished.emit("cancelled", {"message": message})
            return
        if self.runner.is_running():
            self.phase_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            self._configs = self._configs[: self._job_index + 1]
            self.runner.cancel()

    @Slot(object)
    def _on_runner_event_received(self, event: Event) -> None:
        data = event.data
        if event.type == "progress":
            config = self._configs[self._job_index]
            phase = str(data.get("phase") or "export")
            done, total = float(data.get("done") or 0), float(data.get("total") or 0)
            value = overall_progress(
                self._job_index, len(self._configs), bool(config["int8"]), phase, done, total
            )
            self.progress.setValue(round(value * PROGRESS_STEPS))
            counts = f" {int(done)}/{int(total)}" if total > 1 else ""
            elapsed = formatting.duration(time.monotonic() - self._started)
            self.phase_label.setText(f"{phase.capitalize()}{counts} · {elapsed} elapsed")
        elif event.type == "log":
            self._append_log(str(data.get("message", "")))
        elif event.type == "artifact":
            self._append_log(f"wrote {data.get('kind')}: {data.get('path')}")
        elif event.type == "error":
            self._append_log(f"error: {data.get('message', '')}")

    @Slot(str)
    def _on_runner_stderr_received(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            if line.strip():
                self._append_log(line)

    def _append_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    @Slot(str, dict)
    def _on_runner_job_finished(self, status: str, summary: dict) -> None:
        if self.job_record is not None and self.job_record.status == "running":
            self.job_record.status = status
            self.job_record.summary = dict(summary)
            self.job_record.finished = time.time()
            self._record_job()
        if status == "done":
            self._finished_jobs.append(summary)
            self._job_index += 1
            if self._job_index < len(self._configs):
                self._start_job()  # still our turn: the next variant starts at once
                return
        self.slot.release(self)
        if status == "done":
            self.progress.setValue(PROGRESS_STEPS)
            self.phase_label.setText("Verified. Reading the reports…")
            targets = [(job.get("bundle"), job.get("zip")) for job in self._finished_jobs]
            run_in_background(
                lambda: [read_exported(path, zipped) for path, zipped in targets],
                on_done=self._on_reports_loaded,
                on_error=lambda message: self._fail(message),
            )
            return
        if status == "cancelled":
            message = "Export cancelled; no bundle was written for the cancelled job."
            if self._finished_jobs:
                done = ", ".join(str(job.get("bundle")) for job in self._finished_jobs)
                message += f" Finished before it: {done}."
            self._stop_with(message, style.WARNING)
            self.sig_export_finished.emit("cancelled", {"message": message})
            return
        self._fail(str(summary.get("message") or "the export failed"), summary.get("stderr_tail"))

    def _fail(self, message: str, stderr_tail: str | None = None) -> None:
        if stderr_tail:
            self._append_log(stderr_tail)
        head, _, rest = message.partition("\n")
        if rest:
            self._append_log(rest)
        self._stop_with(f"Export failed: {head}", style.ERROR)
        self.sig_export_finished.emit("failed", {"message": message})

    def _stop_with(self, message: str, colour: str) -> None:
        self.run_message.setText(f"<span style='color:{colour}; font-weight:600'>{message}</span>")
        self.run_message.show()
        self.phase_label.setText("Stopped. Go back to change the options and try again.")
        self.go_to(RUNNING)

    # -- step 4 ---------------------------------------------------------------------------------

    def _on_reports_loaded(self, bundles: list[ExportedBundle]) -> None:
        self.exported = list(bundles)
        self.summary.show_bundles(self.exported)
        self.go_to(SUMMARY)
        self.sig_export_finished.emit("done", {"bundles": [str(b.path) for b in bundles]})

    @Slot()
    def _on_open_folder_clicked(self) -> None:
        bundle = self.summary.selected_bundle()
        if bundle is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(bundle)))

    @Slot()
    def _on_use_clicked(self) -> None:
        bundle = self.summary.selected_bundle()
        if bundle is None:
            return
        self.sig_bundle_selected.emit(str(bundle))
        window = self.window()
        if hasattr(window, "show_page"):  # the main window: go where the bundle is used
            window.show_page("check")

    # -- lifetime -------------------------------------------------------------------------------

    def showEvent(self, event) -> None:
        """New runs may have finished since the list was made: re-list them on the run step."""
        super().showEvent(event)
        if self.current_step() == RUN and self.refresh_button.isEnabled():
            self.refresh_runs()

    def shutdown(self) -> None:
        """Stop a running export now (the window is closing)."""
        self.slot.release(self)
        self.runner.shutdown()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
