"""core.hygiene: unreadable files, exact and near duplicates, shortcut bias, class findings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from test_datasets_support import SHARED_DATA, add_bad_files, copy_file, make_dataset

from core import hygiene
from core.dataset_index import SCHEMA_VERSION
from core.datasets import DatasetIndex
from core.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def smooth_image(path: Path, seed: int, size: int = 64, fmt: str = "PNG", **save) -> Path:
    """A blurred random image: its perceptual hash survives re-encoding and resizing."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    image = small.resize((size, size), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **save)
    return path


def test_findings_on_a_messy_set(tmp_path: Path, workspace: Workspace) -> None:
    root = tmp_path / "data"
    for i in range(30):
        smooth_image(root / "real" / f"r{i:02d}.png", i)
        smooth_image(root / "fake" / f"f{i:02d}.png", 1000 + i)
    add_bad_files(root / "real")
    copy_file(root / "real" / "r00.png", root / "real" / "r00_copy.png")
    copy_file(root / "real" / "r01.png", root / "fake" / "stolen_r01.png")
    smooth_image(root / "fake" / "f05_reencoded.jpg", 1005, fmt="JPEG", quality=80)
    smooth_image(root / "fake" / "f06_smaller.png", 1006, size=48)
    index = DatasetIndex.build(root, workspace)
    report = hygiene.check(index, min_class=10)

    [unreadable] = report.of_kind("unreadable")
    assert unreadable.severity == "error"
    assert unreadable.files == ["real/empty.png", "real/notes.jpg", "real/truncated.jpg"]
    assert "not an image" in unreadable.notes["real/notes.jpg"]

    [dups] = report.of_kind("duplicates")
    assert dups.groups == [["fake/stolen_r01.png", "real/r01.png"], ["real/r00.png", "real/r00_copy.png"]]  # fmt: skip
    assert dups.message.startswith("exact copies of another file: 2 files in 2 groups")
    [cross] = report.of_kind("cross_class_duplicates")
    assert cross.groups == [["fake/stolen_r01.png", "real/r01.png"]] and cross.severity == "error"

    [near] = report.of_kind("near_duplicates")
    assert ["fake/f05.png", "fake/f05_reencoded.jpg"] in near.groups
    assert ["fake/f06.png", "fake/f06_smaller.png"] in near.groups
    assert all(len(group) >= 2 for group in near.groups)
    assert ["real/r00.png", "real/r00_copy.png"] not in near.groups  # exact copies only

    assert not report.of_kind("format_bias") and not report.of_kind("size_bias")
    assert not report.of_kind("tiny_class") and not report.of_kind("imbalance")
    assert [f.severity for f in report.findings] == sorted(
        (f.severity for f in report.findings), key=hygiene.SEVERITY_ORDER.get
    )
    assert report.files == 67 and report.readable == 64
    body = json.loads(json.dumps(report.to_dict(max_files=1)))
    assert body["classes"] == {"fake": 33, "real": 31}
    dup_body = next(f for f in body["findings"] if f["kind"] == "duplicates")
    assert dup_body["groups"] == [["fake/stolen_r01.png"]] and dup_body["more"] == 2
    assert dup_body["files"] == 4


def test_copies_in_two_splits_are_a_leak(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"a": 10, "b": 10})
    copy_file(root / "a" / "a_000.png", root / "a" / "copy.png")
    index = DatasetIndex.build(root, workspace)
    index.make_splits(seed=0, val=0.2, test=0.2)
    assert not hygiene.check(index).of_kind("cross_split_duplicates")
    with sqlite3.connect(index.db_path) as conn:  # as if split by a tool that ignores copies
        split = conn.execute("SELECT split FROM files WHERE relpath = 'a/copy.png'").fetchone()[0]
        other = "test" if split != "test" else "train"
        conn.execute("UPDATE files SET split = ? WHERE relpath = 'a/copy.png'", (other,))
    [leak] = hygiene.check(index).of_kind("cross_split_duplicates")
    assert leak.groups == [["a/a_000.png", "a/copy.png"]]


def test_near_copies_across_classes_and_splits_are_warned(
    tmp_path: Path, workspace: Workspace
) -> None:
    root = tmp_path / "data"
    for i in range(12):
        smooth_image(root / "real" / f"r{i:02d}.png", i)
        smooth_image(root / "fake" / f"f{i:02d}.png", 1000 + i)
    smooth_image(root / "fake" / "resized_r03.png", 3, size=48)  # a real photo labelled fake
    smooth_image(root / "fake" / "f07_reencoded.jpg", 1007, fmt="JPEG", quality=80)
    index = DatasetIndex.build(root, workspace)
    index.make_splits(seed=0, val=0.25, test=0.25)
    with sqlite3.connect(index.db_path) as conn:  # near copies are split like any two files
        for relpath, split in (("fake/f07.png", "train"), ("fake/f07_reencoded.jpg", "test")):
            conn.execute("UPDATE files SET split = ? WHERE relpath = ?", (split, relpath))
    report = hygiene.check(index, min_class=5)
    [labels] = report.of_kind("cross_class_near_duplicates")
    assert (
        labels.severity == "warning" and ["fake/resized_r03.png", "real/r03.png"] in labels.groups
    )
    assert "near-identical images in more than one class" in labels.message
    [leak] = report.of_kind("cross_split_near_duplicates")
    assert ["fake/f07.png", "fake/f07_reencoded.jpg"] in leak.groups
    assert "the test split may hold what training saw" in leak.message
    assert not report.of_kind("cross_class_duplicates")  # no exact copies here


def test_tiny_imbalanced_and_split_like_classes(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"train": 40, "test": 4})
    report = hygiene.check(DatasetIndex.build(root, workspace), min_class=10)
    [tiny] = report.of_kind("tiny_class")
    assert "'test' has only 4" in tiny.message and len(tiny.files) == 4
    [imbalance] = report.of_kind("imbalance")
    assert "10.0:1" in imbalance.message and report.imbalance_ratio == 10.0
    assert report.of_kind("split_folders")


def test_near_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    planted = hashes[:200].copy()
    for k in range(200):  # flip 1..6 random bits
        for bit in rng.choice(64, size=1 + k % 6, replace=False):
            planted[k] ^= np.uint64(1) << np.uint64(int(bit))
    everything = np.concatenate([hashes, planted])
    distance = np.bitwise_count(everything[:, None] ^ everything[None, :])
    i, j = np.nonzero(np.triu(distance <= 4, k=1))
    expected = set(zip(i.tolist(), j.tolist(), strict=True))
    found = {tuple(p) for p in hygiene.near_pairs(everything, 4).tolist()}
    assert found == expected
    assert len(expected) >= 130  # the planted pairs with at most 4 flipped bits, at least


@pytest.mark.shared_data
def test_bias_from_format_size_and_quality_is_named(tmp_path: Path, workspace: Workspace) -> None:
    source = SHARED_DATA / "cifake" / "train"
    if not source.is_dir():
        pytest.skip(f"shared data not found at {source}")
    real = sorted((source / "real").iterdir())[:24]
    fake = sorted((source / "fake").iterdir())[:24]
    biased = tmp_path / "biased"
    for path in real:
        with Image.open(path) as image:
            (biased / "real").mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(biased / "real" / f"{path.stem}.jpg", "JPEG", quality=95)
    for path in fake:
        with Image.open(path) as image:
            (biased / "fake").mkdir(parents=True, exist_ok=True)
            image.convert("RGB").resize((64, 64)).save(biased / "fake" / f"{path.stem}.png")
    report = hygiene.check(DatasetIndex.build(biased, workspace), min_class=10)
    [fmt] = report.of_kind("format_bias")
    assert "file format" in fmt.message and "100% JPEG" in fmt.message and "100% PNG" in fmt.message
    assert fmt.files == sorted(
        [f"real/{p.stem}.jpg" for p in real] + [f"fake/{p.stem}.png" for p in fake]
    )
    [size] = report.of_kind("size_bias")
    assert "image size" in size.message and "~32px" in size.message and "~64px" in size.message

    requality = tmp_path / "quality"
    for label, files, quality in (("real", real, 95), ("fake", fake, 60)):
        for path in files:
            with Image.open(path) as image:
                (requality / label).mkdir(parents=True, exist_ok=True)
                image.convert("RGB").save(requality / label / path.name, "JPEG", quality=quality)
    report = hygiene.check(DatasetIndex.build(requality, workspace), min_class=10)
    [quality] = report.of_kind("quality_bias")
    assert "median 95 in 'real' vs 60 in 'fake'" in quality.message
    assert not report.of_kind("format_bias") and not report.of_kind("size_bias")


def test_identical_files_across_two_data_sets(tmp_path: Path, workspace: Workspace) -> None:
    train = make_dataset(tmp_path / "train", {"real": 5, "fake": 5})
    test = make_dataset(tmp_path / "test", {"real": 5, "fake": 5}, seed=1)
    copy_file(train / "real" / "real_002.png", test / "fake" / "leak.png")
    finding = hygiene.cross_duplicates(
        DatasetIndex.build(train, workspace), DatasetIndex.build(test, workspace)
    )
    assert finding.groups == [
        [str(train / "real" / "real_002.png"), str(test / "fake" / "leak.png")]
    ]
    assert finding.message == f"files of {test} identical to files of {train}: 1"
    assert finding.notes == {str(test / "fake" / "leak.png"): f"identical to {train / 'real' / 'real_002.png'}"}  # fmt: skip
    other = make_dataset(tmp_path / "other", {"a": 2, "b": 2}, seed=2)
    assert hygiene.cross_duplicates(DatasetIndex.build(train, workspace),
                                    DatasetIndex.build(other, workspace)) is None  # fmt: skip


@pytest.fixture
def cifake_workspace(request: pytest.FixtureRequest, workspace: Workspace) -> Workspace:
    """A workspace kept in pytest's cache folder: the first run indexes all 44,000 cifake files
    (20-90 s on 2 cores), later runs only re-check them (incremental, ~2 s)."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return workspace
    return Workspace(cache.mkdir(f"cifake-index-schema{SCHEMA_VERSION}"))


@pytest.mark.shared_data
@pytest.mark.slow
def test_cifake_duplicates_are_found(cifake_workspace: Workspace) -> None:
    """The README's numbers: 179 duplicate files in cifake, 22 across train and test."""
    source = SHARED_DATA / "cifake"
    if not source.is_dir():
        pytest.skip(f"shared data not found at {source}")
    workspace = cifake_workspace
    train = DatasetIndex.build(source / "train", workspace)
    test = DatasetIndex.build(source / "test", workspace)
    assert train.count() == 40_000 and test.count() == 4_000
    inside = [hygiene.check(i, near_threshold=None).of_kind("duplicates") for i in (train, test)]
    within = sum(len(f.groups) for [f] in inside)
    across = hygiene.cross_duplicates(train, test)
    assert len(across.groups) == len(across.notes) == 22
    assert within + len(across.groups) == 179
    train.make_splits(seed=0)
    assert not hygiene.check(train, near_threshold=None).of_kind("cross_split_duplicates")
