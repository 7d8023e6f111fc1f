"""Torch data pipeline over :class:`core.datasets.Sample` lists, using THE preprocessing contract.

Augmentation randomness is a pure function of ``(seed, epoch, index)`` and the sampler's order of
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from core.datasets import Sample
from core.errors import UserError
from core.preprocess import AugmentSpec, PreprocessSpec, load_image

OUTLIER = -1
"""The label index of an outlier-exposure image (a class the model must not name); with several
outlier classes the k-th is ``OUTLIER - k`` (every negative label is an outlier)."""
CACHE_BUDGET_BYTES = 3 * 1024**3
"""Decoded images are kept in memory when they fit in this budget (decoding once per run)."""


class ImageDataset(Dataset):
    """Samples decoded, augmented (training only) and preprocessed by the contract."""

    def __init__(
        self,
        samples: Sequence[Sample],
        class_names: Sequence[str],
        spec: PreprocessSpec,
        augment: AugmentSpec | None = None,
        *,
        seed: int = 0,
        cache: bool = True,
        outliers: Sequence[str] = (),
    ) -> None:
        unknown = sorted({s.label for s in samples} - set(class_names) - set(outliers))
        if unknown:
            raise UserError(f"images of classes {unknown} are not among the model's {class_names}")
        self.samples = list(samples)
        self.class_to_index = {name: i for i, name in enumerate(class_names)}
        self.class_to_index.update({name: OUTLIER - k for k, name in enumerate(outliers)})
        self.labels = np.array([self.class_to_index[s.label] for s in self.samples], dtype=np.int64)
        self.spec = spec
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._cache: list[np.ndarray] | None = None
        if cache:
            self._cache = _decode_all(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> np.ndarray:
        if self._cache is not None:
            return self._cache[index]
        return load_image(self.samples[index].path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rgb = self.image(index)
        if self.augment is not None:
            rng = random.Random(hash((self.seed, self.epoch, index)))
            rgb = _augment(rgb, self.augment, rng)
        return torch.from_numpy(self.spec(rgb)), int(self.labels[index])


def _augment(rgb: np.ndarray, spec: AugmentSpec, rng: random.Random) -> np.ndarray:
    from core.preprocess import augment

    return augment(rgb, spec, rng)


def _decode_all(samples: Sequence[Sample]) -> list[np.ndarray] | None:
    """Decode every image once with a small thread pool, or ``None`` if over the memory budget."""
    if not samples:
        return []
    first = load_image(samples[0].path)
    if first.nbytes * len(samples) > CACHE_BUDGET_BYTES:
        return None
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda s: load_image(s.path), samples, chunksize=64))


class EpochSampler(Sampler[int]):
    """Shuffled (optionally class-balanced) order, a function of ``(seed, epoch)`` only."""

    def __init__(self, labels: np.ndarray, *, seed: int, balanced: bool = False) -> None:
        self.labels = labels
        self.seed = seed
        self.balanced = balanced
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        if not self.balanced:
            return iter(rng.permutation(len(self.labels)).tolist())
        counts = np.bincount(self.labels)
        weights = 1.0 / counts[self.labels]
        weights /= weights.sum()
        return iter(rng.choice(len(self.labels), len(self.labels), p=weights).tolist())


def make_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    balanced: bool = False,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader whose ``sampler``/``dataset`` take ``set_epoch`` (see :func:`set_epoch`);
    ``pin_memory`` for batches bound for a GPU."""
    sampler = EpochSampler(dataset.labels, seed=seed, balanced=balanced) if train else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        drop_last=train and len(dataset) > batch_size,
        persistent_workers=False,
        pin_memory=pin_memory,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Make the loader's order and augmentation those of ``epoch``."""
    loader.dataset.set_epoch(epoch)
    if isinstance(loader.sampler, EpochSampler):
        loader.sampler.set_epoch(epoch)
