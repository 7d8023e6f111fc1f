"""Sharpness-aware minimisation (SAM, Foret et al., ICLR 2021) for the epoch loop.

A SAM step takes the gradient of the loss not at the weights ``w`` but at ``w + e``, where ``e``
moves ``rho`` along the normalised gradient at ``w``: the optimizer then prefers weights whose
whole neighbourhood has a low loss (flat minima, which generalise better on small data sets).
It costs a second forward and backward pass per step. The second pass sees the same batch: the
random draws of the first (MixUp/CutMix boxes, dropout masks) are replayed, and batch-norm
running statistics are updated by the first pass only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

NORM_LAYERS = (torch.nn.modules.batchnorm._BatchNorm,)


class RandomState:
    """The state of Python's, NumPy's and PyTorch's (CPU and CUDA) random generators."""

    def __init__(self) -> None:
        self._python = random.getstate()
        self._numpy = np.random.get_state()
        self._torch = torch.get_rng_state()
        self._cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        random.setstate(self._python)
        np.random.set_state(self._numpy)
        torch.set_rng_state(self._torch)
        if self._cuda is not None:
            torch.cuda.set_rng_state_all(self._cuda)


@contextmanager
def frozen_norm_statistics(model: torch.nn.Module) -> Iterator[None]:
    """Batch-norm layers keep their running statistics (momentum 0) inside the block."""
    layers = [m for m in model.modules() if isinstance(m, NORM_LAYERS) and m.track_running_stats]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


def sharpness_aware_gradients(
    model: torch.nn.Module,
    rho: float,
    randomness: RandomState,
    second_loss: Callable[[], torch.Tensor],
) -> None:
    """Replace the gradients in ``model`` (those of the first pass, already computed) by the
    gradients at the weights moved ``rho`` along them; the weights are restored afterwards.

    Args:
        randomness: the random state captured before the first pass, restored before
            ``second_loss`` so that it draws the same mixing and dropout.
        second_loss: computes the same batch's loss again (at the moved weights).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return
    norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm(2) for p in params]))
    scale = rho / (norm + 1e-12)
    originals = [p.detach().clone() for p in params]  # restored exactly, not by subtraction
    with torch.no_grad():
        for p in params:
            p.add_(p.grad * scale)
            p.grad = None
    randomness.restore()
    try:
        with frozen_norm_statistics(model):
            second_loss().backward()
    finally:
        with torch.no_grad():
            for p, original in zip(params, originals, strict=True):
                p.copy_(original)
