"""Job configs: defaults, validation with actionable messages, and shared pieces (data splits)."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from core.errors import UserError

FINETUNE_DEFAULTS: dict[str, Any] = {
    "kind": "finetune",
    "data": None,
    "out": None,
    "arch": "mobilenetv3_small_100",
    "pretrained": "none",
    "img_size": 64,
    "resize_mode": "resize_crop",
    "resize_size": None,
    "mean": None,
    "std": None,
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 0.5,
    "label_smoothing": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "mix_prob": 1.0,
    "balanced": False,
    "hflip": True,
    "crop_prob": 0.5,
    "jpeg_prob": 0.0,
    "downscale_prob": 0.0,
    "early_stop": 0,
    "monitor": "val_macro_f1",
    "channels_last": True,
    "precision": "fp32",
    "device": "auto",
    "ema": 0.0,
    "sam": 0.0,
    "seed": 0,
    "val": 0.1,
    "test": 0.1,
    "leave_out": None,
    "outlier_class": None,
    "outlier_weight": None,  # by outlier_loss: OUTLIER_WEIGHTS
    "outlier_loss": "uniform",
    "train_share": 1.0,
    "workers": 0,
    "threads": 0,
    "resume": False,
    "model_kwargs": {},
    "workspace": None,
}


def resolve(
    config: dict[str, Any], defaults: dict[str, Any], required: tuple[str, ...] = ("data", "out")
) -> dict[str, Any]:
    """Defaults filled in; unknown keys are an error (a typo must not silently do nothing)."""
    unknown = sorted(set(config) - set(defaults) - {"job"})
    if unknown:
        raise UserError(
            f"unknown {defaults['kind']} option(s) {unknown}; known: {sorted(defaults)}"
        )
    merged = {**defaults, **{k: v for k, v in config.items() if v is not None}}
    for key in required:
        if not merged.get(key):
            raise UserError(f"a {defaults['kind']} job needs '{key}'")
    return merged


def check_range(config: dict[str, Any], key: str, low: float, high: float) -> None:
    value = config[key]
    if not isinstance(value, int | float) or not low <= value <= high:
        raise UserError(f"{key} must be between {low} and {high}, not {value!r}")


def check_compute(config: dict[str, Any]) -> None:
    """The optimizer, ``precision``, ``device``, weight-average (``ema``) and sharpness-aware
    (``sam``) options of every training job (a GPU named but not there is refused here, before
    any work starts)."""
    from training.device import resolve_device
    from training.loop import OPTIMIZERS, PRECISIONS

    for key, choices in (("optimizer", OPTIMIZERS), ("precision", PRECISIONS)):
        if config[key] not in choices:
            raise UserError(f"{key} must be one of {choices}, not {config[key]!r}")
    check_range(config, "ema", 0, 0.99999)
    check_range(config, "sam", 0, 10)
    resolve_device(config["device"])


def check_mixing(config: dict[str, Any]) -> None:
    """MixUp / CutMix options (fine-tune and distill)."""
    check_range(config, "mixup", 0, 10)
    check_range(config, "cutmix", 0, 10)
    check_range(config, "mix_prob", 0, 1)


def validate_finetune(config: dict[str, Any]) -> dict[str, Any]:
    config = resolve(config, FINETUNE_DEFAULTS)
    check_range(config, "epochs", 1, 10_000)
    check_range(config, "batch_size", 1, 4096)
    check_range(config, "lr", 1e-7, 10)
    check_range(config, "img_size", 8, 4096)
    check_range(config, "label_smoothing", 0, 0.5)
    check_mixing(config)
    check_range(config, "val", 0.01, 0.5)
    check_range(config, "test", 0.0, 0.5)
    check_range(config, "train_share", 0.01, 1)
    check_outliers(config)
    for key in ("jpeg_prob", "downscale_prob", "crop_prob"):
        check_range(config, key, 0, 1)
    check_compute(config)
    data = Path(config["data"]).expanduser()
    if not data.exists():
        raise UserError(f"data folder {data} does not exist")
    if not data.is_dir():
        raise UserError(f"{data} is a file; --data needs a folder with one subfolder per class")
    return config


def outlier_classes(config: dict[str, Any]) -> list[str]:
    """The ``outlier_class`` names: one class, several separated by commas, or a list."""
    from core.datasets import class_list

    return class_list(config.get("outlier_class"))


def check_outliers(config: dict[str, Any]) -> None:
    """``outlier_class`` (outlier exposure: one generator or several, e.g. one per domain), its
    ``outlier_weight`` (default: by the loss) and ``outlier_loss``: not the real class, not the
    left-out one, and not with batch mixing or balanced sampling (both need a class)."""
    from training.loop import OUTLIER_WEIGHTS

    loss = config.get("outlier_loss", "uniform")
    if loss not in OUTLIER_WEIGHTS:
        choices = " or ".join(repr(name) for name in OUTLIER_WEIGHTS)
        raise UserError(f"outlier_loss must be {choices}, not {loss!r}")
    if config.get("outlier_weight") is None:
        config["outlier_weight"] = OUTLIER_WEIGHTS[loss]
    check_range(config, "outlier_weight", 0, 10)
    outliers = outlier_classes(config)
    if not outliers:
        return
    if "real" in outliers:
        raise UserError("the outlier class must be a generator, not 'real'")
    if config.get("leave_out") in outliers:
        raise UserError(
            f"{config['leave_out']!r} cannot be both the left-out and the outlier class"
        )
    if config.get("mixup") or config.get("cutmix"):
        raise UserError("outlier exposure does not combine with MixUp/CutMix: set both to 0")
    if config.get("balanced"):
        raise UserError("outlier exposure does not combine with balanced sampling")


def load_job_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"job file {path} does not exist")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"job file {path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or "kind" not in body:
        raise UserError(f"job file {path} must be a JSON object with a 'kind'")
    return body


def write_split(run_split_path: Path, root: Path, seed: int, splits: dict[str, list]) -> None:
    """Record the exact files of each split (relative to ``root``) in the run directory."""
    from training.rundir import write_json_atomic

    body = {
        "root": str(root),
        "seed": seed,
        "splits": {
            name: [str(s.path.relative_to(root)) for s in samples]
            for name, samples in splits.items()
        },
        "labels": {
            str(s.path.relative_to(root)): s.label for samples in splits.values() for s in samples
        },
    }
    write_json_atomic(run_split_path, body)


def split_record(run_dir: Path) -> dict[str, Any] | None:
    """What a bundle records of its training run's split (``training_split`` in bundle.json).

    The data folder's name, the seed and shares (``None`` where the run's config has none), the
    file count and :func:`core.splits.split_fingerprint` of each split, and the run's
    ``train_share`` and ``outlier_class`` where it has them; ``None`` when the run has no
    split.json.
    """
    from core.splits import split_fingerprint

    split_path, config_path = run_dir / "split.json", run_dir / "config.json"
    if not split_path.is_file():
        return None
    body = json.loads(split_path.read_text(encoding="utf-8"))
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    labels = body["labels"]
    record = {
        "data": Path(body["root"]).name,
        "seed": body.get("seed"),
        "val": config.get("val"),
        "test": config.get("test"),
        "files": {name: len(files) for name, files in body["splits"].items()},
        "fingerprints": {
            name: split_fingerprint((rel, labels[rel]) for rel in files)
            for name, files in body["splits"].items()
        },
    }
    if config.get("train_share", 1.0) < 1:  # a learning-curve run trained on part of train
        record["train_share"] = config["train_share"]
    outliers = outlier_classes(config)
    if outliers:  # trained toward "unknown"; in no val or test split
        record["outlier_class"] = ",".join(outliers)
    return record


def split_paths(run_split_path: Path, split: str) -> set[Path]:
    """The files of ``split`` recorded in a run's split.json (present or not on disk)."""
    body = json.loads(run_split_path.read_text(encoding="utf-8"))
    root = Path(body["root"])
    return {root / rel for rel in body["splits"].get(split, [])}


def read_split(run_split_path: Path, split: str, classes: Collection[str] | None = None) -> list:
    """The samples of ``split`` recorded in a run's split.json (missing files are an error).

    ``classes``: keep only samples of these classes (an outlier-exposure run's train split also
    holds its outlier class, which is not a class of its model).
    """
    from core.datasets import Sample

    if not run_split_path.is_file():
        raise UserError(f"{run_split_path.parent} has no split.json")
    body = json.loads(run_split_path.read_text(encoding="utf-8"))
    if split not in body["splits"]:
        raise UserError(f"split {split!r} is not recorded; the run has {sorted(body['splits'])}")
    root = Path(body["root"])
    samples = [Sample(root / rel, body["labels"][rel]) for rel in body["splits"][split]]
    if classes is not None:
        samples = [s for s in samples if s.label in classes]
    missing = [s.path for s in samples if not s.path.exists()]
    if missing:
        raise UserError(
            f"{len(missing)} image(s) of the run's {split} split are gone, e.g. {missing[0]}"
        )
    return samples
