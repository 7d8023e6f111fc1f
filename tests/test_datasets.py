"""core.datasets: indexing, incremental re-indexing, resume, validation and splits."""

from __future__ import annotations

import io
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_datasets_support import add_bad_files, copy_file, make_dataset, make_image

from core import datasets
from core.dataset_index import estimate_jpeg_quality
from core.datasets import DatasetIndex, Sample, default_db_path
from core.errors import UserError
from core.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """real: 12 PNG + 3 bad files + a README and a PDF; fake: 10 PNG + a copy of real_000 + an internal copy."""
    root = make_dataset(tmp_path / "data", {"real": 12, "fake": 10})
    add_bad_files(root / "real")
    (root / "real" / "README.txt").write_text("ignored")
    (root / "real" / "scan.pdf").write_bytes(b"%PDF-1.4 not a photo")  # Pillow writes PDFs only
    copy_file(root / "real" / "real_000.png", root / "fake" / "copy_of_real.png")
    copy_file(root / "fake" / "fake_001.png", root / "fake" / "sub" / "fake_001_again.png")
    return root


def test_build_records_every_file_and_its_facts(messy: Path, workspace: Workspace) -> None:
    index = DatasetIndex.build(messy, workspace)
    assert index.db_path == default_db_path(messy, workspace)
    assert index.db_path.parent == workspace.indexes
    assert index.last_build.files == 12 + 3 + 10 + 2
    assert index.last_build.ignored == 2  # README.txt, scan.pdf
    assert index.is_complete()
    assert index.class_names == ["fake", "real"]
    assert index.counts() == {"fake": 12, "real": 12}

    errors = {path.name: message for path, message in index.errors()}
    assert set(errors) == {"truncated.jpg", "notes.jpg", "empty.png"}
    assert "file is empty" in errors["empty.png"]
    assert "not an image" in errors["notes.jpg"]
    assert "damaged" in errors["truncated.jpg"]

    facts = {r.relpath: r for r in index.records()}
    png = facts["real/real_003.png"]
    assert (png.width, png.height, png.format, png.jpeg_quality, png.error) == (
        16,
        16,
        "PNG",
        None,
        None,
    )
    assert len(png.sha256) == 64 and len(png.phash) == 16
    assert png.bytes == (messy / "real" / "real_003.png").stat().st_size
    assert facts["fake/copy_of_real.png"].sha256 == facts["real/real_000.png"].sha256
    assert facts["fake/sub/fake_001_again.png"].label == "fake"

    samples = index.samples()
    assert samples == sorted(samples, key=lambda s: s.path)
    assert Sample(messy / "real" / "real_000.png", "real") in samples
    assert len(samples) == 24 and all(s.path.is_absolute() for s in samples)


def test_jpeg_quality_is_estimated(tmp_path: Path, workspace: Workspace) -> None:
    for quality in (30, 60, 75, 92):
        path = make_image(tmp_path / "q" / "a" / f"q{quality}.jpg", quality, (32, 32), "JPEG",
                          quality=quality)  # fmt: skip
        with Image.open(path) as image:
            assert abs(estimate_jpeg_quality(image.quantization) - quality) <= 1
    make_image(tmp_path / "q" / "b" / "x.png", 1)
    index = DatasetIndex.build(tmp_path / "q", workspace)
    qualities = {r.relpath: r.jpeg_quality for r in index.records()}
    assert qualities["a/q75.jpg"] == 75 and qualities["b/x.png"] is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.write_text("x"), "is a file"),
        (lambda root: root.mkdir(), "empty"),
        (lambda root: make_image(root / "a.png", 0), "directly in the folder"),
        (lambda root: (root / "real").mkdir(parents=True), "no image files"),
    ],
)
def test_build_refuses_bad_folders(tmp_path: Path, workspace: Workspace, setup, message) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        DatasetIndex.build(root, workspace)


def test_open_needs_an_index(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(UserError, match="has not been indexed"):
        DatasetIndex.open(root, workspace)
    DatasetIndex.build(root, workspace)
    assert DatasetIndex.open(root, workspace).counts() == {"a": 2, "b": 2}


def test_class_checks_happen_at_split_time(tmp_path: Path, workspace: Workspace) -> None:
    one_class = DatasetIndex.build(make_dataset(tmp_path / "one", {"real": 5}), workspace)
    with pytest.raises(UserError, match="at least 2 classes"):
        one_class.make_splits()
    root = make_dataset(tmp_path / "small", {"real": 5, "fake": 1})
    add_bad_files(root / "fake")
    small = DatasetIndex.build(root, workspace)
    assert small.counts() == {"fake": 1, "real": 5}
    with pytest.raises(UserError, match="'fake' has 1"):
        small.make_splits()
    with pytest.raises(UserError, match="fraction"):
        small.make_splits(val=1.5)
    with pytest.raises(UserError, match="no images for training"):
        small.make_splits(val=0.5, test=0.5)
    with pytest.raises(UserError, match="no splits yet"):
        small.samples("train")


def test_reindex_analyses_only_new_and_changed_files(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"real": 6, "fake": 6})
    first = DatasetIndex.build(root, workspace)
    assert first.last_build.analysed == 12
    again = DatasetIndex.build(root, workspace)
    assert (again.last_build.analysed, again.last_build.removed) == (0, 0)

    make_image(root / "real" / "real_000.png", 4242)  # changed content
    os.utime(root / "real" / "real_000.png", ns=(1, 1_000_000_000))
    make_image(root / "fake" / "new.png", 777)
    (root / "fake" / "fake_005.png").unlink()
    update = DatasetIndex.build(root, workspace)
    assert (update.last_build.analysed, update.last_build.removed) == (2, 1)
    assert update.counts() == {"fake": 6, "real": 6}
    facts = {r.relpath: r for r in update.records()}
    assert "fake/fake_005.png" not in facts
    assert facts["real/real_000.png"].mtime_ns == 1_000_000_000


def test_cancelled_build_resumes_to_the_same_result(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "BATCH", 4)
    root = make_dataset(tmp_path / "d", {"real": 10, "fake": 10})
    add_bad_files(root / "fake")
    seen: list[tuple[int, int]] = []

    def cancel_after_two_batches() -> bool:
        return len(seen) >= 3  # progress(0) + two batches

    partial = DatasetIndex.build(
        root, workspace, progress=lambda d, t: seen.append((d, t)), cancel=cancel_after_two_batches
    )
    assert partial.last_build.cancelled and not partial.is_complete()
    assert seen == [(0, 23), (4, 23), (8, 23)]
    assert partial.count() == 8

    resumed = DatasetIndex.build(root, workspace)
    assert resumed.last_build.analysed == 23 - 8 and resumed.is_complete()
    fresh = DatasetIndex.build(root, db_path=tmp_path / "fresh.sqlite")
    assert resumed.records() == fresh.records()


def test_process_pool_gives_the_same_facts(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 8, "fake": 8})
    threads = DatasetIndex.build(root, db_path=tmp_path / "threads.sqlite")
    monkeypatch.setattr(datasets, "PROCESS_THRESHOLD", 1)
    processes = DatasetIndex.build(root, db_path=tmp_path / "processes.sqlite")
    assert processes.records() == threads.records()


def _split_of(index: DatasetIndex) -> dict[str, str | None]:
    return {r.relpath: r.split for r in index.records()}


def test_splits_are_reproducible_stratified_and_keep_copies_together(
    tmp_path: Path, workspace: Workspace
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 60, "fake": 40})
    add_bad_files(root / "real")
    for i in range(5):  # copies inside a class and across classes
        copy_file(root / "real" / f"real_{i:03d}.png", root / "real" / f"dup_{i}.png")
        copy_file(root / "real" / f"real_{i:03d}.png", root / "fake" / f"cross_{i}.png")
    index = DatasetIndex.build(root, workspace)
    assert not index.has_splits()
    sizes = index.make_splits(seed=3, val=0.2, test=0.1)
    assert index.has_splits() and index.split_params() == {"seed": 3, "val": 0.2, "test": 0.1}
    assert sum(sizes.values()) == 110 == len(index.samples())

    first = _split_of(index)
    assert all(first[f"real/{bad}"] is None for bad in ("truncated.jpg", "notes.jpg", "empty.png"))
    for i in range(5):
        group = {first[f"real/real_{i:03d}.png"], first[f"real/dup_{i}.png"], first[f"fake/cross_{i}.png"]}  # fmt: skip
        assert len(group) == 1
    for label, total in (("real", 65), ("fake", 45)):
        per_split = Counter(s for rel, s in first.items() if rel.startswith(label) and s)
        assert sum(per_split.values()) == total
        assert abs(per_split["val"] - 0.2 * total) <= 5  # a group of 3 copies may straddle
        assert abs(per_split["test"] - 0.1 * total) <= 5
    assert [s.path for s in index.samples("test")] == sorted(s.path for s in index.samples("test"))

    index.make_splits(seed=3, val=0.2, test=0.1)
    assert _split_of(index) == first
    other = DatasetIndex.build(root, db_path=tmp_path / "other.sqlite")
    other.make_splits(seed=3, val=0.2, test=0.1)
    assert _split_of(other) == first
    index.make_splits(seed=4, val=0.2, test=0.1)
    assert _split_of(index) != first


def test_exact_stratification_without_duplicates(tmp_path: Path, workspace: Workspace) -> None:
    index = DatasetIndex.build(make_dataset(tmp_path / "d", {"a": 50, "b": 30, "c": 20}), workspace)
    index.make_splits(seed=0, val=0.1, test=0.2)
    per = Counter((r.label, r.split) for r in index.records())
    for label, n in (("a", 50), ("b", 30), ("c", 20)):
        assert per[label, "test"] == round(0.2 * n)
        assert per[label, "val"] == round(0.1 * n)
        assert per[label, "train"] == n - round(0.2 * n) - round(0.1 * n)


def test_growing_the_data_set_keeps_old_test_images_out_of_training(
    tmp_path: Path, workspace: Workspace
) -> None:
    root = make_dataset(tmp_path / "d", {"real": 100, "fake": 100})
    index = DatasetIndex.build(root, workspace)
    index.make_splits(seed=1)
    before = _split_of(index)
    for i in range(5):
        make_image(root / "real" / f"zz_new_{i}.png", 50_000 + i)
    grown = DatasetIndex.build(root, workspace)
    assert grown.has_splits() and grown.split_params()["seed"] == 1
    after = _split_of(grown)
    assert all(after[f"real/zz_new_{i}.png"] for i in range(5))
    moved = [rel for rel, split in before.items() if after[rel] != split]
    assert len(moved) <= 2
    assert not [rel for rel in moved if before[rel] == "test" and after[rel] == "train"]


def test_index_is_usable_from_other_threads(tmp_path: Path, workspace: Workspace) -> None:
    index = DatasetIndex.build(make_dataset(tmp_path / "d", {"a": 3, "b": 3}), workspace)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(len(index.samples()))) for _ in "xyz"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [6, 6, 6]


def test_decompression_bomb_is_an_error_not_a_crash(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"a": 2, "b": 2})
    buffer = io.BytesIO()
    Image.new("1", (15000, 15000)).save(buffer, "PNG")
    (root / "a" / "bomb.png").write_bytes(buffer.getvalue())
    index = DatasetIndex.build(root, workspace)
    [(path, message)] = index.errors()
    assert path.name == "bomb.png" and "larger than the 200 megapixel limit" in message


KILLABLE_BUILD = """
import sys, time
from pathlib import Path
from core import datasets
analyse = datasets.analyse_file
def slow(*args):
    time.sleep(0.02)
    return analyse(*args)
datasets.BATCH = 4
datasets.analyse_file = slow
def progress(done, total):
    print(done, flush=True)
datasets.DatasetIndex.build(sys.argv[1], db_path=Path(sys.argv[2]), progress=progress, workers=1)
"""


def test_killed_build_resumes(tmp_path: Path) -> None:
    """SIGKILL mid-build (no cleanup at all): committed batches survive, the rest is redone."""
    root = make_dataset(tmp_path / "d", {"real": 20, "fake": 20})
    db_path = tmp_path / "killed.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_BUILD, str(root), str(db_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    for line in child.stdout:
        if int(line) >= 12:
            break
    child.kill()
    child.wait()
    index = DatasetIndex.open(root, db_path=db_path)
    survived = index.count()
    assert not index.is_complete() and 12 <= survived < 40
    resumed = DatasetIndex.build(root, db_path=db_path)
    assert resumed.is_complete() and resumed.last_build.analysed == 40 - survived
    fresh = DatasetIndex.build(root, db_path=tmp_path / "fresh.sqlite")
    assert resumed.records() == fresh.records()


def test_large_jpegs_take_the_reduced_decode_and_stay_comparable(
    tmp_path: Path, workspace: Workspace
) -> None:
    """A 1200x900 JPEG decodes at reduced scale: same facts, near-identical hash, damage found."""
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8))
    photo = small.resize((1200, 900), Image.Resampling.BICUBIC)
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    photo.save(root / "a" / "photo.jpg", quality=90)
    photo.save(root / "b" / "photo.png")
    data = (root / "a" / "photo.jpg").read_bytes()
    (root / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    index = DatasetIndex.build(root, workspace)
    facts = {r.relpath: r for r in index.records()}
    jpeg, png = facts["a/photo.jpg"], facts["b/photo.png"]
    assert (jpeg.width, jpeg.height, jpeg.format, jpeg.jpeg_quality) == (1200, 900, "JPEG", 90)
    assert (png.width, png.height, png.format) == (1200, 900, "PNG")
    assert bin(int(jpeg.phash, 16) ^ int(png.phash, 16)).count("1") <= 4
    assert "truncated" in facts["a/cut.jpg"].error


def test_an_index_of_an_older_analysis_is_redone(tmp_path: Path, workspace: Workspace) -> None:
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    index = DatasetIndex.build(root, workspace)
    index.make_splits()
    with sqlite3.connect(index.db_path) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    again = DatasetIndex.build(root, workspace)
    assert again.last_build.analysed == 6 and not again.has_splits()
    assert DatasetIndex.build(root, workspace).last_build.analysed == 0


def test_the_checker_and_the_data_sets_agree_on_what_an_image_is() -> None:
    from core import datasets, inference
    from core.preprocess import IMAGE_EXTENSIONS

    assert datasets.IMAGE_EXTENSIONS is inference.IMAGE_EXTENSIONS is IMAGE_EXTENSIONS
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".bmp"} <= IMAGE_EXTENSIONS
    assert not {".pdf", ".eps", ".h5", ".txt"} & IMAGE_EXTENSIONS
    assert inference.is_image_name("PHOTO.JPG") and not inference.is_image_name("a.pdf")


def test_folder_links_inside_classes_are_followed_once(
    tmp_path: Path, workspace: Workspace
) -> None:
    outside = make_dataset(tmp_path / "outside", {"more": 3})
    root = make_dataset(tmp_path / "d", {"real": 2, "fake": 2})
    (root / "real" / "more_real").symlink_to(outside / "more", target_is_directory=True)
    (root / "real" / "again").symlink_to(outside / "more", target_is_directory=True)  # repeat
    (root / "fake" / "loop").symlink_to(root / "fake", target_is_directory=True)  # ancestor
    (outside / "more" / "back").symlink_to(outside, target_is_directory=True)  # loop outside
    (root / "fake" / "notes.txt").write_text("not an image")
    index = DatasetIndex.build(root, workspace)
    assert index.counts() == {"fake": 2, "real": 5}
    assert "real/again/more_000.png" in {r.relpath for r in index.records()}
    assert "real/more_real/more_000.png" not in {r.relpath for r in index.records()}
    assert (index.last_build.ignored, index.last_build.links_skipped) == (1, 3)
    assert DatasetIndex.open(root, workspace).passed_over() == (1, 3)


def test_an_incomplete_index_says_so_and_makes_no_splits(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "BATCH", 4)
    root = make_dataset(tmp_path / "d", {"real": 6, "fake": 6})
    seen: list[int] = []
    stopped = DatasetIndex.build(
        root, workspace, progress=lambda done, _: seen.append(done), cancel=lambda: 4 in seen
    )
    assert not stopped.is_complete() and stopped.count() == 4
    assert stopped.expected_files() == 12
    with pytest.raises(UserError, match="incomplete"):
        stopped.make_splits()
    done = DatasetIndex.build(root, workspace)
    assert done.is_complete() and done.count() == done.expected_files() == 12
    assert sum(done.make_splits().values()) == 12


def test_a_build_refuses_to_start_inside_a_starting_worker(
    tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script without the ``__main__`` guard re-runs its build in each spawned worker: that
    worker must fail before touching the index, so the parent falls back to threads."""
    root = make_dataset(tmp_path / "d", {"a": 2, "b": 2})
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match="worker process starts"):
        DatasetIndex.build(root, workspace)
    assert not list(workspace.indexes.iterdir())


def test_position_and_forget(tmp_path: Path, workspace: Workspace) -> None:
    index = DatasetIndex.build(make_dataset(tmp_path / "d", {"a": 3, "b": 3}), workspace)
    assert index.position("b/b_001.png") == 4 and index.position("b/b_001.png", "b") == 1
    assert index.records(offset=4, limit=1)[0].relpath == "b/b_001.png"
    assert index.page_ends(None, 2) == ["a/a_001.png", "b/b_000.png", "b/b_002.png"]
    assert index.page_ends("b", 2) == ["b/b_001.png"]
    datasets.forget_index(index.db_path)
    assert not list(workspace.indexes.iterdir())


ORPHAN_BUILD = """
import multiprocessing, sys, time
from pathlib import Path
from multiprocessing import resource_tracker
from core import datasets
datasets.PROCESS_THRESHOLD = 1
datasets.BATCH = 4
def progress(done, total):
    if done:
        pids = [p.pid for p in multiprocessing.active_children()]
        print(*pids, resource_tracker._resource_tracker._pid, flush=True)
        time.sleep(120)
if __name__ == "__main__":
    datasets.DatasetIndex.build(sys.argv[1], db_path=Path(sys.argv[2]), progress=progress)
"""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_processes_exit_when_the_build_is_killed(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", {"real": 8, "fake": 8})
    script = tmp_path / "orphan_build.py"
    script.write_text(ORPHAN_BUILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(root), str(tmp_path / "i.sqlite")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    helpers = [int(pid) for pid in child.stdout.readline().split()]
    assert len(helpers) >= 2 and all(_alive(pid) for pid in helpers)  # workers + tracker
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in helpers if _alive(pid)]
