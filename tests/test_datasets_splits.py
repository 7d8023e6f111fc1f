"""core.splits: targets per class, duplicate groups as units, small classes, validation."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import UserError
from core.splits import assign_splits


def files(label: str, n: int, shared: dict[int, str] | None = None) -> list[tuple[str, str, str]]:
    """``n`` files of ``label`` with distinct hashes, except those mapped in ``shared``."""
    shared = shared or {}
    return [(f"{label}/{i}.png", label, shared.get(i, f"{label}-{i}")) for i in range(n)]


def per_class(assignment: dict[str, str]) -> Counter:
    return Counter((rel.split("/")[0], split) for rel, split in assignment.items())


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (2, {"train": 1, "val": 1, "test": 0}),  # a val image as soon as there are two
        (3, {"train": 1, "val": 1, "test": 1}),
        (10, {"train": 8, "val": 1, "test": 1}),
        (95, {"train": 75, "val": 10, "test": 10}),  # 9.5 rounds to 10 for both
    ],
)
def test_class_sizes(n: int, expected: dict[str, int]) -> None:
    assignment = assign_splits(files("a", n) + files("b", 20), seed=0, val=0.1, test=0.1)
    counts = per_class(assignment)
    assert {s: counts["a", s] for s in ("train", "val", "test")} == expected


def test_no_val_or_test_when_their_share_is_zero() -> None:
    assignment = assign_splits(files("a", 10) + files("b", 10), val=0.0, test=0.0)
    assert set(assignment.values()) == {"train"}


def test_a_class_of_identical_files_still_trains() -> None:
    same = files("a", 2, {0: "x", 1: "x"})
    assignment = assign_splits(same + files("b", 10), val=0.2, test=0.2)
    assert assignment["a/0.png"] == assignment["a/1.png"] == "train"


def test_a_group_across_classes_goes_with_its_majority() -> None:
    a = files("a", 30, {0: "shared", 1: "shared"})
    b = files("b", 30, {0: "shared"})
    for seed in range(20):
        assignment = assign_splits(a + b, seed=seed, val=0.2, test=0.2)
        assert assignment["a/0.png"] == assignment["a/1.png"] == assignment["b/0.png"]


def test_seed_changes_membership_not_sizes() -> None:
    data = files("a", 50) + files("b", 30)
    first, second = assign_splits(data, seed=1), assign_splits(data, seed=2)
    assert first != second
    assert per_class(first) == per_class(second)
    assert assign_splits(list(reversed(data)), seed=1) == first  # order of input is irrelevant


@pytest.mark.parametrize(
    ("data", "val", "test", "message"),
    [
        (files("a", 5), 0.1, 0.1, "at least 2 classes"),
        (files("a", 5) + files("b", 1), 0.1, 0.1, "'b' has 1"),
        (files("a", 5) + files("b", 5), -0.1, 0.1, "val fraction"),
        (files("a", 5) + files("b", 5), 0.1, 1.0, "test fraction"),
        (files("a", 5) + files("b", 5), 0.5, 0.5, "no images for training"),
    ],
)
def test_invalid_requests(data, val: float, test: float, message: str) -> None:
    with pytest.raises(UserError, match=message):
        assign_splits(data, val=val, test=test)


def test_a_training_share_is_seeded_per_class_and_nested() -> None:
    from core.splits import take_share

    items = [(rel, label) for rel, label, _ in files("real", 40) + files("fake", 10)]
    half = take_share(items, 0.5, seed=3)
    quarter = take_share(items, 0.25, seed=3)
    assert Counter(label for _, label in half) == {"real": 20, "fake": 5}
    assert Counter(label for _, label in quarter) == {"real": 10, "fake": 2}  # 2.5 rounds to 2
    assert set(quarter) < set(half)  # a smaller share is part of a larger one
    assert set(take_share(list(reversed(items)), 0.5, seed=3)) == set(half)  # order is no matter
    assert set(take_share(items, 0.5, seed=4)) != set(half)  # the seed picks the files
    assert Counter(label for _, label in take_share(items, 0.01)) == {"real": 1, "fake": 1}
    assert sorted(take_share(items, 1.0)) == sorted(items)
    for bad in (0, -0.5, 1.5):
        with pytest.raises(UserError, match="training share"):
            take_share(items, bad)
