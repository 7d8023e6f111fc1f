"""Structured pruning with Torch-Pruning: prune to a MACs target, record and replay the history.

A pruned model is never pickled. Its architecture is the original timm model plus the list of
channel removals Torch-Pruning made (``pruner.pruning_history()``: ``[module name, out-channel?,
indices]`` per pruned group). :func:`save_history` writes that list (with per-step figures) as
``pruning.json``; :func:`replay_pruning_history` rebuilds the dependency graph of a freshly
created model and applies the same removals, so ``load_model`` gets the exact pruned shapes and
loads the safetensors weights strictly.

Depthwise/grouped convolutions (MobileNet, EfficientNet) and squeeze-excitation blocks are
coupled by the dependency graph; the classifier is never pruned (the class count is fixed).
The graph is always traced in eval mode with autograd enabled (tracing follows ``grad_fn``).
Importing this module stays torch-free (the GUI reads :data:`IMPORTANCES`); torch and
Torch-Pruning load inside the functions.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    import torch

    from core.models import ModelDescription

HISTORY_FORMAT = "deepfake-studio/pruning"
HISTORY_VERSION = 1
HISTORY_FILE = "pruning.json"
IMPORTANCES = ("magnitude", "group_norm", "taylor", "lamp")
"""``magnitude``: L2 norm of each filter of the group's root layer; ``group_norm``: L2 norm over
all coupled layers of a group (DepGraph); ``taylor``: first-order Taylor (needs gradients);
``lamp``: layer-adaptive magnitude."""
MAX_STEP_RATIO = 0.85
"""The largest channel share one step may remove from a layer (keeps every layer non-empty)."""

HistoryEntry = list[Any]
"""``[module name, is out-channel pruning, [channel indices]]`` as Torch-Pruning records it."""


@dataclass
class PruneStep:
    """One recorded pruning step: the removals and the figures after them."""

    step: int
    channel_ratio: float
    macs: int
    params: int
    history: list[HistoryEntry] = field(default_factory=list)
    inherited: bool = False
    """True for steps copied from a parent run that was itself pruned."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "channel_ratio": self.channel_ratio,
            "macs": self.macs,
            "params": self.params,
            "inherited": self.inherited,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> PruneStep:
        return cls(
            step=int(body["step"]),
            channel_ratio=float(body["channel_ratio"]),
            macs=int(body["macs"]),
            params=int(body["params"]),
            history=[list(entry) for entry in body["history"]],
            inherited=bool(body.get("inherited", False)),
        )


@dataclass
class PruningRecord:
    """The content of ``pruning.json``."""

    arch: str
    input_size: int
    original_macs: int
    original_params: int
    steps: list[PruneStep] = field(default_factory=list)

    def history(self) -> list[HistoryEntry]:
        """Every removal of every step, in the order it must be replayed."""
        return [entry for step in self.steps for entry in step.history]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": HISTORY_FORMAT,
            "version": HISTORY_VERSION,
            "arch": self.arch,
            "input_size": self.input_size,
            "original_macs": self.original_macs,
            "original_params": self.original_params,
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> PruningRecord:
        if body.get("format") != HISTORY_FORMAT or body.get("version") != HISTORY_VERSION:
            raise UserError("pruning history is not a Deepfake Studio pruning.json (version 1)")
        return cls(
            arch=body["arch"],
            input_size=int(body["input_size"]),
            original_macs=int(body["original_macs"]),
            original_params=int(body["original_params"]),
            steps=[PruneStep.from_dict(s) for s in body["steps"]],
        )


def save_history(record: PruningRecord, path: Path) -> Path:
    """Write ``record`` as JSON atomically (a crash never leaves half a history)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.to_dict()), encoding="utf-8")
    tmp.replace(path)
    return path


def load_history(path: Path) -> PruningRecord:
    """Read a ``pruning.json``; a missing or damaged file is a :class:`UserError`."""
    if not path.is_file():
        raise UserError(f"{path.parent} has no {path.name}: the pruned architecture is unknown")
    try:
        return PruningRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is damaged: {exc}") from None


def example_input(input_size: int) -> torch.Tensor:
    import torch

    return torch.zeros(1, 3, input_size, input_size)


def build_graph(model: torch.nn.Module, input_size: int):
    """The Torch-Pruning dependency graph of ``model`` (traced in eval mode, autograd on)."""
    import torch
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unwrapped-parameter notices (ConvNeXt gamma)
            return tp.DependencyGraph().build_dependency(model, example_input(input_size))
    finally:
        model.train(was_training)


def classifier_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers that must keep their width: the classification head."""
    import torch

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, torch.nn.Module) and any(True for _ in head.parameters()):
        return [head]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1:]


def make_importance(name: str):
    """The Torch-Pruning importance criterion called ``name`` (see :data:`IMPORTANCES`)."""
    import torch_pruning as tp

    if name == "magnitude":
        return tp.importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=None)
    if name == "group_norm":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "lamp":
        return tp.importance.LAMPImportance(p=2)
    raise UserError(f"importance must be one of {IMPORTANCES}, not {name!r}")


def count_stats(model: torch.nn.Module, input_size: int) -> tuple[int, int]:
    """``(macs, params)`` of ``model`` for one image."""
    from core.models import count_macs, count_params

    return count_macs(model, input_size), count_params(model)


def prune_once(
    model: torch.nn.Module,
    input_size: int,
    importance: str,
    channel_ratio: float,
    round_to: int | None = None,
) -> list[HistoryEntry]:
    """Remove ``channel_ratio`` of the channels of every prunable group of ``model`` in place.

    Returns:
        The removals as JSON-ready history entries.
    """
    import torch
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            model,
            example_input(input_size),
            importance=make_importance(importance),
            pruning_ratio=channel_ratio,
            max_pruning_ratio=MAX_STEP_RATIO,
            ignored_layers=classifier_layers(model),
            round_to=round_to if round_to and round_to > 1 else None,
        )
        pruner.step()
    model.train(was_training)
    return [_plain_entry(entry) for entry in pruner.pruning_history()]


def _plain_entry(entry: Any) -> HistoryEntry:
    name, is_out, indices = entry
    return [str(name), bool(is_out), [int(i) for i in indices]]


def has_empty_layer(model: torch.nn.Module) -> bool:
    """True when pruning left a layer without channels (an unusable model)."""
    import torch

    layers = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)
    return any(
        isinstance(m, layers) and m.weight is not None and 0 in m.weight.shape
        for m in model.modules()
    )


@dataclass
class SearchResult:
    """The model pruned by :func:`prune_to_target` and how close it came."""

    model: torch.nn.Module
    step: PruneStep
    reached: bool


def prune_to_target(
    model: torch.nn.Module,
    input_size: int,
    *,
    macs_target: float,
    params_target: float | None = None,
    importance: str = "magnitude",
    round_to: int | None = None,
    tolerance: float = 0.02,
    max_trials: int = 10,
    step: int = 1,
    gradients: dict[str, torch.Tensor] | None = None,
    on_trial: Callable[[float, int, int], None] | None = None,
) -> SearchResult:
    """Search the per-layer channel ratio that brings MACs (and params) to their targets.

    Every trial prunes a copy of ``model``; ``model`` itself is left untouched. The objective
    ``max(macs / macs_target, params / params_target)`` falls as the ratio grows. The next ratio
    comes from the power law ``objective ~ (1 - ratio) ** 2`` fitted to the last trial, kept
    inside the bracket of ratios already known to be too low / too high (bisection otherwise).
    The search stops within ``tolerance`` of 1 and returns the trial closest to 1 that does not
    overshoot by more than ``tolerance`` (or the most pruned trial if the target is out of reach).

    Args:
        gradients: parameter gradients by name, restored on each copy (Taylor importance).
        on_trial: called with ``(ratio, macs, params)`` after each trial.
    """
    low, high = 0.0, MAX_STEP_RATIO
    trials: list[tuple[float, float, Trial]] = []  # (objective, ratio, trial)
    start = _objective(*count_stats(model, input_size), macs_target, params_target)
    ratio = _next_ratio(0.0, start, low, high)
    for _ in range(max_trials):
        trial = _pruned_copy(model, input_size, importance, ratio, round_to, gradients)
        if trial is None:  # a layer lost all its channels: too much
            high = ratio
            ratio = 0.5 * (low + high)
            continue
        if on_trial:
            on_trial(ratio, trial.macs, trial.params)
        objective = _objective(trial.macs, trial.params, macs_target, params_target)
        trials.append((objective, ratio, trial))
        if abs(objective - 1.0) <= tolerance:
            break
        if objective > 1.0:
            low = ratio
        else:
            high = ratio
        if high - low < 1e-3:  # channel counts are integers: the ratio cannot get closer
            break
        ratio = _next_ratio(ratio, objective, low, high)
    if not trials:
        raise UserError("every pruning trial emptied a layer; the model is too narrow to prune")
    within = [t for t in trials if t[0] <= 1.0 + tolerance]
    if within:
        objective, ratio, trial = min(within, key=lambda t: abs(t[0] - 1.0))
    else:
        objective, ratio, trial = min(trials, key=lambda t: t[0])
    record = PruneStep(step, ratio, trial.macs, trial.params, trial.history)
    return SearchResult(trial.model, record, bool(within))


@dataclass
class Trial:
    """A pruned copy of a model with its figures."""

    model: torch.nn.Module
    macs: int
    params: int
    history: list[HistoryEntry]


def _objective(macs: int, params: int, macs_target: float, params_target: float | None) -> float:
    """How far above its targets a model is (1 = on target, the larger ratio of the two)."""
    objective = macs / macs_target
    return max(objective, params / params_target) if params_target else objective


def _next_ratio(ratio: float, objective: float, low: float, high: float) -> float:
    """The ratio the power law predicts, or the bracket's middle when it falls outside."""
    guess = 1.0 - (1.0 - ratio) / math.sqrt(max(objective, 1e-9))
    if not low < guess < high:
        guess = 0.5 * (low + high)
    return guess


def _pruned_copy(
    model: torch.nn.Module,
    input_size: int,
    importance: str,
    ratio: float,
    round_to: int | None,
    gradients: dict[str, torch.Tensor] | None,
) -> Trial | None:
    """A copy of ``model`` pruned by ``ratio``, or ``None`` when a layer would be emptied."""
    trial = copy.deepcopy(model)
    if gradients:
        for name, param in trial.named_parameters():
            if name in gradients:
                param.grad = gradients[name].clone()
    history = prune_once(trial, input_size, importance, ratio, round_to)
    if has_empty_layer(trial):
        return None
    macs, params = count_stats(trial, input_size)
    return Trial(trial, macs, params, history)


def replay_history(model: torch.nn.Module, history: list[HistoryEntry], input_size: int) -> None:
    """Apply recorded removals to a freshly built ``model`` in place."""
    if not history:
        return
    names = dict(model.named_modules())
    missing = sorted({entry[0] for entry in history if entry[0] not in names})
    if missing:
        raise UserError(
            f"the pruning history names layers this architecture does not have ({missing[:3]}); "
            "it belongs to a different model"
        )
    graph = build_graph(model, input_size)
    try:
        graph.load_pruning_history([list(entry) for entry in history])
    except (IndexError, RuntimeError, ValueError) as exc:
        raise UserError(f"the pruning history does not fit this model: {exc}") from None


def replay_pruning_history(
    model: torch.nn.Module, path: Path, description: ModelDescription
) -> torch.nn.Module:
    """Turn a fresh ``description`` model into the pruned architecture recorded at ``path``."""
    record = load_history(Path(path))
    if record.arch != description.arch:
        raise UserError(
            f"{Path(path).name} was recorded for {record.arch}, but model.json says "
            f"{description.arch}"
        )
    replay_history(model, record.history(), record.input_size)
    return model


def check_prunable(model: torch.nn.Module, input_size: int, arch: str) -> None:
    """Raise a clear :class:`UserError` when Torch-Pruning cannot prune ``model``.

    A copy is traced and pruned by a small ratio; the pruned copy must still run and keep its
    output shape, and replaying the history on another copy must give the same shapes.
    """
    import torch

    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = reference(example_input(input_size)).shape
    trial = copy.deepcopy(model)
    try:
        history = prune_once(trial, input_size, "magnitude", 0.25)
        trial.eval()
        with torch.no_grad():
            shape = trial(example_input(input_size)).shape
        replay_history(reference, history, input_size)
        same = [a.shape for a in reference.state_dict().values()] == [
            b.shape for b in trial.state_dict().values()
        ]
    except UserError:
        raise
    except Exception as exc:  # Torch-Pruning fails in many ways on unsupported graphs
        raise UserError(
            f"Torch-Pruning cannot prune {arch}: {type(exc).__name__}: {str(exc)[:200]}. "
            "Convolutional timm models (resnet*, mobilenetv2/v3, efficientnet, convnext) work."
        ) from None
    if not history:
        raise UserError(f"{arch} has no channels Torch-Pruning can remove (nothing to prune)")
    if shape != expected or not same:
        raise UserError(
            f"Torch-Pruning cannot prune {arch} consistently (output {tuple(shape)} instead of "
            f"{tuple(expected)} after a trial prune)"
        )
