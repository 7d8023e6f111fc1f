"""The learning-curve job: the same fine-tune recipe on nested shares of the train split.

Each point is an ordinary fine-tune run (``train_share``: a smaller share lies inside a larger one,
val and test are the same for every point) in ``<out>/<name>-share-<s>``, scored on the one test
split. ``<out>/curve.json`` holds the points, the power-law fit of error on training images and
what it predicts (:func:`core.learning_curve.read_curve`): does more data help, and how much would
``target_acc`` need? It is rewritten after every point, so the Models page shows a curve in
progress; resume skips the finished points and continues the unfinished one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.events import EventWriter
from core.learning_curve import CURVE_FILE, parse_shares, read_curve
from training.config import FINETUNE_DEFAULTS, check_range, resolve, validate_finetune
from training.control import CancelToken
from training.rundir import RunDir, write_json_atomic

CURVE_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in FINETUNE_DEFAULTS.items() if k != "train_share"},
    "kind": "curve",
    "shares": [0.25, 0.5, 1.0],
    "target_acc": None,
}


def point_folder(out: Path, share: float) -> Path:
    """The run folder of one point: ``<out>/<out name>-share-<share>``."""
    return out / f"{out.name}-share-{share:g}"


def point_config(config: dict[str, Any], share: float) -> dict[str, Any]:
    """The fine-tune job config of the point at ``share``."""
    body = {k: v for k, v in config.items() if k not in ("kind", "shares", "target_acc", "job")}
    out = Path(config["out"]).expanduser().resolve()
    return {**body, "kind": "finetune", "train_share": share, "out": str(point_folder(out, share))}


def validate_curve(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every option checked (the points' fine-tune options too)."""
    config = resolve(config, CURVE_DEFAULTS)
    config["shares"] = parse_shares(config["shares"])
    if not config["target_acc"]:
        config["target_acc"] = None  # the form's 0 = none
    else:
        check_range(config, "target_acc", 0.5, 0.99999)
    if not config["test"] or config["test"] <= 0:
        raise UserError("a learning curve scores every point on the test split: give it a share")
    validate_finetune(point_config(config, config["shares"][-1]))
    return config


def run(config: dict[str, Any], emit: EventWriter, cancel: CancelToken | None = None) -> dict:
    """Train every point (skipping finished ones), then fit and record the curve."""
    from training import finetune

    config = validate_curve(config)
    cancel = cancel or CancelToken()
    out = Path(config["out"]).expanduser().resolve()
    if out.is_dir() and any(out.iterdir()) and not config["resume"]:
        raise UserError(f"{out} is not empty: resume the curve there or choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", config)
    points: list[dict[str, Any]] = []
    body = record(out, config, points, emit)  # the Models page knows the folder as a curve now
    shares = config["shares"]
    for number, share in enumerate(shares, start=1):
        folder = point_folder(out, share)
        summary = finished_summary(folder)
        if summary is None:
            emit.log(f"learning curve point {number} of {len(shares)}: a {share:g} share")
            child = {**point_config(config, share), "resume": folder.is_dir()}
            with emit.file_scope():  # each point's events.jsonl gets its own events only
                summary = finetune.run(child, emit, cancel)
            if summary.get("cancelled"):
                return {"curve_dir": str(out), "cancelled": True, "points": points}
        else:
            emit.log(f"learning curve point {number} of {len(shares)}: {folder.name} is finished")
        points.append(point_of(folder, share, summary))
        body = record(out, config, points, emit)
    emit.log(body["verdict"])
    return {"curve_dir": str(out), "cancelled": False, **body}


def finished_summary(folder: Path) -> dict[str, Any] | None:
    """The summary of a finished point's run, ``None`` when it has not finished."""
    try:
        run = RunDir(folder).info()
    except (UserError, OSError, ValueError):
        return None
    return run.get("summary") if run.get("status") == "done" else None


def point_of(folder: Path, share: float, summary: dict[str, Any]) -> dict[str, Any]:
    """One point of the curve: its share, training images and scores."""
    split = json.loads((folder / "split.json").read_text(encoding="utf-8"))
    return {
        "share": share,
        "n_train": len(split["splits"]["train"]),
        "test_acc": summary.get("test_acc"),
        "val_acc": summary.get("val_acc"),
        "test_n": summary.get("test_n"),
        "run_dir": folder.name,
    }


def record(
    out: Path, config: dict[str, Any], points: list[dict[str, Any]], emit: EventWriter
) -> dict[str, Any]:
    """Write ``curve.json`` for the points so far; returns its body (the fit needs 2 points)."""
    scored = [p for p in points if p["test_acc"] is not None]
    body: dict[str, Any] = {
        "data": config["data"],
        "arch": config["arch"],
        "shares": config["shares"],
        "points": points,
    }
    if len(scored) >= 2:
        body.update(
            read_curve(
                [p["n_train"] for p in scored],
                [p["test_acc"] for p in scored],
                config["target_acc"],
                [p["test_n"] for p in scored],
            )
        )
    else:
        body["verdict"] = f"{len(scored)} of {len(config['shares'])} points trained"
    write_json_atomic(out / CURVE_FILE, body)
    emit("artifact", {"kind": "curve", "path": str(out / CURVE_FILE)})
    return body
