"""The fine-tune job: train any timm architecture on a folder-per-class data set.

``run(config, emit, cancel)`` indexes the data, makes seeded stratified splits, trains with the
shared loop (AdamW, cosine/one-cycle, optional label smoothing, class-balanced sampling, JPEG and
down-scaling augmentation, early stopping), then evaluates the best weights on the test split.
"""

from __future__ import annotations

from typing import Any

from core.events import EventWriter
from core.models import ModelDescription, create_model, load_model
from core.preprocess import AugmentSpec
from training.common import (
    REAL_CLASS,
    evaluate_samples,
    headline,
    make_loaders,
    model_summary,
    prepare_splits,
    preprocess_from_config,
    seed_everything,
    set_threads,
)
from training.config import outlier_classes, validate_finetune, write_split
from training.control import CancelToken
from training.data import ImageDataset
from training.loop import exposure_loss, fit, settings_from_config
from training.rundir import RunDir


def augment_from_config(config: dict[str, Any]) -> AugmentSpec:
    return AugmentSpec(
        hflip=config["hflip"],
        crop_prob=config["crop_prob"],
        jpeg_prob=config["jpeg_prob"],
        downscale_prob=config["downscale_prob"],
    )


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Run a fine-tune job; returns the summary also stored in run.json."""
    config = validate_finetune(config)
    cancel = cancel or CancelToken()
    set_threads(config["threads"])
    splits, class_names, root = prepare_splits(config, emit, cancel)
    run_dir = RunDir.create(config["out"], kind="finetune", config=config, resume=config["resume"])
    emit.add_file(run_dir.events_path)
    spec = preprocess_from_config(config)
    description = ModelDescription(
        arch=config["arch"],
        class_names=class_names,
        preprocess=spec,
        real_class=REAL_CLASS,
        model_kwargs=dict(config["model_kwargs"]),
    )
    description.save(run_dir.path)
    write_split(run_dir.split_path, root, config["seed"], splits)
    emit.log(
        f"{config['arch']} on {root.name}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        + f" images, classes {class_names}"
    )
    seed_everything(config["seed"])
    model = create_model(
        config["arch"], len(class_names), config["pretrained"], **config["model_kwargs"]
    )
    outliers = outlier_classes(config)
    train_set = ImageDataset(
        splits["train"],
        class_names,
        spec,
        augment_from_config(config),
        seed=config["seed"],
        outliers=outliers,
    )
    val_set = ImageDataset(splits["val"], class_names, spec)
    result = fit(
        model,
        run_dir,
        *make_loaders(train_set, val_set, config),
        settings_from_config(config),
        class_names=class_names,
        real_class=REAL_CLASS,
        emit=emit,
        cancel=cancel,
        resume=config["resume"],
        compute_loss=(
            exposure_loss(
                config["outlier_loss"], config["outlier_weight"], config["label_smoothing"]
            )
            if outliers
            else None
        ),
    )
    return finish(run_dir, description, splits["test"], result, emit, cancel)


def finish(
    run_dir: RunDir,
    description: ModelDescription,
    test_samples: list,
    result: dict[str, Any],
    emit: EventWriter,
    cancel: CancelToken,
) -> dict[str, Any]:
    """Evaluate the best weights on the test split and record the run's summary."""
    if result["cancelled"]:
        run_dir.update(status="cancelled")
        return {"run_dir": str(run_dir.path), **result}
    best_path = run_dir.path / "best.safetensors"
    model, _ = load_model(run_dir.path, "best", description=description)
    emit("progress", {"phase": "test", "done": 0, "total": 1})
    test = evaluate_samples(model, description, test_samples, cancel)
    summary = {
        **model_summary(model, description, best_path),
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        **{k: v for k, v in result["best"].items() if k.startswith("val_") and "_f1_" not in k},
        **headline(test, "test"),
    }
    if test:
        summary["test_report"] = test
    run_dir.update(status="done", summary=summary)
    emit("artifact", {"kind": "weights", "path": str(best_path)})
    return {"run_dir": str(run_dir.path), "cancelled": False, **summary}
