"""One factory over timm, and safetensors save/load with a JSON description. No pickles.

A saved model is a folder (usually a run directory) holding ``model.json`` (architecture, classes,
preprocessing contract, optional pruning history) and one or more ``*.safetensors`` weight files
(``best``, ``last``). :func:`load_model` rebuilds the architecture from the description (replaying
a pruning history when there is one) and loads the weights strictly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError, os_error_of
from core.preprocess import PreprocessSpec

if TYPE_CHECKING:
    import torch

MODEL_FORMAT = "deepfake-studio/model"
MODEL_FORMAT_VERSION = 1
DESCRIPTION_FILE = "model.json"
PRETRAINED_CHOICES = ("none", "hub")


@dataclass
class ModelDescription:
    """What it takes to rebuild a model: serialised as ``model.json``."""

    arch: str
    class_names: list[str]
    preprocess: PreprocessSpec
    real_class: str = "real"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pruning_history: str | None = None
    """File name (beside ``model.json``) of a Torch-Pruning history to replay, or ``None``."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_FORMAT_VERSION,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "real_class": self.real_class,
            "model_kwargs": self.model_kwargs,
            "pruning_history": self.pruning_history,
            "preprocess": self.preprocess.to_dict(),
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ModelDescription:
        if body.get("format") != MODEL_FORMAT:
            raise UserError("model.json is not a Deepfake Studio model description")
        if body.get("version") != MODEL_FORMAT_VERSION:
            raise UserError(f"model description version {body.get('version')} is not supported")
        return cls(
            arch=body["arch"],
            class_names=list(body["class_names"]),
            preprocess=PreprocessSpec.from_dict(body["preprocess"]),
            real_class=body.get("real_class", "real"),
            model_kwargs=dict(body.get("model_kwargs") or {}),
            pruning_history=body.get("pruning_history"),
        )

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DESCRIPTION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> ModelDescription:
        path = directory / DESCRIPTION_FILE
        if not path.is_file():
            raise UserError(f"{directory} has no {DESCRIPTION_FILE}: not a model or run folder")
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is damaged: {exc}") from None
        return cls.from_dict(body)


def create_model(
    arch: str,
    num_classes: int,
    pretrained: str = "none",
    **kwargs: Any,
) -> torch.nn.Module:
    """Create a timm model with a fresh ``num_classes`` head.

    Args:
        arch: any timm architecture name (``mobilenetv3_small_100``, ``resnet18`` ...).
        num_classes: size of the classifier head.
        pretrained: ``none`` (random init), ``hub`` (timm's download, needs the internet), or a
            path to a local ``.safetensors`` file of ImageNet weights for the same architecture
            (the classifier is replaced when its shape differs).
        **kwargs: passed to ``timm.create_model``; ``None`` values are dropped.
    """
    import timm

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if not timm.is_model(arch):
        close = similar_archs(arch)
        hint = f" Similar: {', '.join(close)}." if close else ""
        raise UserError(f"unknown architecture {arch!r}.{hint}")
    if pretrained in ("none", "", None):
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    if pretrained == "hub":
        try:
            return timm.create_model(arch, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as exc:  # network errors come in many types
            raise UserError(
                f"could not download pretrained weights for {arch} ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Offline? Pass a local .safetensors file instead."
            ) from None
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise UserError(f"pretrained weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise UserError(
            f"{path.name}: pretrained weights must be a .safetensors file "
            "(pickled .pt/.pth files are refused: they can run code)"
        )
    return _create_from_local(arch, num_classes, path, kwargs)


def similar_archs(arch: str, limit: int = 8) -> list[str]:
    """timm names close to a mistyped ``arch``: spelling matches first, then its family."""
    import difflib

    import timm

    close = difflib.get_close_matches(arch, timm.list_models(), n=limit, cutoff=0.7)
    family = timm.list_models(f"*{arch.split('_')[0]}*")
    return list(dict.fromkeys(close + family))[:limit]


def _create_from_local(arch: str, num_classes: int, path: Path, kwargs: dict) -> torch.nn.Module:
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    state = read_safetensors(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) * 0.5:
        raise UserError(
            f"{path.name} does not hold weights for {arch}: only {len(usable)} of {len(own)} "
            "tensors match by name and shape"
        )
    model.load_state_dict(usable, strict=False)
    return model


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a wrong kind of file into a clear UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path.name} is not a valid safetensors weights file ({exc})") from None


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    """Write the model's state dict to ``path`` (``.safetensors``) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_safetensors(state, tmp)
    tmp.replace(path)
    return path


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors.torch.save_file``, with a failed write (a full disk) raised as the
    :class:`OSError` it is, which the CLI and the job runner put in words."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path))
    except SafetensorError as exc:
        cause = os_error_of(exc, str(path))
        if cause is None:
            raise
        raise cause from exc
    path.chmod(0o666 & ~process_umask())  # safetensors writes 0600 whatever the umask says


def process_umask() -> int:
    """This process's umask (read, not changed: other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def build_model(description: ModelDescription) -> torch.nn.Module:
    """A randomly initialised model with the described (possibly pruned) architecture."""
    model = create_model(description.arch, description.num_classes, **description.model_kwargs)
    return model


def load_model(
    source: str | Path, weights: str = "best", *, description: ModelDescription | None = None
) -> tuple[torch.nn.Module, ModelDescription]:
    """Load a saved model in eval mode from a run/model folder or a ``.safetensors`` file.

    Args:
        source: a folder with ``model.json`` and ``<weights>.safetensors``, or a weights file
            whose folder holds ``model.json``.
        weights: which weights of a folder to load (``best`` or ``last``).
        description: use this instead of reading ``model.json``.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"model path {path} does not exist")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise UserError(
                f"{path.name} is not a model this app loads: expected a run folder, a bundle or a "
                ".safetensors file (pickled .pt/.pth files are refused: they can run code)"
            )
        directory, weights_file = path.parent, path
    else:
        directory = path
        weights_file = path / f"{weights}.safetensors"
        if not weights_file.is_file():
            candidates = sorted(p.name for p in path.glob("*.safetensors"))
            hint = f" (it has {', '.join(candidates)})" if candidates else ""
            raise UserError(f"{path} has no {weights_file.name}{hint}")
    description = description or ModelDescription.load(directory)
    model = build_model(description)
    if description.pruning_history:
        from core.pruning import replay_pruning_history

        replay_pruning_history(model, directory / description.pruning_history, description)
    state = read_safetensors(weights_file)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(
            f"{weights_file.name} does not match the {description.arch} described in model.json: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return model, description


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_size: int) -> int:
    """Multiply-accumulate operations for one ``3 x input_size x input_size`` image (counted
    on the device the model is on)."""
    import torch
    import torch_pruning as tp

    device = next(model.parameters()).device
    example = torch.zeros(1, 3, input_size, input_size, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(model, example)
    model.train(was_training)
    return int(macs)


def model_stats(model: torch.nn.Module, input_size: int) -> dict[str, int]:
    return {"params": count_params(model), "macs": count_macs(model, input_size)}
