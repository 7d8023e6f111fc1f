"""The prune job: iterative structured pruning of a trained run to a MACs target, with fine-tuning.

``run(config, emit, cancel)`` loads the parent run's best weights, then for step ``k = 1..N``
prunes to ``macs_ratio ** (k / N)`` of the parent's MACs (the per-layer channel ratio is searched
by :func:`core.pruning.prune_to_target`) and fine-tunes ``epochs`` epochs with the shared loop
(``stage="step<k>"``) on the parent's recorded split, continuing from the best weights of each
step. ``metrics.csv`` gets a row per step right after pruning (epoch 0) and per fine-tune epoch,
each with ``macs`` and ``params``. The child run holds ``pruning.json`` (the Torch-Pruning
history, replayed by ``core.models.load_model``), ``best``/``last`` weights, ``model.json``,
``split.json`` and ``run.json`` with ``parent`` = the source run. A killed job resumes: recorded
steps are replayed and the interrupted fine-tune continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from core.errors import UserError
from core.events import EventWriter
from core.models import ModelDescription, load_model, read_safetensors, save_weights
from core.preprocess import AugmentSpec
from core.pruning import (
    HISTORY_FILE,
    IMPORTANCES,
    PruneStep,
    PruningRecord,
    SearchResult,
    check_prunable,
    count_stats,
    load_history,
    prune_to_target,
    replay_history,
    save_history,
)
from training.common import (
    REAL_CLASS,
    make_loaders,
    require_run,
    seed_everything,
    set_threads,
    subset,
)
from training.config import check_compute, check_range, read_split, resolve
from training.control import CancelToken
from training.data import ImageDataset
from training.finetune import augment_from_config, finish
from training.loop import epoch_row, fit, settings_from_config, validate
from training.rundir import RunDir

PRUNE_DEFAULTS: dict[str, Any] = {
    "kind": "prune",
    "run": None,
    "out": None,
    "weights": "best",
    "macs_ratio": 0.5,
    "params_ratio": None,
    "steps": 3,
    "epochs": 2,
    "importance": "magnitude",
    "round_to": None,
    "tolerance": 0.02,
    "taylor_batches": 4,
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "early_stop": 0,
    "monitor": "val_macro_f1",
    "channels_last": True,
    "precision": "fp32",
    "device": "auto",
    "ema": 0.0,
    "sam": 0.0,
    "max_train": None,
    "seed": 0,
    "workers": 0,
    "threads": 0,
    "resume": False,
    "workspace": None,
}


def validate_prune(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every option checked before any work starts."""
    config = resolve(config, PRUNE_DEFAULTS, required=("run", "out"))
    for key, what in (("macs_ratio", "MACs"), ("params_ratio", "parameters")):
        value = config[key]
        if value is None and key == "params_ratio":
            continue
        if not isinstance(value, int | float) or not 0 < value < 1:
            raise UserError(
                f"{key} must be between 0 and 1 (exclusive): the share of the parent's {what} "
                f"to keep; not {value!r}"
            )
    if not isinstance(config["steps"], int) or config["steps"] < 1:
        raise UserError(f"steps must be a whole number of at least 1, not {config['steps']!r}")
    check_range(config, "steps", 1, 50)
    check_range(config, "epochs", 0, 10_000)
    check_range(config, "batch_size", 1, 4096)
    check_range(config, "lr", 1e-7, 10)
    check_range(config, "tolerance", 0.001, 0.5)
    check_compute(config)
    if config["importance"] not in IMPORTANCES:
        raise UserError(f"importance must be one of {IMPORTANCES}, not {config['importance']!r}")
    if config["max_train"] is not None:
        check_range(config, "max_train", 1, 10**9)
    require_run(config["run"], "source", config["weights"])
    return config


def parent_augment(parent: Path) -> AugmentSpec:
    """The augmentation the parent trained with (defaults when its config lacks the keys)."""
    try:
        config = RunDir(parent).config()
        return augment_from_config(config)
    except (OSError, KeyError, ValueError):
        return AugmentSpec()


def taylor_gradients(model: torch.nn.Module, loader, batches: int) -> dict[str, torch.Tensor]:
    """Cross-entropy gradients summed over ``batches`` training batches (Taylor importance)."""
    model.train()
    model.zero_grad(set_to_none=True)
    for index, (images, targets) in enumerate(loader):
        if index >= batches:
            break
        F.cross_entropy(model(images), targets).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def val_row(model, loader, description: ModelDescription, stage: str, cancel) -> dict[str, Any]:
    """The metrics.csv row of a model right after pruning (``epoch`` 0, no training columns)."""
    report = validate(model, loader, description.class_names, description.real_class, cancel)
    row = epoch_row(0, {"lr": 0.0}, report)
    row.pop("lr")
    return {"stage": stage, **row}


def start_record(parent: Path, description: ModelDescription, model) -> PruningRecord:
    """A new history: the parent's own steps (inherited) when the parent was pruned."""
    if description.pruning_history:
        inherited = load_history(parent / description.pruning_history)
        for step in inherited.steps:
            step.inherited = True
        return inherited
    macs, params = count_stats(model, description.preprocess.input_size)
    return PruningRecord(description.arch, description.preprocess.input_size, macs, params)


@dataclass
class PruneSession:
    """The state one prune job carries from step to step."""

    config: dict[str, Any]
    emit: EventWriter
    cancel: CancelToken
    run_dir: RunDir
    description: ModelDescription
    model: torch.nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    record: PruningRecord
    inherited: int
    parent_macs: int
    parent_params: int

    def prune(self, k: int) -> PruneStep:
        """Step ``k``'s pruning: replayed when a resumed job recorded it, else searched."""
        size = self.description.preprocess.input_size
        recorded = [s for s in self.record.steps[self.inherited :] if s.step == k]
        if recorded:
            replay_history(self.model, recorded[0].history, size)
            self.emit.log(f"step{k}: replayed the recorded pruning ({recorded[0].macs:,} MACs)")
            return recorded[0]
        found = self.search(k)
        self.model = found.model
        self.record.steps.append(found.step)
        save_history(self.record, self.run_dir.path / HISTORY_FILE)
        return found.step

    def search(self, k: int) -> SearchResult:
        """Prune a copy of the model to step ``k``'s share of the parent's MACs (and params)."""
        config, steps = self.config, self.config["steps"]
        share = config["macs_ratio"] ** (k / steps)
        params_share = config["params_ratio"] ** (k / steps) if config["params_ratio"] else None
        gradients = None
        if config["importance"] == "taylor":
            gradients = taylor_gradients(self.model, self.train_loader, config["taylor_batches"])

        def on_trial(ratio: float, macs: int, params: int) -> None:
            self.emit.log(
                f"step{k}: channel ratio {ratio:.3f} -> {macs / self.parent_macs:.3f} of the MACs"
            )

        found = prune_to_target(
            self.model,
            self.description.preprocess.input_size,
            macs_target=share * self.parent_macs,
            params_target=params_share * self.parent_params if params_share else None,
            importance=config["importance"],
            round_to=config["round_to"],
            tolerance=config["tolerance"],
            step=k,
            gradients=gradients,
            on_trial=on_trial,
        )
        if not found.reached:
            self.emit.log(
                f"step{k}: the target {share:.3f} of the MACs was not reached exactly; using "
                f"{found.step.macs / self.parent_macs:.3f}",
                "warning",
            )
        return found

    def record_pruned(self, k: int, step: PruneStep) -> dict[str, Any]:
        """Validate right after pruning; a metrics.csv row (``epoch`` 0) and a metric event."""
        figures = {"step": k, "macs": step.macs, "params": step.params}
        row = val_row(self.model, self.val_loader, self.description, f"step{k}", self.cancel)
        row.update(figures, macs_ratio=step.macs / self.parent_macs)
        self.run_dir.append_metrics(row)
        self.emit("metric", row, epoch=0, step=k)
        return row

    def fine_tune(self, k: int, figures: dict[str, Any]) -> dict[str, Any]:
        """``epochs`` epochs of the shared loop as stage ``step<k>``; keeps its best weights."""
        stage = f"step{k}"
        result = fit(
            self.model,
            self.run_dir,
            self.train_loader,
            self.val_loader,
            settings_from_config(self.config),
            class_names=self.description.class_names,
            real_class=self.description.real_class or REAL_CLASS,
            emit=self.emit,
            cancel=self.cancel,
            resume=self.config["resume"],
            extra_metrics=lambda: dict(figures),
            stage=stage,
        )
        if not result["cancelled"]:
            best = read_safetensors(self.run_dir.path / f"best-{stage}.safetensors")
            self.model.load_state_dict(best)
        return result

    def keep_as_is(self, k: int, row: dict[str, Any]) -> dict[str, Any]:
        """With ``epochs`` 0: the pruned weights are step ``k``'s best and last."""
        for name in ("best", "last"):
            save_weights(self.model, self.run_dir.path / f"{name}-step{k}.safetensors")
        best = {key: value for key, value in row.items() if key.startswith("val_")}
        return {"cancelled": False, "best_epoch": 0, "epochs_run": 0, "best": best}


def open_session(config: dict[str, Any], emit: EventWriter, cancel: CancelToken):
    """Load and check the parent, create the child run; returns ``(session, test samples)``."""
    parent = require_run(config["run"], "source", config["weights"])
    model, parent_description = load_model(parent, config["weights"])
    size = parent_description.preprocess.input_size
    check_prunable(model, size, parent_description.arch)
    classes = parent_description.class_names
    splits = {n: read_split(parent / "split.json", n, classes) for n in ("train", "val", "test")}
    if not splits["train"] or not splits["val"]:
        raise UserError(f"{parent} has an empty train or validation split; cannot fine-tune")
    run_dir = RunDir.create(
        config["out"], kind="prune", config=config, parent=str(parent), resume=config["resume"]
    )
    emit.add_file(run_dir.events_path)
    shutil.copyfile(parent / "split.json", run_dir.split_path)
    description = dataclasses.replace(parent_description, pruning_history=HISTORY_FILE)
    description.save(run_dir.path)
    seed_everything(config["seed"])
    train_samples = subset(splits["train"], config["max_train"], config["seed"])
    spec, classes = description.preprocess, description.class_names
    train_loader, val_loader = make_loaders(
        ImageDataset(train_samples, classes, spec, parent_augment(parent), seed=config["seed"]),
        ImageDataset(splits["val"], classes, spec),
        config,
    )
    record = start_record(parent, parent_description, model)
    inherited = len(record.steps)
    history_path = run_dir.path / HISTORY_FILE
    if config["resume"] and history_path.is_file():
        record = load_history(history_path)
    macs, params = count_stats(model, size)
    emit.log(
        f"pruning {description.arch} ({macs:,} MACs, {params:,} params) to "
        f"{config['macs_ratio']:.0%} of its MACs in {config['steps']} step(s), "
        f"{config['epochs']} epoch(s) each, {len(train_samples)} training images"
    )
    session = PruneSession(
        config,
        emit,
        cancel,
        run_dir,
        description,
        model,
        train_loader,
        val_loader,
        record,
        inherited,
        macs,
        params,
    )
    return session, splits["test"]


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Run a prune job; returns the summary also stored in run.json."""
    config = validate_prune(config)
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    session, test_samples = open_session(config, emit, cancel)
    run_dir = session.run_dir
    step0 = val_row(session.model, session.val_loader, session.description, "step0", cancel)
    run_dir.append_metrics(
        {**step0, "step": 0, "macs": session.parent_macs, "params": session.parent_params}
    )
    result: dict[str, Any] = {"cancelled": False, "best_epoch": 0, "epochs_run": 0, "best": {}}
    for k in range(1, config["steps"] + 1):
        if cancel.is_set():
            emit.log(f"cancelled before step{k}; resume continues from there")
            result = {**result, "cancelled": True}
            break
        step = session.prune(k)
        row = session.record_pruned(k, step)
        if config["epochs"] == 0:
            result = session.keep_as_is(k, row)
            continue
        result = session.fine_tune(k, {"step": k, "macs": step.macs, "params": step.params})
        if result["cancelled"]:
            break
    if not result["cancelled"]:
        last = f"step{config['steps']}"
        for name in ("best", "last"):
            shutil.copyfile(
                run_dir.path / f"{name}-{last}.safetensors", run_dir.path / f"{name}.safetensors"
            )
    summary = finish(run_dir, session.description, test_samples, result, emit, cancel)
    if result["cancelled"]:
        return summary
    extra = _lineage_summary(session, config)
    run_dir.update(summary=extra)
    return {**summary, **extra}


def _lineage_summary(session: PruneSession, config: dict[str, Any]) -> dict[str, Any]:
    """Figures of the whole pruning for run.json: per step, and relative to the parent."""
    steps = session.record.steps[session.inherited :]
    final = steps[-1]
    parent = Path(session.run_dir.info()["parent"])
    parent_summary = (
        RunDir(parent).info().get("summary", {}) if (parent / "run.json").is_file() else {}
    )
    out = {
        "parent_macs": session.parent_macs,
        "parent_params": session.parent_params,
        "macs_ratio": final.macs / session.parent_macs,
        "params_ratio": final.params / session.parent_params,
        "target_macs_ratio": config["macs_ratio"],
        "importance": config["importance"],
        "steps": [
            {"step": s.step, "macs": s.macs, "params": s.params, "channel_ratio": s.channel_ratio}
            for s in steps
        ],
    }
    if "test_acc" in parent_summary:
        out["parent_test_acc"] = parent_summary["test_acc"]
    return out
