"""Test-time flip averaging: a network that answers for an image and its mirror image at once.

``flip_averaged(model)`` returns a module whose logits are the mean of ``model``'s logits on
the image and on its left-right mirror. It is exported as one ONNX graph (``export
--flip-average``), so a bundle carries it without any change to the preprocessing contract or to
the apps that run bundles; the parameters are the same, the MACs double.

It keeps timm's head API so class activation maps still work: ``forward_features`` averages the
plain feature map with the mirror pass's map mirrored back, and for "pool + linear" heads
``forward_head(forward_features(x))`` equals ``forward(x)`` (the spatial mean does not care about
the mirroring and the classifier is linear).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

WIDTH_AXIS = 3
"""Images and feature maps are ``[N, C, H, W]``."""


@cache
def _flip_averaged_class() -> type:
    import torch

    class FlipAveraged(torch.nn.Module):
        """``model`` on an image and on its mirror image, averaged (see the module docstring)."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model
            self.train(model.training)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.model(x) + self.model(x.flip(WIDTH_AXIS))) / 2

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            plain = self.model.forward_features(x)
            mirrored = self.model.forward_features(x.flip(WIDTH_AXIS)).flip(WIDTH_AXIS)
            return (plain + mirrored) / 2

        def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
            return self.model.forward_head(features, pre_logits=pre_logits)

        def get_classifier(self) -> torch.nn.Module:
            return self.model.get_classifier()

    return FlipAveraged


def flip_averaged(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped so that its logits are averaged over the image and its mirror."""
    return _flip_averaged_class()(model)
