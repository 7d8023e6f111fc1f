"""The Jobs page: start jobs from forms, watch the queue, follow the running job live.

The page is a view of a :class:`app.job_queue.JobQueue`: it subscribes to the queue's signals and
never runs work itself. Live curves are :class:`app.widgets.live_plot.LivePlot` (buffered,
redrawn on a timer); the progress line shows epoch, images/s and ETA; the log pane shows the
job's log events and, for a failed job, the tail of its stderr.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.job_queue import JobQueue, JobRecord
from app.pages.job_forms import JOB_KINDS, JobForm
from app.style import STATUSES, status_icon
from app.widgets import formatting
from app.widgets.live_plot import LivePlot, Series
from app.widgets.scroll import vertical_scroll
from core.events import Event
from core.runs import pruning_x, read_metrics, x_axis
from core.workspace import ENV_VAR as WORKSPACE_ENV
from core.workspace import Workspace

PLOTS: tuple[tuple[str, str, tuple[Series, ...]], ...] = (
    ("loss", "Loss", (Series("train_loss", "train"), Series("val_loss", "val", dashed=True))),
    (
        "accuracy",
        "Accuracy",
        (Series("train_acc", "train"), Series("val_acc", "val", dashed=True)),
    ),
    ("lr", "Learning rate", (Series("lr", "lr", colour="#7c3aed"),)),
)
"""``(plot key, title, curves)``; a metric event's keys are routed to the curve of that name."""

LOG_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "val_macro_f1", "lr")
"""Metrics written to the log pane per epoch (the curves and metrics.csv have all of them)."""
EPOCH_KINDS = ("finetune", "distill")
"""Job kinds whose ``epochs`` is the whole job (progress and ETA span all epochs)."""
PROGRESS_STEPS = 1000
LOG_LINES = 5000
HISTORY_MIN_ROWS = 4
"""The queue/history list always shows at least this many rows (the splitter keeps them)."""


class JobsPage(QWidget):
    """Forms for every job kind, the queue/history list and the live view of one job.

    Args:
        workspace: where job configs, history and runs go.
        program: job program override for :class:`app.jobs.JobRunner` (tests).
        parent: Qt parent.
    """

    sig_job_finished = Signal(object)
    """A :class:`JobRecord` that just ended (the Models page refreshes on it)."""

    def __init__(
        self,
        workspace: Workspace,
        parent: QWidget | None = None,
        *,
        program: Sequence[str] | None = None,
        grace_ms: int = 5000,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("page")
        self.workspace = workspace
        self.queue = JobQueue(
            workspace.jobs,
            program=program,
            grace_ms=grace_ms,
            env={WORKSPACE_ENV: str(workspace.root)},  # jobs use this window's workspace
            parent=self,
        )
        self.shown_job: str | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self._metric_points = 0
        self._epoch_s: float | None = None
        self._loaded_x: set[float] = set()
        self._loaded_rows = 0
        self._reached = ""
        """Where the shown job got to ("epoch 2/3"), for its final state."""

        from app.widgets.page_header import PageHeader

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 12)
        layout.addWidget(
            PageHeader(
                "Jobs",
                "Fine-tune, prune, distill and export models. Jobs run one after another in "
                "their own process; the app stays responsive and can cancel or resume them.",
            )
        )
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_left())
        splitter.addWidget(self._build_right())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([460, 800])
        layout.addWidget(splitter, 1)

        self.queue.sig_job_added.connect(self._on_queue_job_added)
        self.queue.sig_job_updated.connect(self._on_queue_job_updated)
        self.queue.sig_job_started.connect(self._on_queue_job_started)
        self.queue.sig_event_received.connect(self._on_queue_event_received)
        self.queue.sig_job_finished.connect(self._on_queue_job_finished)
        for record in reversed(self.queue.history()):
            self._on_queue_job_added(record)
        self._update_buttons()

    # -- building -----------------------------------------------------------------------------

    def _build_left(self) -> QSplitter:
        """The New-job form (scrolls) above the queue/history list, split by the user."""
        column = QSplitter(Qt.Orientation.Vertical)
        column.setObjectName("jobsLeft")
        column.setChildrenCollapsible(False)
        column.addWidget(self._build_new_job())
        column.addWidget(self._build_history())
        column.setStretchFactor(0, 3)
        column.setStretchFactor(1, 1)
        column.setSizes([520, 220])
        self.left_splitter = column
        return column

    def _build_new_job(self) -> QGroupBox:
        box = QGroupBox("New job")
        form_layout = QVBoxLayout(box)
        self.kind_combo = QComboBox()
        self.forms = QStackedWidget()
        """One scroll area per job kind, each holding its :class:`JobForm`."""
        self.form_by_kind: dict[str, JobForm] = {}
        for kind, (title, _) in JOB_KINDS.items():
            self.kind_combo.addItem(title, kind)
            form = JobForm(kind, self.workspace)
            form.setObjectName(f"form_{kind}")
            self.form_by_kind[kind] = form
            self.forms.addWidget(vertical_scroll(form))
        self.kind_combo.currentIndexChanged.connect(self.forms.setCurrentIndex)
        kind_row = QHBoxLayout()
        kind_row.addWidget(QLabel("Job"))
        kind_row.addWidget(self.kind_combo, 1)
        form_layout.addLayout(kind_row)
        form_layout.addWidget(self.forms, 1)
        self.start_button = QPushButton("Start job")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self._on_start_clicked)
        start_row = QHBoxLayout()
        start_row.addStretch(1)
        start_row.addWidget(self.start_button)
        form_layout.addLayout(start_row)
        return box

    def _build_history(self) -> QGroupBox:
        history = QGroupBox("Queue and history")
        history_layout = QVBoxLayout(history)
        self.job_list = QTreeWidget()
        self.job_list.setHeaderLabels(["Status", "Job", "Started", "Took"])
        self.job_list.setRootIsDecorated(False)
        self.job_list.setAlternatingRowColors(True)
        self.job_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a run's suffix shows
        header = self.job_list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # the job's name
        for column, width in ((0, 95), (2, 105), (3, 50)):
            self.job_list.setColumnWidth(column, width)
        self.job_list.setMinimumHeight(self._history_min_height())
        self.job_list.currentItemChanged.connect(self._on_job_list_current_changed)
        history_layout.addWidget(self.job_list)
        buttons = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._on_open_clicked)
        for button in (self.cancel_button, self.resume_button, self.open_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        history_layout.addLayout(buttons)
        return history

    def _history_min_height(self) -> int:
        """Header, :data:`HISTORY_MIN_ROWS` rows and a horizontal scroll bar."""
        row = self.job_list.fontMetrics().height() + 10
        header = self.job_list.header().sizeHint().height()
        bar = self.job_list.horizontalScrollBar().sizeHint().height()
        return header + HISTORY_MIN_ROWS * row + bar + 4

    def _build_right(self) -> QWidget:
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(6, 0, 0, 0)
        box = QGroupBox("Job")
        self.job_box = box
        inner = QVBoxLayout(box)
        self.job_title = QLabel("No job yet: fill in a form and press Start job.")
        self.job_title.setObjectName("muted")
        inner.addWidget(self.job_title)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        inner.addWidget(self.progress)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("muted")
        inner.addWidget(self.progress_label)
        grid = QGridLayout()
        grid.setSpacing(8)
        self.plots: dict[str, LivePlot] = {}
        for index, (key, title, series) in enumerate(PLOTS):
            plot = LivePlot(title, series, legend_at_bottom=key == "accuracy")
            self.plots[key] = plot
            if key == "lr":
                grid.addWidget(plot, 1, 0, 1, 2)
            else:
                grid.addWidget(plot, 0, index)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        inner.addLayout(grid, 1)
        layout.addWidget(box, 3)
        log_box = QGroupBox("Log")
        log_layout = QVBoxLayout(log_box)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        log_layout.addWidget(self.log_view)
        layout.addWidget(log_box, 1)
        return column

    # -- public API ---------------------------------------------------------------------------

    def new_job(self, kind: str, values: Mapping[str, Any] | None = None) -> JobForm:
        """Show the form of ``kind`` prefilled with ``values`` (e.g. a run to prune)."""
        self.kind_combo.setCurrentIndex(list(JOB_KINDS).index(kind))
        form = self.form_by_kind[kind]
        form.reset_output()
        form.set_values(values or {})
        return form

    def current_form(self) -> JobForm:
        """The form of the job kind chosen in the Job combo box."""
        return self.form_by_kind[self.kind_combo.currentData()]

    def submit(self, config: dict[str, Any]) -> JobRecord:
        """Queue a job config as it is (the form's Start button validates first)."""
        return self.queue.submit(config)

    def adopt_record(self, record: JobRecord) -> None:
        """List a job another page runs and records (an export of the Export page)."""
        self.queue.adopt(record)
        if record.id == self.shown_job:
            self._show_job(record)

    def curve_data(self, key: str) -> tuple[Any, Any]:
        """Buffered ``(x, y)`` of a live curve (``train_loss``, ``val_acc``, ``lr`` ...)."""
        for plot in self.plots.values():
            if key in plot.curves:
                return plot.data(key)
        raise KeyError(key)

    def shutdown(self) -> None:
        """Stop the running job (the app is closing); it can be resumed later."""
        self.queue.shutdown()

    # -- slots: user ------------------------------------------------------------------------

    @Slot()
    def _on_start_clicked(self) -> None:
        form = self.current_form()
        if not form.validate():
            return
        self.submit(form.config())
        form.reset_output()

    @Slot()
    def _on_cancel_clicked(self) -> None:
        if self.shown_job:
            self.queue.cancel(self.shown_job)
            self._log("cancel requested")

    @Slot()
    def _on_resume_clicked(self) -> None:
        if self.shown_job:
            self.queue.resume(self.shown_job)

    @Slot()
    def _on_open_clicked(self) -> None:
        record = self._record()
        if record is None or not record.out:
            return
        path = Path(record.out)
        if not path.exists():
            QMessageBox.information(self, "Open folder", f"{path} does not exist (yet).")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_job_list_current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if current is None:
            return
        job_id = current.data(0, Qt.ItemDataRole.UserRole)
        if job_id != self.shown_job:
            self._show_job(self.queue.records[job_id])

    # -- slots: queue -----------------------------------------------------------------------

    @Slot(object)
    def _on_queue_job_added(self, record: JobRecord) -> None:
        item = QTreeWidgetItem()
        item.setData(0, Qt.ItemDataRole.UserRole, record.id)
        self._items[record.id] = item
        self.job_list.insertTopLevelItem(0, item)
        self._refresh_item(record)

    @Slot(object)
    def _on_queue_job_updated(self, record: JobRecord) -> None:
        self._refresh_item(record)
        self._update_buttons()  # another job's change can end the shown one's Resume

    @Slot(object)
    def _on_queue_job_started(self, record: JobRecord) -> None:
        self._show_job(record)
        self.job_list.setCurrentItem(self._items[record.id])

    @Slot(str, object)
    def _on_queue_event_received(self, job_id: str, event: Event) -> None:
        if job_id != self.shown_job:
            return
        if event.type == "progress":
            self._on_progress(event)
        elif event.type == "metric":
            self._on_metric(event)
        elif event.type == "log":
            level = event.data.get("level", "info")
            prefix = "" if level == "info" else f"{level.upper()}: "
            self._log(f"{prefix}{event.data.get('message', '')}")
        elif event.type == "artifact":
            self._log(f"wrote {event.data.get('kind', 'file')}: {event.data.get('path', '')}")

    @Slot(object)
    def _on_queue_job_finished(self, record: JobRecord) -> None:
        if record.id == self.shown_job:
            self._show_outcome(record)
        self.sig_job_finished.emit(record)

    # -- the shown job ------------------------------------------------------------------------

    def _record(self) -> JobRecord | None:
        return self.queue.records.get(self.shown_job or "")

    def _show_job(self, record: JobRecord) -> None:
        self.shown_job = record.id
        self._metric_points = 0
        self._epoch_s: float | None = None
        x_label = "pruning step" if _epochs_per_step(record) is not None else "epoch"
        for plot in self.plots.values():
            plot.clear()
            plot.set_x_label(x_label)
        self.log_view.clear()
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_label.setText("")
        self._reached = ""
        self.job_title.setText(self._describe(record))
        self._load_metrics(record)
        if record.status == "running" and record.runner_pid is not None:
            self._log(f"{record.kind} job {record.id} runs on the Export page (progress, cancel)")
        elif record.status == "running":
            self._log(f"started {record.kind} job {record.id}")
        else:
            self._show_outcome(record)
        self._update_buttons()

    def _load_metrics(self, record: JobRecord) -> None:
        """Curves recorded so far in the job's metrics.csv (a resumed or re-selected job)."""
        self._loaded_x: set[float] = set()
        self._loaded_rows = 0
        if not record.out:
            return
        columns = read_metrics(Path(record.out) / "metrics.csv")
        x, _ = x_axis(columns, _epochs_per_step(record))
        if not x:
            return
        self._loaded_x, self._loaded_rows = set(x), len(x)
        for plot in self.plots.values():
            for key in plot.curves:
                if key in columns:
                    plot.set_series(key, x, columns[key])

    def _show_final_progress(self, record: JobRecord) -> None:
        """The progress bar and line of an ended job: its outcome, not its last ETA."""
        status = record.status
        if status == "done":
            self.progress.setValue(PROGRESS_STEPS)
        at = " at %p%" if status != "done" and self.progress.value() > 0 else ""
        self.progress.setFormat(f"{status}{at}")
        reached = f" during {self._reached}" if self._reached and status != "done" else ""
        took = record.finished - record.started if record.finished and record.started else None
        after = f" after {formatting.duration(took)}" if took is not None else ""
        self.progress_label.setText(f"{status}{reached}{after}")

    def _show_outcome(self, record: JobRecord) -> None:
        self.job_title.setText(self._describe(record))
        self._show_final_progress(record)
        summary = record.summary
        if record.status == "done":
            self._log(f"finished{': ' + headline(summary) if headline(summary) else ''}")
            if summary.get("run_dir"):
                self._log(f"run folder: {summary['run_dir']}")
            if summary.get("curve_dir"):
                self._log(f"learning curve: {summary.get('verdict', '')}")
                self._log(f"curve folder: {summary['curve_dir']} (its runs: Models page)")
            if summary.get("report"):
                self._log(f"report: {summary['report']} (listed on the Models page)")
            if summary.get("bundle"):
                zipped = f" (zip: {summary['zip']})" if summary.get("zip") else ""
                self._log(f"bundle: {summary['bundle']}{zipped}")
        elif record.status in ("cancelled", "interrupted"):
            resumable = self.queue.can_resume(record)
            hint = " Press Resume to continue from its last checkpoint." if resumable else ""
            self._log(f"{record.status}: {summary.get('message', 'stopped by the user')}.{hint}")
        elif record.status == "failed":
            self._log(f"FAILED: {summary.get('message', 'the job failed')}")
            tail = summary.get("stderr_tail") or summary.get("traceback")
            if tail:
                self._log("---- last lines of the job's error output ----")
                self._log(str(tail).rstrip())
        self._update_buttons()

    def _on_progress(self, event: Event) -> None:
        record = self._record()
        epochs = record.config.get("epochs") if record and record.kind in EPOCH_KINDS else None
        fraction, eta = job_progress(event, epochs, self._epoch_s)
        if event.data.get("phase") == "train" and fraction is not None:
            self._epoch_s = epoch_seconds(event) or self._epoch_s
        if fraction is not None:
            self.progress.setValue(round(PROGRESS_STEPS * fraction))
        parts = []
        phase = event.data.get("phase")
        if phase:
            parts.append(str(phase))
        if event.epoch is not None:
            self._reached = f"epoch {event.epoch}" + (f"/{epochs}" if epochs else "")
            parts.append(self._reached)
        speed = event.data.get("images_per_s")
        if isinstance(speed, int | float):
            parts.append(f"{speed:.0f} images/s")
        if eta:
            parts.append(f"ETA {formatting.duration(eta)}")
        self.progress_label.setText("  ·  ".join(parts))

    def _on_metric(self, event: Event) -> None:
        self._metric_points += 1
        x = self._metric_x(event)
        if x in self._loaded_x:
            return  # already drawn from metrics.csv
        for key, value in event.data.items():
            if not isinstance(value, int | float):
                continue
            for plot in self.plots.values():
                plot.append(key, x, value)
        shown = ", ".join(
            f"{k} {v:.4g}"
            for k, v in event.data.items()
            if k in LOG_METRICS and isinstance(v, int | float)
        )
        step = event.data.get("step")
        where = f"step {step} epoch {event.epoch}" if step is not None else f"epoch {x:g}"
        self._log(f"{where}: {shown}")

    def _metric_x(self, event: Event) -> float:
        """The x of a metric event, as :func:`core.runs.x_axis` places its metrics.csv row."""
        record = self._record()
        step = event.data.get("step")
        per_step = _epochs_per_step(record) if record is not None else None
        if per_step is not None and isinstance(step, int | float) and event.epoch is not None:
            return pruning_x(step, event.epoch, per_step)
        if record is not None and record.kind in EPOCH_KINDS and event.epoch is not None:
            return float(event.epoch)
        return float(self._loaded_rows + self._metric_points)  # rows are numbered

    def _describe(self, record: JobRecord) -> str:
        waiting = self.queue.waiting_for() if record.status == "queued" else None
        status = f"queued, waiting for {waiting} to finish" if waiting else record.status
        return f"{job_name(record)} · {status}"

    def _refresh_item(self, record: JobRecord) -> None:
        item = self._items.get(record.id)
        if item is None:
            return
        item.setIcon(0, status_icon(record.status))
        item.setText(0, record.status)
        item.setForeground(0, QBrush(QColor(STATUSES.get(record.status, ("#6b7280", ""))[0])))
        item.setText(1, job_name(record))
        item.setToolTip(1, f"job {record.id}\n{record.out or ''}")
        item.setToolTip(0, str(record.summary.get("message") or self._describe(record)))
        started = record.started or record.submitted
        item.setText(2, QDateTime.fromSecsSinceEpoch(int(started)).toString("dd MMM HH:mm"))
        end, start = record.finished, record.started
        took = None if end is None or start is None else end - start
        item.setText(3, formatting.duration(took))

    def _update_buttons(self) -> None:
        record = self._record()
        self.cancel_button.setEnabled(record is not None and self.queue.can_cancel(record))
        self.resume_button.setEnabled(record is not None and self.queue.can_resume(record))
        self.open_button.setEnabled(record is not None and bool(record.out))
        is_report = record is not None and record.kind == "report"
        self.open_button.setText("Open report" if is_report else "Open folder")

    def _log(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log_view.appendPlainText(f"{stamp}  {text}")


def _epochs_per_step(record: JobRecord) -> float | None:
    """A prune job's fine-tuning epochs per step (``None`` for other jobs)."""
    epochs = record.config.get("epochs") if record.kind == "prune" else None
    return float(epochs) if isinstance(epochs, int | float) else None


def headline(summary: Mapping[str, Any]) -> str:
    """The few numbers of a job's final summary worth a log line (test metrics, size, best)."""
    keys = [k for k in summary if k.startswith("test_") and k != "test_n"]
    keys += [
        k for k in (*LOG_METRICS, "best_val_acc", "best_epoch", "params", "macs") if k in summary
    ]
    return ", ".join(
        f"{k} {summary[k]:.4g}"
        for k in dict.fromkeys(keys)
        if isinstance(summary[k], int | float) and not isinstance(summary[k], bool)
    )


def epoch_seconds(event: Event) -> float | None:
    """This epoch's training time estimated from a train progress event (elapsed + ETA)."""
    done, total, eta = (event.data.get(k) for k in ("done", "total", "eta_s"))
    if not all(isinstance(v, int | float) for v in (done, total, eta)) or not 0 < done < total:
        return None
    return eta / (1.0 - done / total)


def job_progress(
    event: Event, epochs: int | None, epoch_s: float | None
) -> tuple[float | None, float | None]:
    """``(fraction of the whole job done, seconds left)`` from a progress event.

    With ``epochs`` (a training job) the fraction spans all epochs and the ETA adds the
    remaining epochs at ``epoch_s`` each; otherwise both describe the current phase.
    """
    done, total = event.data.get("done"), event.data.get("total")
    eta = event.data.get("eta_s")
    eta = float(eta) if isinstance(eta, int | float) else None
    if not (isinstance(done, int | float) and isinstance(total, int | float) and total > 0):
        return None, eta
    fraction = min(done / total, 1.0)
    if not epochs or event.epoch is None or event.data.get("phase", "train") != "train":
        return (None if epochs else fraction), eta
    whole = min((event.epoch - 1 + fraction) / epochs, 1.0)
    per_epoch = epoch_seconds(event) or epoch_s
    if eta is not None and per_epoch is not None:
        eta += max(epochs - event.epoch, 0) * per_epoch
    return whole, eta


def job_name(record: JobRecord) -> str:
    """``Fine-tune → cifake-r18``: the job's kind and the folder (or report) it writes, which is
    what a user knows it by (its job id, a timestamp of its own, is in the tooltip)."""
    title = JOB_KINDS.get(record.kind, (record.kind,))[0]
    return f"{title} → {Path(record.out).name}" if record.out else title
