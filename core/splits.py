"""Seeded, stratified train/val/test splits that keep identical files together.

Files are grouped by SHA-256 (a group is every copy of the same bytes, in any class); a group is
one unit and lands in exactly one split. Each group belongs to its most common class (ties: the
first class name). Within a class, groups are ranked by ``sha1(f"{seed}:{sha256}")`` and the
first ranks fill ``test``, the next ``val``, the rest ``train``, counting files.

Ranking by a keyed hash instead of shuffling a list makes the split depend only on the seed and
each file's content: adding or removing a few files moves only the groups near the cut points,
so re-indexing a grown data set does not leak old test images into training.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable

from core.errors import UserError

SPLITS = ("train", "val", "test")
MIN_PER_CLASS = 2


def check_fractions(val: float, test: float) -> None:
    """Raise UserError unless ``val`` and ``test`` are in [0, 1) and leave room for training."""
    for name, value in (("val", val), ("test", test)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"the {name} fraction must be between 0 and 1, not {value}")
    if val + test >= 1.0:
        raise UserError(f"val ({val}) + test ({test}) leaves no images for training")


def check_classes(counts: dict[str, int]) -> None:
    """Raise UserError unless there are at least two classes with two readable images each."""
    if len(counts) < 2:
        found = ", ".join(sorted(counts)) or "none"
        raise UserError(
            f"need at least 2 classes (one subfolder per class) with readable images; found {found}"
        )
    small = sorted(name for name, n in counts.items() if n < MIN_PER_CLASS)
    if small:
        detail = ", ".join(f"'{name}' has {counts[name]}" for name in small)
        raise UserError(
            f"every class needs at least {MIN_PER_CLASS} readable images: {detail} "
            "(add images or remove the folder)"
        )


def _targets(n: int, val: float, test: float) -> tuple[int, int]:
    """How many of a class's ``n`` files go to test and val (at least one train file is left)."""
    n_test = round(test * n)
    n_val = round(val * n)
    if val > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if test > 0 and n_test == 0 and n >= 3:
        n_test = 1
    while n_test + n_val >= n and (n_test or n_val):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return n_test, n_val


def split_fingerprint(files: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over the sorted ``(relpath, label)`` pairs of one split (``/`` separators).

    Two splits with equal fingerprints hold the same files in the same classes, wherever the data
    set's folder is: a bundle records its training run's fingerprints so an evaluation can tell
    whether its test split is the one the run held out.
    """
    digest = hashlib.sha256()
    for relpath, label in sorted((rel.replace("\\", "/"), label) for rel, label in files):
        digest.update(f"{label}\t{relpath}\n".encode())
    return digest.hexdigest()


def _rank(seed: int, key: str) -> str:
    """A seeded sort key for ``key`` (a content hash in :func:`assign_splits`, a path inside the
    data set in :func:`take_share`): the same order for the same seed, another for another seed."""
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def take_share(
    items: Iterable[tuple[str, str]], share: float, seed: int = 0
) -> list[tuple[str, str]]:
    """A seeded share of ``(key, label)`` items, per class: ``round(n * share)``, at least one.

    For learning curves: train on half or a quarter of the training split while val and test stay
    as they are. The same seed and share give the same items, and a smaller share is a subset of a
    larger one (items are taken in one seeded order per class).
    """
    if not 0 < share <= 1:
        raise UserError(f"the training share must be above 0 and at most 1, not {share!r}")
    by_class: dict[str, list[str]] = defaultdict(list)
    for key, label in items:
        by_class[label].append(key)
    kept = []
    for label, keys in by_class.items():
        ranked = sorted(keys, key=lambda key: _rank(seed, key))
        kept += [(key, label) for key in ranked[: max(1, round(len(keys) * share))]]
    return kept


def assign_splits(
    files: Iterable[tuple[str, str, str]], seed: int = 0, val: float = 0.1, test: float = 0.1
) -> dict[str, str]:
    """Map each ``(relpath, label, sha256)`` of readable files to ``train``, ``val`` or ``test``.

    Raises:
        UserError: bad fractions, fewer than two classes, or a class with fewer than two files.
    """
    check_fractions(val, test)
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for relpath, label, sha in files:
        groups[sha].append((relpath, label))
    check_classes(Counter(label for members in groups.values() for _, label in members))

    by_class: dict[str, list[str]] = defaultdict(list)
    for sha, members in groups.items():
        counts = Counter(label for _, label in members)
        owner = min(counts, key=lambda name: (-counts[name], name))
        by_class[owner].append(sha)

    assignment: dict[str, str] = {}
    for label, shas in by_class.items():
        shas.sort(key=lambda sha: _rank(seed, sha))
        size = {sha: sum(1 for _, lab in groups[sha] if lab == label) for sha in shas}
        n_test, n_val = _targets(sum(size.values()), val, test)
        taken = {"test": 0, "val": 0, "train": 0}
        for position, sha in enumerate(shas):
            if position == len(shas) - 1 and not taken["train"]:
                split = "train"  # never leave a class without training images
            elif taken["test"] < n_test:
                split = "test"
            elif taken["val"] < n_val:
                split = "val"
            else:
                split = "train"
            taken[split] += size[sha]
            for relpath, _ in groups[sha]:
                assignment[relpath] = split
    return assignment
