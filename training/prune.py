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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import UserError
from core.events import EventWriter
from core.models import ModelDescription, load_model, read_safetensors, save_weights
from core.preprocess import AugmentSpec
from core.pruning import (
    HISTORY_FILE,
    IMPORTANCES,
    PruningRecord,
    check_prunable,
    count_stats,
    load_history,
    prune_to_target,
    replay_history,
    save_history,
)
from training.common import REAL_CLASS, seed_everything, set_threads
from training.config import check_range, read_split, resolve
from training.control import CancelToken
from training.data import ImageDataset, make_loader
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
    "lr": 1e-3,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "early_stop": 0,
    "monitor": "val_acc",
    "max_train": None,
    "seed": 0,
    "workers": 0,
    "threads": 0,
    "resume": False,
    "workspace": None,
}
RUN_FILES = ("model.json", "split.json")


def require_run(
    path: str | Path, role: str, weights: str = "best", files: tuple[str, ...] = RUN_FILES
) -> Path:
    """The resolved run folder ``path``; a :class:`UserError` naming every missing file.

    Args:
        role: how the message names the run (``source``, ``teacher``, ``student``).
        files: the files besides ``<weights>.safetensors`` the job needs.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"{role} run {folder} does not exist or is not a folder")
    needed = (*files, f"{weights}.safetensors")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{role} run {folder} is incomplete: {', '.join(missing)} missing "
            "(is the run finished? was it copied completely?)"
        )
    return folder


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
    if config["importance"] not in IMPORTANCES:
        raise UserError(f"importance must be one of {IMPORTANCES}, not {config['importance']!r}")
    if config["max_train"] is not None:
        check_range(config, "max_train", 1, 10**9)
    require_run(config["run"], "source", config["weights"])
    return config


def subset(samples: list, limit: int | None, seed: int) -> list:
    """At most ``limit`` samples, a seeded random choice (all of them when ``limit`` is None)."""
    if limit is None or len(samples) <= limit:
        return samples
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))
    return [samples[i] for i in sorted(order[:limit].tolist())]


def make_loaders(train_set: ImageDataset, val_set: ImageDataset, config: dict[str, Any]):
    """``(train_loader, val_loader)`` with the job's batch size, seed, sampling and workers."""
    train = make_loader(
        train_set,
        batch_size=config["batch_size"],
        train=True,
        seed=config["seed"],
        balanced=config.get("balanced", False),
        workers=config["workers"],
    )
    return train, make_loader(val_set, batch_size=2 * config["batch_size"], train=False)


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


def val_row(model, loader, description: ModelDescription, stage: str, step: int, cancel) -> dict:
    """The metrics.csv row of a model right after pruning (``epoch`` 0, no training columns)."""
    report = validate(model, loader, description.class_names, description.real_class, cancel)
    row = epoch_row(0, {}, report, 0.0)
    row.pop("lr")
    return {"stage": stage, **row, "step": step}


def start_record(parent: Path, description: ModelDescription, model) -> PruningRecord:
    """A new history: the parent's own steps (inherited) when the parent was pruned."""
    if description.pruning_history:
        inherited = load_history(parent / description.pruning_history)
        for step in inherited.steps:
            step.inherited = True
        return inherited
    macs, params = count_stats(model, description.preprocess.input_size)
    return PruningRecord(description.arch, description.preprocess.input_size, macs, params)


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Run a prune job; returns the summary also stored in run.json."""
    config = validate_prune(config)
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    parent = require_run(config["run"], "source", config["weights"])
    model, parent_description = load_model(parent, config["weights"])
    size = parent_description.preprocess.input_size
    check_prunable(model, size, parent_description.arch)
    splits = {name: read_split(parent / "split.json", name) for name in ("train", "val", "test")}
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
    class_names = description.class_names
    train_samples = subset(splits["train"], config["max_train"], config["seed"])
    train_loader, val_loader = make_loaders(
        ImageDataset(
            train_samples,
            class_names,
            description.preprocess,
            parent_augment(parent),
            seed=config["seed"],
        ),
        ImageDataset(splits["val"], class_names, description.preprocess),
        config,
    )
    history_path = run_dir.path / HISTORY_FILE
    record = start_record(parent, parent_description, model)
    inherited = len(record.steps)
    if config["resume"] and history_path.is_file():
        record = load_history(history_path)
    parent_macs, parent_params = count_stats(model, size)
    emit.log(
        f"pruning {description.arch} ({parent_macs:,} MACs, {parent_params:,} params) to "
        f"{config['macs_ratio']:.0%} of its MACs in {config['steps']} step(s), "
        f"{config['epochs']} epoch(s) each, {len(train_samples)} training images"
    )
    run_dir.append_metrics(
        {
            **val_row(model, val_loader, description, "step0", 0, cancel),
            "macs": parent_macs,
            "params": parent_params,
        }
    )
    settings = settings_from_config(config)
    result: dict[str, Any] = {"cancelled": False, "best_epoch": 0, "epochs_run": 0, "best": {}}
    for k in range(1, config["steps"] + 1):
        stage = f"step{k}"
        if cancel.is_set():
            emit.log(f"cancelled before {stage}; resume continues from there")
            result = {**result, "cancelled": True}
            break
        done = [s for s in record.steps[inherited:] if s.step == k]
        if done:
            replay_history(model, done[0].history, size)
            step = done[0]
            emit.log(f"{stage}: replayed the recorded pruning ({step.macs:,} MACs)")
        else:
            step = _prune_step(model, k, config, parent_macs, parent_params, train_loader, emit)
            model = step.model
            step = step.step
            record.steps.append(step)
            save_history(record, history_path)
        figures = {"step": k, "macs": step.macs, "params": step.params}
        row = {**val_row(model, val_loader, description, stage, k, cancel), **figures}
        row["macs_ratio"] = step.macs / parent_macs
        run_dir.append_metrics(row)
        emit("metric", row, epoch=0, step=k)
        if config["epochs"] == 0:
            save_weights(model, run_dir.path / f"best-{stage}.safetensors")
            save_weights(model, run_dir.path / f"last-{stage}.safetensors")
            result = {**result, "best": {k: v for k, v in row.items() if k.startswith("val_")}}
            continue
        result = fit(
            model,
            run_dir,
            train_loader,
            val_loader,
            dataclasses.replace(settings, epochs=config["epochs"]),
            class_names=class_names,
            real_class=description.real_class or REAL_CLASS,
            emit=emit,
            cancel=cancel,
            resume=config["resume"],
            extra_metrics=lambda f=figures: dict(f),
            stage=stage,
        )
        if result["cancelled"]:
            break
        model.load_state_dict(read_safetensors(run_dir.path / f"best-{stage}.safetensors"))
    if not result["cancelled"]:
        last = f"step{config['steps']}"
        for name in ("best", "last"):
            shutil.copyfile(
                run_dir.path / f"{name}-{last}.safetensors", run_dir.path / f"{name}.safetensors"
            )
    summary = finish(run_dir, description, splits["test"], result, emit, cancel)
    if result["cancelled"]:
        return summary
    extra = _lineage_summary(record, inherited, parent, parent_macs, parent_params, config)
    run_dir.update(summary=extra)
    return {**summary, **extra}


def _prune_step(model, k, config, parent_macs, parent_params, train_loader, emit):
    """Prune a copy of ``model`` to step ``k``'s share of the parent's MACs (and params)."""
    share = config["macs_ratio"] ** (k / config["steps"])
    params_share = (
        config["params_ratio"] ** (k / config["steps"]) if config["params_ratio"] else None
    )
    gradients = None
    if config["importance"] == "taylor":
        gradients = taylor_gradients(model, train_loader, config["taylor_batches"])
    size = train_loader.dataset.spec.input_size

    def on_trial(ratio: float, macs: int, params: int) -> None:
        emit.log(f"step{k}: channel ratio {ratio:.3f} -> {macs / parent_macs:.3f} of the MACs")

    found = prune_to_target(
        model,
        size,
        macs_target=share * parent_macs,
        params_target=params_share * parent_params if params_share else None,
        importance=config["importance"],
        round_to=config["round_to"],
        tolerance=config["tolerance"],
        step=k,
        gradients=gradients,
        on_trial=on_trial,
    )
    if not found.reached:
        emit.log(
            f"step{k}: the target {share:.3f} of the MACs was not reached exactly; using "
            f"{found.step.macs / parent_macs:.3f}",
            "warning",
        )
    return found


def _lineage_summary(record, inherited, parent, parent_macs, parent_params, config) -> dict:
    """Figures of the whole pruning for run.json: per step, and relative to the parent."""
    steps = record.steps[inherited:]
    final = steps[-1]
    run_json = parent / "run.json"
    parent_summary = RunDir(parent).info().get("summary", {}) if run_json.is_file() else {}
    out = {
        "parent_macs": parent_macs,
        "parent_params": parent_params,
        "macs_ratio": final.macs / parent_macs,
        "params_ratio": final.params / parent_params,
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
