"""The shared epoch loop: ``train_one_epoch``, ``predict``, ``validate`` and ``fit``.

``fit`` owns what every training job needs: AdamW (or SGD), a warm-up + cosine or one-cycle
schedule, per-epoch validation with the full metric report (of the weight average when ``ema`` is
on), best/last weights, early stopping, rate-limited progress events, metrics.csv rows, a
resumable checkpoint after every epoch and cooperative cancel. Jobs customise the loss through
``compute_loss`` (distillation) and add columns through ``extra_metrics`` (pruning records MACs
and params).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from core.events import EventWriter
from core.metrics import classification_report
from core.models import save_weights
from core.verdict import softmax
from training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from training.control import Cancelled, CancelToken
from training.data import set_epoch
from training.device import check_device_name, describe_device, resolve_device
from training.rundir import RunDir
from training.sam import RandomState, sharpness_aware_gradients

ComputeLoss = Callable[
    [torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]
"""``(model, images, targets) -> (loss, logits)``."""

SCHEDULES = ("cosine", "onecycle", "constant")
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("adamw", "sgd")
CPU = torch.device("cpu")
MONITORS = {"val_acc": "max", "val_auc": "max", "val_loss": "min", "val_macro_f1": "max"}


@dataclass
class FitSettings:
    """Optimisation settings of one ``fit`` call (all JSON-serialisable)."""

    epochs: int = 10
    optimizer: str = "adamw"
    """``adamw`` (decoupled weight decay) or ``sgd`` (Nesterov momentum 0.9, L2 weight decay:
    the classic CIFAR recipe wants ``lr`` about 0.05-0.1 and ``weight_decay`` about 5e-4)."""
    lr: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    early_stop: int = 0
    """Stop after this many epochs without a better ``monitor``; 0 disables."""
    monitor: str = "val_macro_f1"
    """The validation figure that picks the best epoch (:data:`MONITORS`): macro F1 by default,
    since accuracy rewards calling everything the majority class."""
    grad_clip: float = 5.0
    mixup: float = 0.0
    """Beta(alpha, alpha) of MixUp (whole images blended); 0 disables."""
    cutmix: float = 0.0
    """Beta(alpha, alpha) of CutMix (a box pasted from another image); 0 disables. With both on,
    each batch uses one of the two at random."""
    mix_prob: float = 1.0
    """Share of batches that are mixed when ``mixup`` or ``cutmix`` is on."""
    channels_last: bool = True
    """NHWC activations: the same fp32 arithmetic, about 2x faster convolutions on x86 CPUs."""
    precision: str = "fp32"
    """``bf16`` runs forward passes under bfloat16 autocast (about 1.8x faster again on CPUs
    with AVX512-BF16/AMX, and the fast path of recent GPUs; weights and optimizer state stay
    fp32)."""
    device: str = "auto"
    """``auto`` (a CUDA GPU when PyTorch sees one), ``cpu``, ``cuda`` or ``cuda:N``: where the
    batches are computed (:mod:`training.device`)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights (and batch-norm statistics) after
    every step; when set, the average is what is validated and saved. 0 disables; 0.999
    averages over roughly the last 1,000 steps (with timm's warm-up for early steps)."""
    sam: float = 0.0
    """Radius ``rho`` of sharpness-aware minimisation (:mod:`training.sam`): each step's
    gradient is taken at the weights moved ``rho`` along the normalised gradient, for flatter
    minima at twice the compute per step. 0 disables; 0.05 is the paper's CIFAR value."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, not {self.monitor!r}")
        if self.sam < 0.0:
            raise ValueError(f"sam must be >= 0, not {self.sam!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), not {self.ema!r}")
        check_device_name(self.device)


def make_optimizer(model: torch.nn.Module, settings: FitSettings) -> torch.optim.Optimizer:
    """The optimizer ``settings.optimizer`` names, over all of ``model``'s parameters."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=settings.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine/one-cycle decay."""
    if schedule == "constant":
        return 1.0
    if warmup and step < warmup:
        start = 0.04 if schedule == "onecycle" else 0.01
        return start + (1.0 - start) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = 1e-4 if schedule == "onecycle" else 1e-2
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Compute:
    """How batches are computed: device, memory format and autocast precision."""

    channels_last: bool = False
    precision: str = "fp32"
    device: torch.device = CPU

    @classmethod
    def of(cls, settings: FitSettings) -> Compute:
        """The settings' compute, its device resolved (``auto`` becomes cpu or cuda)."""
        return cls(settings.channels_last, settings.precision, resolve_device(settings.device))

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` moved to the device (in place), channels-last when asked."""
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.to(self.device, non_blocking=True)

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )


class WeightAverage:
    """An exponential moving average of a model (timm's ``ModelEmaV3``, warm-up on).

    ``module`` is the averaged copy: put it in eval mode, validate and save it in place of the
    trained model.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        from timm.utils import ModelEmaV3

        self._ema = ModelEmaV3(model, decay=decay, use_warmup=True)

    @property
    def module(self) -> torch.nn.Module:
        return self._ema.module

    def update(self, model: torch.nn.Module, step: int) -> None:
        self._ema.update(model, step=step)


def cross_entropy_loss(label_smoothing: float = 0.0) -> ComputeLoss:
    def compute(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor):
        logits = model(images)
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing), logits

    return compute


BatchMixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(images, class indices) -> (mixed images, soft targets)``."""


def batch_mixer(settings: FitSettings, num_classes: int) -> BatchMixer | None:
    """timm's MixUp/CutMix as a batch function (soft, label-smoothed targets); ``None`` when
    both are off. Odd-sized batches (the last of an epoch) come back unmixed with one-hot
    targets: pairing flips the batch."""
    if not (settings.mixup or settings.cutmix):
        return None
    from timm.data import Mixup

    mix = Mixup(
        mixup_alpha=settings.mixup,
        cutmix_alpha=settings.cutmix,
        prob=settings.mix_prob,
        label_smoothing=settings.label_smoothing,
        num_classes=num_classes,
    )

    def apply(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(targets) % 2:
            return images, F.one_hot(targets, num_classes).float()
        return mix(images.clone(), targets)

    return apply


def mixing_loss(mix: BatchMixer, label_smoothing: float = 0.0) -> ComputeLoss:
    """Cross-entropy on ``mix``'s batches with their soft targets; odd-sized batches (not
    mixed) take plain cross-entropy with ``label_smoothing``."""
    plain = cross_entropy_loss(label_smoothing)

    def compute(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor):
        if len(targets) % 2:
            return plain(model, images, targets)
        mixed, soft = mix(images, targets)
        logits = model(mixed)
        loss = torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        return loss, logits

    return compute


def mean_per_outlier_class(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` (one per outlier image) over each outlier class found in
    ``targets`` (negative labels), then over those classes: every outlier class weighs the
    same, however many images it has (770 faces of one generator and 131 scenes of others would
    otherwise teach mostly about faces)."""
    groups = targets.unique()
    return torch.stack([values[targets == group].mean() for group in groups]).mean()


def outlier_exposure_loss(weight: float, label_smoothing: float = 0.0) -> ComputeLoss:
    """Cross-entropy on the known classes plus ``weight`` times the cross-entropy of outlier
    images (label :data:`training.data.OUTLIER`) to the uniform distribution (Hendrycks et al.,
    "Deep anomaly detection with outlier exposure", 2019): the model learns to spread its
    confidence on images of a kind it must not name. Each outlier class weighs the same
    (:func:`mean_per_outlier_class`)."""

    def compute(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor):
        logits = model(images)
        known = targets >= 0
        loss = logits.new_zeros((), dtype=torch.float32)
        if known.any():
            loss = loss + F.cross_entropy(
                logits[known].float(), targets[known], label_smoothing=label_smoothing
            )
        if not known.all():
            to_uniform = -F.log_softmax(logits[~known].float(), dim=-1).mean(dim=1)
            loss = loss + weight * mean_per_outlier_class(to_uniform, targets[~known])
        return loss, logits

    return compute


ENERGY_MARGIN = 3.0
"""How far above ``log K`` (the logsumexp of uniform zero logits) the energy loss pushes the
logsumexp of known images, while it pushes outliers' down to ``log K``."""


def energy_exposure_loss(weight: float, label_smoothing: float = 0.0) -> ComputeLoss:
    """Cross-entropy on the known classes plus ``weight`` times squared hinges on the logsumexp
    of the logits (the negative free energy), as in Liu et al., "Energy-based out-of-distribution
    detection", 2020: known images above ``log K + ENERGY_MARGIN``, outliers
    (label :data:`training.data.OUTLIER`) below ``log K``. It trains the score that the
    ``energy`` rejection rule reads, where outlier exposure trains the softmax's shape. Each
    outlier class weighs the same in the outlier hinge (:func:`mean_per_outlier_class`)."""

    def compute(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor):
        logits = model(images)
        known = targets >= 0
        scores = torch.logsumexp(logits.float(), dim=-1)
        uniform = math.log(logits.shape[-1])
        loss = logits.new_zeros((), dtype=torch.float32)
        if known.any():
            loss = loss + F.cross_entropy(
                logits[known].float(), targets[known], label_smoothing=label_smoothing
            )
            loss = loss + weight * F.relu(uniform + ENERGY_MARGIN - scores[known]).pow(2).mean()
        if not known.all():
            above = F.relu(scores[~known] - uniform).pow(2)
            loss = loss + weight * mean_per_outlier_class(above, targets[~known])
        return loss, logits

    return compute


OUTLIER_LOSSES = {"uniform": outlier_exposure_loss, "energy": energy_exposure_loss}
"""The ``outlier_loss`` choices."""
OUTLIER_WEIGHTS = {"uniform": 0.5, "energy": 0.1}
"""The default ``outlier_weight`` of each ``outlier_loss`` (0.1: Liu et al.'s energy weight)."""


def exposure_loss(kind: str, weight: float, label_smoothing: float = 0.0) -> ComputeLoss:
    """The outlier term named by ``outlier_loss`` (:data:`OUTLIER_LOSSES`)."""
    if kind not in OUTLIER_LOSSES:
        raise ValueError(f"outlier_loss must be one of {tuple(OUTLIER_LOSSES)}, not {kind!r}")
    return OUTLIER_LOSSES[kind](weight, label_smoothing)


def default_loss(settings: FitSettings, num_classes: int) -> ComputeLoss:
    """Plain cross-entropy, or its MixUp/CutMix version when the settings ask for mixing."""
    mix = batch_mixer(settings, num_classes)
    if mix is not None:
        return mixing_loss(mix, settings.label_smoothing)
    return cross_entropy_loss(settings.label_smoothing)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: DataLoader,
    cancel: CancelToken | None = None,
    compute: Compute = Compute(),
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every sample of ``loader`` (model in eval mode)."""
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        with compute.autocast():
            logits = model(compute.batch(images))
        all_logits.append(logits.float().cpu().numpy())
        all_labels.append(labels.numpy())
    if not all_logits:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(all_logits), np.concatenate(all_labels)


def validate(
    model: torch.nn.Module,
    loader: DataLoader,
    class_names: list[str],
    real_class: str,
    cancel: CancelToken | None = None,
    compute: Compute = Compute(),
) -> dict[str, Any]:
    """The full metric report of ``model`` on ``loader``, plus ``loss``."""
    logits, labels = predict(model, loader, cancel, compute)
    report = classification_report(labels, softmax(logits), class_names, real_class)
    report["loss"] = float(
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    )
    return report


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    compute_loss: ComputeLoss,
    *,
    epoch: int,
    emit: EventWriter,
    cancel: CancelToken,
    grad_clip: float = 0.0,
    compute: Compute = Compute(),
    average: WeightAverage | None = None,
    sam: float = 0.0,
) -> dict[str, float]:
    """One pass over ``loader``; raises :class:`Cancelled` between batches when asked.

    ``average``, when given, is updated after every optimizer step; ``sam`` > 0 takes each
    step's gradient sharpness-aware with that radius (:mod:`training.sam`).
    """
    model.train()
    total_loss, correct, seen, lr_sum = 0.0, 0, 0, 0.0
    started = time.perf_counter()
    steps = len(loader)
    for step, (images, targets) in enumerate(loader, start=1):
        if cancel.is_set():
            raise Cancelled
        targets = compute.targets(targets)
        images = compute.batch(images)
        randomness = RandomState() if sam else None
        with compute.autocast():
            loss, logits = compute_loss(model, images, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if randomness is not None:
            again = partial(_loss_only, compute_loss, model, images, targets, compute)
            sharpness_aware_gradients(model, sam, randomness, again)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        lr_sum += optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update(model, scheduler.last_epoch)
        batch = len(targets)
        total_loss += float(loss.item()) * batch
        correct += int((logits.argmax(1) == targets).sum().item())
        seen += batch
        elapsed = time.perf_counter() - started
        rate = seen / elapsed if elapsed > 0 else 0.0
        emit(
            "progress",
            {
                "phase": "train",
                "done": step,
                "total": steps,
                "loss": total_loss / seen,
                "images_per_s": rate,
                "eta_s": (steps - step) * elapsed / step,
                "lr": optimizer.param_groups[0]["lr"],
            },
            epoch=epoch,
            step=step,
        )
    elapsed = time.perf_counter() - started
    return {
        "train_loss": total_loss / max(1, seen),
        "train_acc": correct / max(1, seen),
        "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
        "epoch_s": elapsed,
        "lr": lr_sum / max(1, steps),
    }


def _loss_only(
    compute_loss: ComputeLoss,
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    compute: Compute,
) -> torch.Tensor:
    """The loss of one batch (under ``compute``'s autocast), without its logits."""
    with compute.autocast():
        return compute_loss(model, images, targets)[0]


def _is_better(score: float | None, best: float | None, mode: str) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    if best is None:
        return True
    return score > best if mode == "max" else score < best


def epoch_row(epoch: int, train: dict[str, float], val: dict[str, Any]) -> dict:
    """The flat metrics.csv / ``metric`` event row of one epoch (``lr``: the epoch's mean)."""
    row: dict[str, Any] = {"epoch": epoch, **train}
    row.update(
        {
            "val_loss": val["loss"],
            "val_acc": val["accuracy"],
            "val_auc": val["auc"],
            "val_ece": val["ece"],
            "val_macro_f1": val["macro_f1"],
        }
    )
    for name, stats in val["per_class"].items():
        for key in ("precision", "recall", "f1"):
            row[f"val_{key}_{name}"] = stats[key]
    return row


def fit(
    model: torch.nn.Module,
    run: RunDir,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: FitSettings,
    *,
    class_names: list[str],
    real_class: str,
    emit: EventWriter,
    cancel: CancelToken,
    resume: bool = False,
    compute_loss: ComputeLoss | None = None,
    extra_metrics: Callable[[], dict[str, Any]] | None = None,
    stage: str | None = None,
) -> dict[str, Any]:
    """Train for ``settings.epochs`` with validation, checkpoints and early stopping.

    Args:
        stage: a name for this fit when a job calls ``fit`` several times (pruning steps); it
            keys the checkpoint folder and metrics rows so each stage resumes on its own.

    Returns:
        ``{"best_epoch", "best": {metric: value}, "epochs_run", "cancelled", "stopped_early"}``.
    """
    compute_loss = compute_loss or default_loss(settings, len(class_names))
    compute = Compute.of(settings)
    evaluation = Compute(settings.channels_last, "fp32", compute.device)
    compute.prepare(model)
    emit.log(f"computing on {describe_device(compute.device)}, {settings.precision}")
    optimizer = make_optimizer(model, settings)
    steps_per_epoch = max(1, len(train_loader))
    total = settings.epochs * steps_per_epoch
    warmup = int(settings.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, settings.schedule)
    )
    mode = MONITORS[settings.monitor]
    checkpoint_dir = run.checkpoint_dir if stage is None else run.path / f"checkpoint-{stage}"
    suffix = "" if stage is None else f"-{stage}"
    state = {"best": None, "best_epoch": None, "since_best": 0, "best_row": {}}
    start_epoch = 1
    average = WeightAverage(model, settings.ema) if settings.ema else None
    kept = average.module if average else model  # the model that is validated and saved
    if resume and has_checkpoint(checkpoint_dir):
        saved = load_checkpoint(
            checkpoint_dir,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            average=average.module if average else None,
        )
        state.update(saved["extra"])
        start_epoch = saved["epoch"] + 1
        emit.log(f"resumed after epoch {saved['epoch']} from {checkpoint_dir.name}")
    try:
        stopped_early = False
        for epoch in range(start_epoch, settings.epochs + 1):
            set_epoch(train_loader, epoch)
            try:
                train = train_one_epoch(
                    model,
                    train_loader,
                    optimizer,
                    scheduler,
                    compute_loss,
                    epoch=epoch,
                    emit=emit,
                    cancel=cancel,
                    grad_clip=settings.grad_clip,
                    compute=compute,
                    average=average,
                    sam=settings.sam,
                )
                emit("progress", {"phase": "validate", "done": 0, "total": 1}, epoch=epoch)
                val = validate(kept, val_loader, class_names, real_class, cancel, evaluation)
            except Cancelled:
                emit.log(f"cancelled during epoch {epoch}; resume continues from epoch {epoch}")
                return {**_summary(state, epoch - 1), "cancelled": True, "stopped_early": False}
            row = epoch_row(epoch, train, val)
            if stage is not None:
                row = {"stage": stage, **row}
            if extra_metrics:
                row.update(extra_metrics())
            score = row.get(settings.monitor)
            save_weights(kept, run.path / f"last{suffix}.safetensors")
            if _is_better(score, state["best"], mode):
                state.update(best=score, best_epoch=epoch, since_best=0, best_row=_plain(row))
                path = save_weights(kept, run.path / f"best{suffix}.safetensors")
                emit("artifact", {"kind": "weights", "path": str(path), "epoch": epoch})
            else:
                state["since_best"] += 1
            run.append_metrics(row)
            emit("metric", _plain(row), epoch=epoch)
            save_checkpoint(
                checkpoint_dir,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                epoch=epoch,
                extra=state,
                average=average.module if average else None,
            )
            if settings.early_stop and state["since_best"] >= settings.early_stop:
                emit.log(
                    f"early stop: no better {settings.monitor} for {settings.early_stop} epochs"
                )
                stopped_early = True
                break
        return {
            **_summary(state, settings.epochs),
            "cancelled": False,
            "stopped_early": stopped_early,
        }
    finally:
        model.to("cpu")  # callers go on on the CPU: pruning steps, test figures, export


def _summary(state: dict[str, Any], epochs_run: int) -> dict[str, Any]:
    return {"best_epoch": state["best_epoch"], "best": state["best_row"], "epochs_run": epochs_run}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}


def settings_from_config(config: dict[str, Any]) -> FitSettings:
    """The :class:`FitSettings` fields present in a job config."""
    names = set(asdict(FitSettings()).keys()) - {"extra"}
    return FitSettings(**{k: config[k] for k in names if k in config})
