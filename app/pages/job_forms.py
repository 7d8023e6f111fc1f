"""Job forms built from one declarative field list per job kind (no form is written by hand).

:data:`JOB_KINDS` says which fields a kind has; :class:`JobForm` turns that into widgets, reads
them back into a job config and shows validation messages next to the fields.
:func:`validate_config` is the same check without widgets (used by the form and by tests).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.commands.train import MONITOR_CHOICES, OUTLIER_LOSS_CHOICES
from app.job_queue import RESUMABLE_KINDS
from core.datasets import class_list
from core.errors import UserError
from core.learning_curve import parse_shares
from core.pruning import IMPORTANCES
from core.runs import still_running_reason
from core.workspace import Workspace, nearest_existing, writable_folder

ARCHITECTURES = (
    "mobilenetv3_small_050",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "resnet10t",
    "resnet18",
    "convnext_atto",
)
PATH_KINDS = ("folder", "run", "output", "bundle_out", "models", "report_out")
MODEL_SEPARATOR = ";"
"""Separates the folders of a ``models`` field in its text box."""


@dataclass(frozen=True)
class Field:
    """One input of a job form.

    ``kind`` is ``folder`` (an existing data set folder), ``run`` (an existing run directory),
    ``models`` (one or more run or bundle folders, a list), ``output`` / ``bundle_out`` (a new
    folder under the workspace's runs / bundles), ``report_out`` (a new ``.html`` file under the
    workspace's reports), ``int``, ``float``, ``choice``, ``bool`` or ``text`` (optional: empty
    means the job's default, ``None``).
    """

    key: str
    label: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    decimals: int = 4
    step: float = 1.0
    editable: bool = False
    advanced: bool = False


DATA = Field("data", "Data set", "folder", help="folder with one subfolder per class")
SPLIT_SHARES = tuple(
    Field(
        key,
        label,
        "float",
        0.1,
        low,
        0.5,
        decimals=2,
        step=0.05,
        help=f"share of each class held out for {use}; with the seed, the same as the Datasets "
        "page's Make splits gives the same split",
        advanced=True,
    )
    for key, label, low, use in (
        ("val", "Validation share", 0.01, "choosing the best epoch"),
        ("test", "Test share", 0.0, "the final test figures"),
    )
)
OUT = Field("out", "Output run", "output", help="new run folder")
ARCH = Field(
    "arch",
    "Architecture",
    "choice",
    "mobilenetv3_small_100",
    choices=ARCHITECTURES,
    editable=True,
    help="any timm model name",
)
EPOCHS = Field("epochs", "Epochs", "int", 10, 1, 1000, help="passes over the training images")
IMG_SIZE = Field(
    "img_size", "Image size", "int", 64, 16, 1024, step=16,
    help="pixels per side the model sees (larger: slower, finer traces)",
)  # fmt: skip
BATCH_SIZE = Field("batch_size", "Batch size", "int", 64, 1, 4096, help="images per training step")
LEARNING_RATE = Field(
    "lr", "Learning rate", "float", 0.002, 1e-6, 1.0, decimals=6, step=0.0005,
    help="size of each training step (too high: unstable, too low: slow)",
)  # fmt: skip
SOURCE_RUN = Field("run", "Source run", "run", help="a finished run folder")
OPTIMIZER = Field(
    "optimizer",
    "Optimizer",
    "choice",
    "adamw",
    choices=("adamw", "sgd"),
    help="sgd = Nesterov momentum; give it learning rate 0.05-0.1 and weight decay 5e-4",
    advanced=True,
)
WEIGHT_DECAY = Field(
    "weight_decay",
    "Weight decay",
    "float",
    0.05,
    0.0,
    1.0,
    decimals=5,
    step=0.01,
    help="AdamW: 0.01-0.1 (decoupled); SGD: about 5e-4",
    advanced=True,
)
PRECISION = Field(
    "precision",
    "Precision",
    "choice",
    "fp32",
    choices=("fp32", "bf16"),
    help="bf16 = bfloat16 autocast: about 1.8x faster on recent x86 CPUs and GPUs",
    advanced=True,
)
DEVICE = Field(
    "device",
    "Device",
    "choice",
    "auto",
    choices=("auto", "cpu", "cuda"),
    help="auto = a CUDA GPU when PyTorch sees one, else the CPU; the job log says which",
    advanced=True,
)
WEIGHT_AVERAGE = Field(
    "ema",
    "Weight average (EMA)",
    "float",
    0.0,
    0.0,
    0.9999,
    decimals=4,
    step=0.001,
    help="decay of a moving average of the weights that is validated and saved (0 = off)",
    advanced=True,
)
SHARPNESS_AWARE = Field(
    "sam",
    "Sharpness-aware radius (SAM)",
    "float",
    0.0,
    0.0,
    1.0,
    decimals=3,
    step=0.01,
    help="seek flat minima (e.g. 0.05; 0 = off): often better on small data, twice the time",
    advanced=True,
)


def _advanced_float(key: str, label: str, default: float, high: float, help: str) -> Field:
    """An advanced two-decimal option between 0 and ``high``."""
    return Field(
        key, label, "float", default, 0.0, high, decimals=2, step=0.1, help=help, advanced=True
    )


def _probability(key: str, label: str) -> Field:
    """An advanced augmentation probability in [0, 1], off by default."""
    return _advanced_float(key, label, 0.0, 1.0, "probability per training image")


def _alpha(key: str, label: str) -> Field:
    """An advanced batch-mixing Beta(alpha, alpha) parameter, off (0) by default."""
    return _advanced_float(
        key, label, 0.0, 10.0, "0 = off; 0.2-1.0 regularises long runs that over-fit"
    )


def _target_risk(help: str, advanced: bool = False) -> Field:
    """The error rate the rejection threshold is chosen for (export, report)."""
    return Field(
        "target_risk",
        "Target error rate",
        "float",
        0.05,
        0.0,
        0.99,
        decimals=3,
        step=0.01,
        help=help,
        advanced=advanced,
    )


JOB_KINDS: dict[str, tuple[str, tuple[Field, ...]]] = {
    "finetune": (
        "Fine-tune",
        (
            DATA,
            ARCH,
            Field(
                "pretrained",
                "Start from",
                "choice",
                "none",
                choices=("none", "hub"),
                help="hub = ImageNet weights (needs the model cache)",
            ),
            IMG_SIZE,
            EPOCHS,
            BATCH_SIZE,
            LEARNING_RATE,
            Field(
                "early_stop",
                "Early stop",
                "int",
                0,
                0,
                1000,
                help="epochs without improvement (0 = off)",
                advanced=True,
            ),
            Field(
                "monitor",
                "Best epoch by",
                "choice",
                MONITOR_CHOICES[0],
                choices=MONITOR_CHOICES,
                help="the validation figure that picks the weights kept as best: macro F1 weighs "
                "every class the same (better when real images dominate the data)",
                advanced=True,
            ),
            Field(
                "label_smoothing",
                "Label smoothing",
                "float",
                0.0,
                0.0,
                0.5,
                decimals=3,
                step=0.05,
                help="trains toward slightly softer targets (less over-confident models)",
                advanced=True,
            ),
            _alpha("mixup", "MixUp alpha"),
            _alpha("cutmix", "CutMix alpha"),
            _advanced_float(
                "mix_prob",
                "Mixed batches",
                1.0,
                1.0,
                "share of batches mixed when MixUp or CutMix is on",
            ),
            Field("balanced", "Balanced sampling", "bool", False, advanced=True),
            OPTIMIZER,
            WEIGHT_DECAY,
            PRECISION,
            DEVICE,
            WEIGHT_AVERAGE,
            SHARPNESS_AWARE,
            _probability("jpeg_prob", "JPEG re-compression"),
            _probability("downscale_prob", "Random downscale"),
            Field(
                "seed",
                "Seed",
                "int",
                0,
                0,
                2**31 - 1,
                advanced=True,
                help="the same seed gives the same split and the same run",
            ),
            *SPLIT_SHARES,
            Field(
                "train_share",
                "Training share",
                "float",
                1.0,
                0.01,
                1.0,
                decimals=2,
                step=0.25,
                help="train on this share of the train split (same val/test): does more data help?",
                advanced=True,
            ),
            Field(
                "leave_out",
                "Leave out class",
                "text",
                help="train without this class (a generator) to measure how the model treats an "
                "unseen one: add the run to a quality report",
                advanced=True,
            ),
            Field(
                "outlier_class",
                "Outlier class",
                "text",
                help="outlier exposure: train this class (a generator; several separated by "
                "commas, e.g. one per domain) toward 'unknown' instead of naming it",
                advanced=True,
            ),
            Field(
                "outlier_loss",
                "Outlier loss",
                "choice",
                OUTLIER_LOSS_CHOICES[0],
                choices=OUTLIER_LOSS_CHOICES,
                help="how outlier images are trained: softmax toward uniform, or energy margins "
                "(known images high, outliers low; pair with the energy rejection score)",
                advanced=True,
            ),
            OUT,
        ),
    ),
    "prune": (
        "Prune",
        (
            SOURCE_RUN,
            Field(
                "macs_ratio",
                "Keep MACs",
                "float",
                0.5,
                0.05,
                0.95,
                decimals=2,
                step=0.05,
                help="fraction of the original compute to keep",
            ),
            Field("steps", "Steps", "int", 3, 1, 20, help="prune a little at a time, this often"),
            Field(
                "epochs",
                "Epochs per step",
                "int",
                2,
                0,
                100,
                help="fine-tuning after each step, to recover accuracy",
            ),
            Field(
                "importance",
                "Importance",
                "choice",
                "magnitude",
                choices=IMPORTANCES,
                help="how channels are ranked for removal (magnitude: the smallest weights go)",
            ),
            DEVICE,
            OUT,
        ),
    ),
    "distill": (
        "Distill",
        (
            Field("teacher", "Teacher run", "run", help="the larger, trained model"),
            DATA,
            Field(
                "arch",
                "Student",
                "choice",
                "mobilenetv3_small_050",
                choices=ARCHITECTURES,
                editable=True,
                help="the smaller model trained to imitate the teacher",
            ),
            EPOCHS,
            BATCH_SIZE,
            LEARNING_RATE,
            Field(
                "temperature",
                "Temperature",
                "float",
                4.0,
                1.0,
                20.0,
                decimals=1,
                step=0.5,
                help="softens the teacher's answers so the student learns its second guesses too",
            ),
            Field(
                "alpha",
                "Alpha",
                "float",
                0.7,
                0.0,
                1.0,
                decimals=2,
                step=0.05,
                help="weight of the teacher's soft targets",
            ),
            DEVICE,
            OUT,
        ),
    ),
    "export": (
        "Export",
        (
            SOURCE_RUN,
            Field(
                "int8",
                "INT8 quantisation",
                "bool",
                True,
                help="8-bit weights: about 4x smaller and faster, verified against FP32",
            ),
            _target_risk(
                "the rejection threshold keeps at most this error rate among accepted images"
            ),
            Field("out", "Bundle folder", "bundle_out", help="new bundle folder"),
        ),
    ),
    "curve": (
        "Learning curve",
        (
            DATA,
            ARCH,
            IMG_SIZE,
            EPOCHS,
            BATCH_SIZE,
            LEARNING_RATE,
            Field(
                "shares",
                "Training shares",
                "text",
                "0.25, 0.5, 1",
                help="one run per share of the train split (same val/test), 2 to 8 of them",
            ),
            Field(
                "target_acc",
                "Target accuracy",
                "float",
                0.0,
                0.0,
                0.99999,
                decimals=4,
                step=0.005,
                help="how many training images would reach it? (0 = none)",
            ),
            PRECISION,
            DEVICE,
            Field("out", "Output folder", "output", help="new folder for the curve and its runs"),
        ),
    ),
    "report": (
        "Quality report",
        (
            Field(
                "models",
                "Models",
                "models",
                help=f"run or bundle folders, separated by '{MODEL_SEPARATOR}'",
            ),
            DATA,
            Field(
                "split",
                "Images",
                "choice",
                "test",
                choices=("test", "val", "train", "all"),
                help="the split scored (the run's own split when this is its data set)",
            ),
            _target_risk("for runs without a bundle: the rejection threshold's error rate", True),
            Field(
                "robustness_images",
                "Robustness images",
                "int",
                300,
                0,
                100_000,
                help="images re-scored after JPEG 75, 0.5x and a centre crop (0: none)",
                advanced=True,
            ),
            Field("out", "Report file", "report_out", help="new .html file"),
        ),
    ),
}
"""``kind -> (title, fields)``."""


def default_output(workspace: Workspace, kind: str, field: Field) -> str:
    """A fresh, timestamped folder (or report file) for a job's output."""
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"
    if field.kind == "report_out":
        return str(workspace.reports / f"{name}.html")
    root = workspace.bundles if field.kind == "bundle_out" else workspace.runs
    return str(root / name)


def model_paths(value: Any) -> list[str]:
    """The folders of a ``models`` field: a list, or text separated by :data:`MODEL_SEPARATOR`."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(MODEL_SEPARATOR)
    return [str(item).strip() for item in items if str(item).strip()]


def validate_config(kind: str, config: Mapping[str, Any]) -> dict[str, str]:
    """Messages per field key for everything wrong with ``config`` (empty when it is fine)."""
    errors: dict[str, str] = {}
    for field in JOB_KINDS[kind][1]:
        message = _check(field, config.get(field.key), bool(config.get("resume")))
        if message:
            errors[field.key] = message
    if kind == "curve" and config.get("shares"):  # empty: the job's default shares
        try:
            parse_shares(str(config["shares"]))
        except UserError as exc:
            errors["shares"] = str(exc)
    data = config.get("data")
    data_ok = bool(data) and "data" not in errors
    leave_out = str(config.get("leave_out") or "")
    named = {
        "leave_out": [leave_out] if leave_out else [],
        "outlier_class": class_list(str(config.get("outlier_class") or "")),  # one or several
    }
    for key, names in named.items():
        missing = [n for n in names if not (Path(str(data)).expanduser() / n).is_dir()]
        if data_ok and missing:
            errors[key] = f"not a class folder of the data set: {', '.join(missing)}"
    return errors


def _check(field: Field, value: Any, resume: bool) -> str | None:
    if field.kind == "models":
        return _check_models(model_paths(value))
    if field.kind == "report_out":
        return _check_report_file(value)
    if field.kind in PATH_KINDS:
        if not value or not str(value).strip():
            return "required"
        path = Path(str(value)).expanduser()
        if field.kind == "folder":
            return _check_data_folder(path)
        if field.kind == "run":
            if not path.is_dir():
                return "folder not found"
            if not (path / "run.json").is_file():
                return "not a run folder (no run.json)"
            return still_running_reason(path)
        if path.exists() and not path.is_dir():
            return "exists and is a file"
        if not resume and path.is_dir() and any(path.iterdir()):
            return "folder is not empty; choose a new one"
        return _check_writable(path)
    if value is None:
        return None  # not given: the job uses its default
    if field.kind in ("int", "float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "a number is needed"
        if not math.isfinite(number):
            return "a finite number is needed"
        if field.kind == "int" and number != int(number):
            return "a whole number is needed"
        if field.minimum is not None and number < field.minimum:
            return f"at least {field.minimum:g}"
        if field.maximum is not None and number > field.maximum:
            return f"at most {field.maximum:g}"
    if field.kind == "choice" and not field.editable and value not in field.choices:
        return f"one of {', '.join(field.choices)}"
    if field.kind == "choice" and not str(value or "").strip():
        return "required"
    return None


def _check_models(paths: list[str]) -> str | None:
    if not paths:
        return "required: at least one run or bundle folder"
    for text in paths:
        path = Path(text).expanduser()
        if not path.exists():
            return f"not found: {text}"
        markers = ("run.json", "model.json", "bundle.json")
        is_model = path.suffix.lower() == ".zip" or any((path / m).is_file() for m in markers)
        if not is_model:
            return f"not a run or bundle folder: {text}"
    return None


def _check_report_file(value: Any) -> str | None:
    if not value or not str(value).strip():
        return "required"
    path = Path(str(value)).expanduser()
    if path.suffix.lower() not in (".html", ".htm"):
        return "must end in .html"
    if path.exists():
        return "exists; choose a new name"
    if path.parent.exists() and not path.parent.is_dir():
        return "its folder is a file"
    return _check_writable(path.parent)


def _check_writable(folder: Path) -> str | None:
    """A message when ``folder`` cannot be created or written (its nearest existing parent)."""
    if writable_folder(folder):
        return None
    existing = nearest_existing(folder)
    return f"cannot write in {existing}; choose another folder" if existing else "no such drive"


def _check_data_folder(path: Path) -> str | None:
    if not path.is_dir():
        return "folder not found"
    try:
        classes = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError as exc:
        return f"cannot read the folder: {exc.strerror}"
    if len(classes) < 2:
        return f"needs one subfolder per class (found {len(classes)})"
    return None


class JobForm(QWidget):
    """The inputs of one job kind, built from :data:`JOB_KINDS`."""

    sig_validity_changed = Signal(bool)

    def __init__(self, kind: str, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.workspace = workspace
        self.title, self.fields = JOB_KINDS[kind]
        self._fields = {field.key: field for field in self.fields}
        self._editors: dict[str, QWidget] = {}
        self._errors: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        basic, advanced = QFormLayout(), QFormLayout()
        for form in (basic, advanced):
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for field in self.fields:
            (advanced if field.advanced else basic).addRow(field.label, self._row(field))
        layout.addLayout(basic)
        if advanced.rowCount():
            toggle = QToolButton()
            toggle.setObjectName("disclosure")
            toggle.setText("Advanced options")
            toggle.setCheckable(True)
            toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            toggle.setArrowType(Qt.ArrowType.RightArrow)
            inner = QWidget()
            inner.setLayout(advanced)
            inner.setVisible(False)

            def on_toggled(shown: bool) -> None:
                inner.setVisible(shown)
                toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

            toggle.toggled.connect(on_toggled)
            self.advanced_toggle = toggle
            layout.addWidget(toggle)
            layout.addWidget(inner)
        self.reset_output()

    # -- building -----------------------------------------------------------------------------

    def _row(self, field: Field) -> QWidget:
        editor = self._editor(field)
        editor.setObjectName(f"field_{field.key}")
        if field.help:
            editor.setToolTip(field.help)
        self._editors[field.key] = editor
        error = QLabel()
        error.setObjectName("fieldError")
        error.setVisible(False)
        self._errors[field.key] = error
        row = QWidget()
        column = QVBoxLayout(row)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        line = QHBoxLayout()
        line.setSpacing(6)
        line.addWidget(editor, 1)
        if field.kind in PATH_KINDS:
            browse = QPushButton("Browse…")
            browse.setObjectName(f"browse_{field.key}")
            browse.clicked.connect(lambda _=False, f=field: self._browse(f))
            line.addWidget(browse)
        column.addLayout(line)
        column.addWidget(error)
        return row

    def _editor(self, field: Field) -> QWidget:
        if field.kind == "int":
            spin = QSpinBox()
            spin.setRange(int(field.minimum or 0), int(field.maximum or 2**31 - 1))
            spin.setSingleStep(int(field.step))
            spin.setValue(int(field.default or 0))
            return spin
        if field.kind == "float":
            dspin = QDoubleSpinBox()
            dspin.setDecimals(field.decimals)
            dspin.setRange(field.minimum or 0.0, field.maximum or 1e9)
            dspin.setSingleStep(field.step)
            dspin.setValue(float(field.default or 0.0))
            return dspin
        if field.kind == "bool":
            check = QCheckBox()
            check.setChecked(bool(field.default))
            return check
        if field.kind == "choice":
            combo = QComboBox()
            combo.setEditable(field.editable)
            combo.addItems(list(field.choices))
            combo.setCurrentText(str(field.default))
            return combo
        edit = QLineEdit()
        edit.setPlaceholderText(field.help)
        edit.setClearButtonEnabled(True)
        if field.default is not None:
            edit.setText(str(field.default))
        return edit

    def _browse(self, field: Field) -> None:
        if field.kind == "report_out":
            path, _ = QFileDialog.getSaveFileName(
                self, field.label, self.value(field.key), "HTML report (*.html)"
            )
            if path:
                self.set_value(field.key, path)
            return
        if field.kind == "models":
            chosen = self.value(field.key)
            start = chosen[-1] if chosen else str(self.workspace.runs)
        else:
            start = self.value(field.key) or str(
                self.workspace.runs if field.kind in ("run", "output") else Path.home()
            )
        folder = QFileDialog.getExistingDirectory(self, field.label, str(start))
        if folder and field.kind == "models":
            self.set_value(field.key, [*self.value(field.key), folder])
        elif folder:
            self.set_value(field.key, folder)

    # -- values -------------------------------------------------------------------------------

    def value(self, key: str) -> Any:
        editor = self._editors[key]
        if isinstance(editor, QSpinBox | QDoubleSpinBox):
            return editor.value()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            return editor.currentText().strip()
        if self._fields[key].kind == "models":
            return model_paths(editor.text())
        if self._fields[key].kind == "text":
            return editor.text().strip() or None
        return editor.text().strip()

    def set_value(self, key: str, value: Any) -> None:
        editor = self._editors.get(key)
        if editor is None:
            return
        if isinstance(editor, QSpinBox):
            editor.setValue(int(value))
        elif isinstance(editor, QDoubleSpinBox):
            editor.setValue(float(value))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        elif self._fields[key].kind == "models":
            editor.setText(f"{MODEL_SEPARATOR} ".join(model_paths(value)))
        else:
            editor.setText("" if value is None else str(value))

    def set_values(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.set_value(key, value)

    def config(self) -> dict[str, Any]:
        """The job config of the current inputs (``kind`` included, ``resume`` false)."""
        body: dict[str, Any] = {"kind": self.kind}
        body.update({field.key: self.value(field.key) for field in self.fields})
        if self.kind in RESUMABLE_KINDS:
            body["resume"] = False
        return body

    def reset_output(self) -> None:
        """Propose a fresh output folder (after each submission)."""
        for field in self.fields:
            if field.kind in ("output", "bundle_out", "report_out"):
                self.set_value(field.key, default_output(self.workspace, self.kind, field))

    def validate(self) -> bool:
        """Check the inputs; show a message under each wrong field. True when all are fine."""
        errors = validate_config(self.kind, self.config())
        for key, label in self._errors.items():
            message = errors.get(key)
            label.setText(f"⚠ {message}" if message else "")
            label.setVisible(bool(message))
        self.sig_validity_changed.emit(not errors)
        return not errors

    def error_text(self, key: str) -> str:
        return self._errors[key].text()
