"""The distill job: train a small student on a data set with a trained teacher's soft targets.

Loss (through ``fit``'s ``compute_loss`` hook)::

    (1 - alpha) * CE(student, labels) + alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))

The teacher runs in eval mode without gradients on the SAME augmented batch as the student; with
``mixup``/``cutmix`` that batch is mixed first, so the student matches the teacher's function on
images neither saw as such ("function matching", Beyer et al. 2022) and the hard term uses the
mixed soft labels. Each
model keeps its own preprocessing contract: the student's batch is what the loader produces; when
the teacher's contract differs (input size, mean/std), :func:`teacher_view` un-normalises the
batch, resizes it with antialiased bilinear interpolation to the teacher's size and normalises it
with the teacher's mean/std. (The geometry before that, e.g. the crop, is the student's.)

The student is a fresh timm ``arch`` or an existing ``student`` run (a pruned one included: its
pruning history travels with it). It learns the teacher's classes, in the teacher's order; the
data's classes must be the same. When the data is the teacher's own data, the teacher's recorded
split is reused so its test images never reach the student's training. The run records the
teacher as its ``parent`` and its kind as ``distill``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import UserError
from core.events import EventWriter
from core.models import ModelDescription, create_model, load_model
from core.preprocess import PreprocessSpec
from training.common import (
    evaluate_samples,
    headline,
    make_loaders,
    model_summary,
    prepare_splits,
    require_run,
    seed_everything,
    set_threads,
    subset,
)
from training.config import (
    FINETUNE_DEFAULTS,
    check_compute,
    check_mixing,
    check_range,
    read_split,
    resolve,
    write_split,
)
from training.control import CancelToken
from training.data import ImageDataset
from training.finetune import augment_from_config, finish
from training.loop import BatchMixer, ComputeLoss, batch_mixer, fit, settings_from_config
from training.rundir import RunDir

SHARED_WITH_FINETUNE = (
    "pretrained", "model_kwargs", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
    "warmup_epochs", "label_smoothing", "mixup", "cutmix", "mix_prob", "early_stop", "monitor",
    "balanced", "hflip",
    "crop_prob", "jpeg_prob", "downscale_prob", "channels_last", "precision", "device", "ema", "sam", "seed",
    "val",
    "test", "workers", "threads", "resume", "workspace",
)  # fmt: skip
DISTILL_DEFAULTS: dict[str, Any] = {
    "kind": "distill",
    "teacher": None,
    "arch": None,
    "student": None,
    "data": None,
    "out": None,
    "epochs": 10,
    "temperature": 4.0,
    "alpha": 0.7,
    "img_size": None,
    "max_train": None,
    **{key: FINETUNE_DEFAULTS[key] for key in SHARED_WITH_FINETUNE},
}


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Hinton et al.'s loss: hard-label CE mixed with the ``T**2``-scaled soft-target KL.

    ``targets`` are class indices, or per-class probabilities (mixed batches; their label
    smoothing is already in them, so ``label_smoothing`` applies to indices only).
    """
    smoothing = label_smoothing if targets.dim() == 1 else 0.0
    hard = F.cross_entropy(student_logits.float(), targets, label_smoothing=smoothing)
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


def teacher_view(
    images: torch.Tensor, student: PreprocessSpec, teacher: PreprocessSpec
) -> torch.Tensor:
    """The student's normalised batch re-expressed in the teacher's contract (size, mean/std)."""
    same_norm = tuple(student.mean) == tuple(teacher.mean) and tuple(student.std) == tuple(
        teacher.std
    )
    if student.input_size == teacher.input_size and same_norm:
        return images
    pixels = images * _per_channel(student.std, images) + _per_channel(student.mean, images)
    if student.input_size != teacher.input_size:
        size = (teacher.input_size, teacher.input_size)
        pixels = F.interpolate(
            pixels, size=size, mode="bilinear", antialias=True, align_corners=False
        )
    return (pixels - _per_channel(teacher.mean, images)) / _per_channel(teacher.std, images)


def _per_channel(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """RGB ``values`` as a ``1x3x1x1`` tensor of ``like``'s dtype and device."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def distill_loss_fn(
    teacher: torch.nn.Module,
    student_spec: PreprocessSpec,
    teacher_spec: PreprocessSpec,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
    mix: BatchMixer | None = None,
) -> ComputeLoss:
    """``fit``'s ``compute_loss``: the batch mixed by ``mix`` (when given), teacher logits
    (eval, no grad) on that same batch, then the loss. The teacher follows the batches to their
    device (move it back to the CPU after ``fit``)."""
    teacher.eval()
    teacher.requires_grad_(False)

    def compute(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor):
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        if mix is not None:
            images, targets = mix(images, targets)
        with torch.no_grad():
            teacher_logits = teacher(teacher_view(images, student_spec, teacher_spec))
        logits = model(images)
        loss = distillation_loss(
            logits, teacher_logits, targets, temperature, alpha, label_smoothing
        )
        return loss, logits

    return compute


def validate_distill(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every option checked before any work starts."""
    config = resolve(config, DISTILL_DEFAULTS, required=("teacher", "data", "out"))
    if bool(config["arch"]) == bool(config["student"]):
        raise UserError(
            "a distill job needs exactly one student: --arch ARCH (a new model) or "
            "--student RUN (an existing run), not both and not neither"
        )
    check_range(config, "epochs", 1, 10_000)
    check_range(config, "temperature", 0.05, 100)
    check_range(config, "alpha", 0, 1)
    check_range(config, "batch_size", 1, 4096)
    check_range(config, "lr", 1e-7, 10)
    check_range(config, "val", 0.01, 0.5)
    check_range(config, "test", 0.0, 0.5)
    check_compute(config)
    check_mixing(config)
    if config["img_size"] is not None:
        check_range(config, "img_size", 8, 4096)
        if config["student"]:
            raise UserError(
                "--img-size applies to a new --arch student; a --student run keeps its own"
            )
    if config["max_train"] is not None:
        check_range(config, "max_train", 1, 10**9)
    data = Path(config["data"]).expanduser()
    if not data.is_dir():
        raise UserError(f"data folder {data} does not exist or is not a folder")
    require_run(config["teacher"], "teacher", files=("model.json",))
    if config["student"]:
        require_run(config["student"], "student", files=("model.json",))
    return config


def student_spec_for(teacher: PreprocessSpec, img_size: int | None) -> PreprocessSpec:
    """The teacher's contract at the student's input size (resize size scaled alike)."""
    if not img_size or img_size == teacher.input_size:
        return teacher
    resize = None
    if teacher.resize_size:
        resize = max(img_size, round(teacher.resize_size * img_size / teacher.input_size))
    return dataclasses.replace(teacher, input_size=img_size, resize_size=resize)


def make_student(
    config: dict[str, Any], teacher: ModelDescription, run_dir: Path
) -> tuple[torch.nn.Module, ModelDescription]:
    """A fresh ``arch`` student, or the ``student`` run's model (its pruning file copied over)."""
    if config["arch"]:
        spec = student_spec_for(teacher.preprocess, config["img_size"])
        description = ModelDescription(
            arch=config["arch"],
            class_names=list(teacher.class_names),
            preprocess=spec,
            real_class=teacher.real_class,
            model_kwargs=dict(config["model_kwargs"]),
        )
        model = create_model(
            config["arch"], description.num_classes, config["pretrained"], **config["model_kwargs"]
        )
        return model, description
    source = Path(config["student"]).expanduser().resolve()
    model, description = load_model(source)
    if list(description.class_names) != list(teacher.class_names):
        raise UserError(
            f"the student run's classes {description.class_names} differ from the teacher's "
            f"{teacher.class_names}; distil into a new --arch student instead"
        )
    if description.pruning_history:
        shutil.copyfile(source / description.pruning_history, run_dir / description.pruning_history)
    return model.train(), description


def distill_splits(
    config: dict[str, Any], teacher_dir: Path, teacher: ModelDescription, emit, cancel
) -> tuple[dict[str, list], Path, bool]:
    """Splits of ``data``, root, and whether they are the teacher's recorded split.

    The teacher's recorded split is used when ``data`` is the teacher's data set, so none of
    its validation or test images become the student's training images.
    """
    splits, class_names, root = prepare_splits(config, emit, cancel)
    if sorted(class_names) != sorted(teacher.class_names):
        raise UserError(
            f"the data's classes {class_names} are not the teacher's {teacher.class_names}; "
            "distil on a data set with exactly the teacher's classes"
        )
    recorded = teacher_dir / "split.json"
    if recorded.is_file():
        import json

        if Path(json.loads(recorded.read_text(encoding="utf-8"))["root"]).resolve() == root:
            classes = teacher.class_names
            splits = {n: read_split(recorded, n, classes) for n in ("train", "val", "test")}
            return splits, root, True
    return splits, root, False


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Run a distill job; returns the summary also stored in run.json."""
    config = validate_distill(config)
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    teacher_dir = require_run(config["teacher"], "teacher", files=("model.json",))
    teacher, teacher_description = load_model(teacher_dir)
    splits, root, reused = distill_splits(config, teacher_dir, teacher_description, emit, cancel)
    run_dir = RunDir.create(
        config["out"],
        kind="distill",
        config=config,
        parent=str(teacher_dir),
        resume=config["resume"],
    )
    emit.add_file(run_dir.events_path)
    if reused:
        emit.log("the data is the teacher's: using its recorded train/val/test split")
    seed_everything(config["seed"])
    student, description = make_student(config, teacher_description, run_dir.path)
    description.save(run_dir.path)
    write_split(run_dir.split_path, root, config["seed"], splits)
    class_names = description.class_names
    train_samples = subset(splits["train"], config["max_train"], config["seed"])
    emit.log(
        f"distilling {teacher_description.arch} (T={config['temperature']}, "
        f"alpha={config['alpha']}) into {description.arch} at {description.preprocess.input_size}"
        f" px on {len(train_samples)} training images"
    )
    train_set = ImageDataset(
        train_samples,
        class_names,
        description.preprocess,
        augment_from_config(config),
        seed=config["seed"],
    )
    val_set = ImageDataset(splits["val"], class_names, description.preprocess)
    settings = settings_from_config(config)
    result = fit(
        student,
        run_dir,
        *make_loaders(train_set, val_set, config),
        settings,
        class_names=class_names,
        real_class=description.real_class,
        emit=emit,
        cancel=cancel,
        resume=config["resume"],
        compute_loss=distill_loss_fn(
            teacher,
            description.preprocess,
            teacher_description.preprocess,
            config["temperature"],
            config["alpha"],
            config["label_smoothing"],
            batch_mixer(settings, len(class_names)),
        ),
    )
    teacher.to("cpu")
    summary = finish(run_dir, description, splits["test"], result, emit, cancel)
    if result["cancelled"]:
        return summary
    extra = teacher_figures(teacher, teacher_description, teacher_dir, splits["test"], cancel)
    extra["params_vs_teacher"] = summary["params"] / extra["teacher_params"]
    extra["macs_vs_teacher"] = summary["macs"] / extra["teacher_macs"]
    run_dir.update(summary=extra)
    return {**summary, **extra}


def teacher_figures(
    teacher: torch.nn.Module,
    description: ModelDescription,
    teacher_dir: Path,
    test_samples: list,
    cancel: CancelToken,
) -> dict[str, Any]:
    """The teacher's size and its accuracy on the student's test split, for comparison."""
    stats = model_summary(teacher, description, teacher_dir / "best.safetensors")
    report = evaluate_samples(teacher, description, test_samples, cancel)
    figures = {"teacher_params": stats["params"], "teacher_macs": stats["macs"]}
    figures.update(headline(report, "teacher_test"))
    figures.pop("teacher_test_n", None)
    return figures
