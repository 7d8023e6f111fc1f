"""Heatmaps: where in an image the evidence for the verdict is.

**In-graph class activation maps (preferred).** For networks whose head is "global average pool,
then one linear layer", the per-location logits ``cam[n, c] = W[c] . features[n, :, y, x] + b[c]``
average exactly to the logits. :class:`CamModel` wraps such a timm model so that its ONNX export
has a second output ``cam`` ``[N, C, h, w]`` (with ``logits == cam.mean((2, 3))``); the checker
then gets heatmaps from onnxruntime at no extra cost. :func:`supports_cam` decides numerically, so
any architecture qualifies when its head is of that form. Among timm families: ``resnet*``
(``resnet10t``, ``resnet18``), ``efficientnet*`` / ``test_efficientnet``, ``regnet*`` and
``test_resnet`` qualify; ``mobilenetv3*``, ``lcnet*`` (a ``conv_head`` *after* pooling) and
``convnext*`` (a norm after pooling) do not, and get no ``cam`` output.

**Grad-CAM (fallback).** :func:`grad_cam` works on any timm model with the torch back-end
(training-time evaluation), by back-propagating each class's logit to the final feature map.

The NumPy helpers (:func:`class_map`, :func:`cam_to_heatmap`, :func:`heatmap_for_image`,
:func:`overlay`) turn a low-resolution map into an image-sized 0..1 heatmap and a coloured
overlay; they import neither torch nor onnxruntime. torch is imported lazily (``CamModel`` is
created on first access).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from core.preprocess import PreprocessSpec, resample_matrix

if TYPE_CHECKING:
    import torch

CAM_TOLERANCE = 1e-4


# -- torch side -------------------------------------------------------------------------------
def _has_head_api(model: Any) -> bool:
    return all(hasattr(model, name) for name in ("forward_features", "forward_head"))


def supports_cam(model: torch.nn.Module, input_size: int = 64) -> bool:
    """Whether ``model``'s logits are the spatial mean of a linear map of its features.

    Checked numerically on a random input in eval mode, so it holds for the actual network.
    """
    import torch

    if not _has_head_api(model) or not hasattr(model, "get_classifier"):
        return False
    if not isinstance(model.get_classifier(), torch.nn.Linear):
        return False
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(2, 3, input_size, input_size, generator=generator)
            features = model.forward_features(x)
            if features.ndim != 4 or features.shape[1] != model.get_classifier().in_features:
                return False
            logits = model.forward_head(features)
            cam = _linear_map(model.get_classifier(), features)
            scale = float(logits.abs().max()) + 1.0
            return float((cam.mean((2, 3)) - logits).abs().max()) <= CAM_TOLERANCE * scale
    finally:
        model.train(was_training)


def _linear_map(classifier: torch.nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """The classifier applied at every location: a 1x1 convolution ``[N, F, h, w] -> [N, C, h, w]``."""
    import torch.nn.functional as F

    weight = classifier.weight[:, :, None, None]
    return F.conv2d(features, weight, classifier.bias)


@cache
def _cam_model_class() -> type:
    import torch

    class CamModel(torch.nn.Module):
        """``model`` returning ``(logits, cam)``; export it with outputs ``["logits", "cam"]``.

        Raises ValueError for models without a "pool + linear" head (see :func:`supports_cam`).
        """

        def __init__(self, model: torch.nn.Module, input_size: int = 64) -> None:
            super().__init__()
            if not supports_cam(model, input_size):
                raise ValueError(
                    f"{type(model).__name__} has no 'global average pool + linear' head; "
                    "export it without a cam output (Grad-CAM works on the torch back-end)"
                )
            self.model = model
            self.train(model.training)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.model.forward_features(x)
            logits = self.model.forward_head(features)
            return logits, _linear_map(self.model.get_classifier(), features)

    return CamModel


def __getattr__(name: str) -> Any:
    if name == "CamModel":
        return _cam_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def grad_cam(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of every class: returns ``(logits [N, C], cam [N, C, h, w])`` as NumPy.

    ``cam[n, c] = relu(sum_f mean_yx(d logit_c / d features_f) * features_f)``.
    """
    import torch

    if not _has_head_api(model):
        raise ValueError(f"{type(model).__name__} has no forward_features/forward_head")
    with torch.enable_grad():
        features = model.forward_features(x.detach())
        if features.ndim != 4:
            raise ValueError(f"{type(model).__name__} has no [N, C, h, w] feature map")
        logits = model.forward_head(features)
        maps = []
        for c in range(logits.shape[1]):
            (grads,) = torch.autograd.grad(logits[:, c].sum(), features, retain_graph=True)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            maps.append(torch.relu((weights * features).sum(dim=1)))
    cam = torch.stack(maps, dim=1)
    return logits.detach().float().numpy(), cam.detach().float().numpy()


# -- NumPy side -------------------------------------------------------------------------------
def class_map(cam: np.ndarray, index: int) -> np.ndarray:
    """Evidence for class ``index`` over the others at each location, from ``cam [C, h, w]``.

    Softmax depends only on logit differences, so the map is ``cam[index]`` minus the mean of
    the other classes' maps (for two classes: the per-location logit margin).
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.shape[0] == 1:
        return cam[0]
    others = np.delete(cam, index, axis=0).mean(axis=0)
    return cam[index] - others


def cam_to_heatmap(cam_for_class: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Upsample an ``h x w`` map to ``image_hw`` (triangle filter) and scale it to 0..1."""
    cam = np.asarray(cam_for_class, dtype=np.float64)
    height, width = image_hw
    heat = resample_matrix(cam.shape[0], height) @ cam @ resample_matrix(cam.shape[1], width).T
    low, high = heat.min(), heat.max()
    if high - low < 1e-12:
        return np.zeros((height, width), dtype=np.float32)
    return ((heat - low) / (high - low)).astype(np.float32)


def input_box(spec: PreprocessSpec, height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the original image that the model input shows.

    The inverse of the scale-and-centre-crop of :meth:`PreprocessSpec.geometry`.
    """
    size = spec.input_size
    new_h, new_w = spec.scaled_shape(height, width)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    sy, sx = height / new_h, width / new_w
    return (
        round(top * sy),
        round(left * sx),
        round((top + size) * sy),
        round((left + size) * sx),
    )


def heatmap_for_image(
    cam_for_class: np.ndarray,
    image_hw: tuple[int, int],
    spec: PreprocessSpec,
    source_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """An ``image_hw`` heatmap: the map placed over the region the model saw, 0 elsewhere.

    ``source_hw`` is the size of the image the model was given when ``image_hw`` is a reduced
    copy of it (a preview or thumbnail): the region is found on the source and scaled down, so
    it stays right for ``crop`` contracts, whose region is a fixed number of source pixels.
    """
    height, width = image_hw
    source_h, source_w = source_hw or image_hw
    top, left, bottom, right = input_box(spec, source_h, source_w)
    sy, sx = height / source_h, width / source_w
    top, bottom = round(top * sy), round(bottom * sy)
    left, right = round(left * sx), round(right * sx)
    heat = np.zeros((height, width), dtype=np.float32)
    if bottom > top and right > left:
        heat[top:bottom, left:right] = cam_to_heatmap(cam_for_class, (bottom - top, right - left))
    return heat


def colormap(heat: np.ndarray) -> np.ndarray:
    """A jet-like ``HxWx3`` uint8 colouring of a 0..1 map (blue = cold, red = hot)."""
    h = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0], dtype=np.float32)
    rgb = np.clip(1.5 - np.abs(4.0 * h - centres), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured heatmap over ``rgb`` (uint8), more strongly where it is hot."""
    rgb = np.asarray(rgb, dtype=np.float32)
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} does not match the image {rgb.shape[:2]}")
    weight = (alpha * heat)[..., None]
    blended = rgb * (1.0 - weight) + colormap(heat).astype(np.float32) * weight
    return (blended + 0.5).clip(0, 255).astype(np.uint8)
