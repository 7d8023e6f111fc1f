"""Pieces every training job shares: threads, data preparation, final evaluation and stats."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from core.datasets import DatasetIndex, Sample
from core.errors import UserError
from core.events import EventWriter
from core.models import ModelDescription, count_macs, count_params
from core.preprocess import PreprocessSpec
from core.runs import still_running_reason
from core.workspace import Workspace
from training.config import outlier_classes
from training.control import Cancelled, CancelToken
from training.data import ImageDataset, make_loader
from training.device import resolve_device
from training.loop import validate

REAL_CLASS = "real"


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads (0 = all cores)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run (and its resume) is reproducible."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_splits(
    config: dict[str, Any], emit: EventWriter, cancel: CancelToken
) -> tuple[dict[str, list[Sample]], list[str], Path]:
    """Index ``config['data']``, make its seeded splits and drop a left-out class. The splits
    are not stored in the index: the data set's own (Datasets page) stay as they are.

    Returns:
        ``(splits, class_names, root)`` where ``splits`` maps train/val/test to samples.
    """
    root = Path(config["data"]).expanduser().resolve()
    workspace = Workspace.resolve(config.get("workspace"))

    def progress(done: int, total: int) -> None:
        emit("progress", {"phase": "index", "done": done, "total": total})

    index = DatasetIndex.build(root, workspace, progress=progress, cancel=cancel)
    if index.last_build is not None and index.last_build.cancelled:
        raise Cancelled
    bad = index.errors()
    if bad:
        emit.log(f"{len(bad)} unreadable file(s) skipped, e.g. {bad[0][0]}: {bad[0][1]}", "warning")
    seeded = index.seeded_splits(seed=config["seed"], val=config["val"], test=config["test"])
    class_names = index.class_names
    outliers = outlier_classes(config)
    leave_out = config.get("leave_out")
    for option, name in [("--leave-out", leave_out)] + [("--outlier-class", o) for o in outliers]:
        if name and name not in class_names:
            raise UserError(f"{option} {name!r} is not a class of {root} ({class_names})")
    class_names = [c for c in class_names if c != leave_out and c not in outliers]
    splits = {
        name: [s for s in seeded[name] if s.label in class_names]
        for name in ("train", "val", "test")
    }
    for outlier in outliers:  # trained toward "unknown"; never validated or tested as a class
        extra = [s for s in seeded["train"] if s.label == outlier]
        splits["train"] += extra
        emit.log(
            f"outlier exposure: {len(extra)} {outlier} training images, weight "
            f"{config['outlier_weight']:g}"
        )
    share = config.get("train_share", 1.0)
    if share < 1:
        splits["train"] = _train_share(splits["train"], share, config["seed"], root)
        emit.log(f"training on {len(splits['train'])} images: a {share:g} share of the train split")
    if len(class_names) < 2:
        raise UserError(f"{root} needs at least two classes to train a detector")
    counts = {c: sum(s.label == c for s in splits["train"]) for c in class_names}  # no outliers
    small = [c for c, n in counts.items() if n < 1]
    if small or not splits["val"]:
        raise UserError(
            f"too few images to train and validate: train split counts {counts}, "
            f"{len(splits['val'])} validation images; add images to {', '.join(small) or 'the set'}"
        )
    return splits, class_names, root


def _train_share(samples: list[Sample], share: float, seed: int, root: Path) -> list[Sample]:
    """``samples`` cut to a seeded ``share`` per class (:func:`core.splits.take_share`), keyed
    by path inside ``root`` so the same files are kept wherever the data set lies."""
    from core.splits import take_share

    def key(sample: Sample) -> str:
        return sample.path.relative_to(root).as_posix()

    kept = {k for k, _ in take_share(((key(s), s.label) for s in samples), share, seed)}
    return [s for s in samples if key(s) in kept]


def preprocess_from_config(config: dict[str, Any]) -> PreprocessSpec:
    extra = {k: tuple(config[k]) for k in ("mean", "std") if config.get(k)}
    return PreprocessSpec(
        input_size=config["img_size"],
        resize_mode=config["resize_mode"],
        resize_size=config.get("resize_size"),
        **extra,
    )


def evaluate_samples(
    model: torch.nn.Module,
    description: ModelDescription,
    samples: list[Sample],
    cancel: CancelToken | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Metric report of a torch model on ``samples`` (empty dict when there are none)."""
    if not samples:
        return {}
    dataset = ImageDataset(samples, description.class_names, description.preprocess)
    loader = make_loader(dataset, batch_size=batch_size, train=False)
    return validate(model, loader, description.class_names, description.real_class, cancel)


def model_summary(model: torch.nn.Module, description: ModelDescription, weights: Path) -> dict:
    """Params, MACs and the weights file size: the figures the lineage table compares."""
    return {
        "arch": description.arch,
        "params": count_params(model),
        "macs": count_macs(model, description.preprocess.input_size),
        "size_bytes": weights.stat().st_size if weights.exists() else None,
    }


def headline(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The few numbers of a report that go into run.json's summary."""
    if not report:
        return {}
    return {
        f"{prefix}_acc": report["accuracy"],
        f"{prefix}_macro_f1": report["macro_f1"],
        f"{prefix}_auc": report["auc"],
        f"{prefix}_ece": report["ece"],
        f"{prefix}_n": report["n"],
    }


RUN_FILES = ("model.json", "split.json")
"""What a source run needs besides its weights (prune, distill, export)."""


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
    running = still_running_reason(folder)
    if running:
        raise UserError(f"{role} run {folder}: {running}")
    return folder


def subset(samples: list, limit: int | None, seed: int) -> list:
    """At most ``limit`` samples, a seeded random choice (all of them when ``limit`` is None)."""
    if limit is None or len(samples) <= limit:
        return samples
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))
    return [samples[i] for i in sorted(order[:limit].tolist())]


def make_loaders(train_set: ImageDataset, val_set: ImageDataset, config: dict[str, Any]):
    """``(train_loader, val_loader)`` with the job's batch size, seed, sampling and workers
    (pinned memory when the job trains on a GPU)."""
    pin = resolve_device(config.get("device", "cpu")).type == "cuda"
    train = make_loader(
        train_set,
        batch_size=config["batch_size"],
        train=True,
        seed=config["seed"],
        balanced=config.get("balanced", False),
        workers=config["workers"],
        pin_memory=pin,
    )
    val = make_loader(val_set, batch_size=2 * config["batch_size"], train=False, pin_memory=pin)
    return train, val
