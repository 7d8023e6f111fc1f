"""``deepfake-studio index``: summary, JSON, splits, hygiene and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_datasets_support import add_bad_files, copy_file, make_dataset

from app.__main__ import main


def run_cli(capsys: pytest.CaptureFixture, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(tmp_path / "ws"), "index", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = make_dataset(tmp_path / "data", {"real": 20, "fake": 10})
    add_bad_files(root / "fake")
    copy_file(root / "real" / "real_000.png", root / "real" / "copy.png")
    return root


def test_json_summary_with_splits(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run_cli(capsys, tmp_path, str(data), "--splits", "--seed", "5", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["classes"] == {"fake": 10, "real": 21}
    assert body["files"] == 34 and body["unreadable"] == 3
    assert body["duplicates"] == {"files": 1, "groups": 1}
    assert sum(body["splits"].values()) == 31
    assert body["split_params"] == {"seed": 5, "val": 0.1, "test": 0.1}
    assert body["build"]["analysed"] == 34
    assert "indexing" in err and f"{34}/{34} files" in err
    assert Path(body["index"]).parent == tmp_path / "ws" / "indexes"

    code, out, _ = run_cli(capsys, tmp_path, str(data), "--json", "--hygiene")
    again = json.loads(out)
    assert again["build"]["analysed"] == 0 and again["splits"] == body["splits"]
    kinds = {f["kind"] for f in again["hygiene"]["findings"]}
    assert {"unreadable", "duplicates", "tiny_class"} <= kinds


def test_text_summary(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, tmp_path, str(data), "--hygiene", "--splits")
    assert code == 0
    assert "34 files in 2 classes" in out
    assert "  real  21" in out and "  fake  10" in out
    assert "unreadable: 3" in out and "empty.png: file is empty" in out
    assert "exact duplicates: 1 extra copy in 1 group" in out
    assert "splits (seed 0, val 0.1, test 0.1): train" in out
    assert "error: unreadable files, left out of training: 3 files" in out


def test_against_reports_identical_files(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = make_dataset(tmp_path / "other", {"real": 3, "fake": 3}, seed=9)
    copy_file(data / "real" / "real_004.png", other / "fake" / "leaked.png")
    code, out, _ = run_cli(capsys, tmp_path, str(data), "--against", str(other), "--json")
    assert code == 0
    against = json.loads(out)["against"]
    assert against["files"] == 1
    assert against["finding"]["groups"][0][1].endswith("fake/leaked.png")


@pytest.mark.parametrize(
    ("layout", "extra", "message"),
    [
        ("missing", [], "no such folder"),
        ("file", [], "is a file"),
        ("empty", [], "the folder is empty"),
        ("flat", [], "directly in the folder"),
        ("one_class", ["--splits"], "at least 2 classes"),
        ("small_class", ["--splits"], "'fake' has 1"),
        ("ok", ["--splits", "--val", "0.6", "--test", "0.5"], "no images for training"),
    ],
)
def test_bad_input_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, layout: str, extra: list[str], message: str
) -> None:
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        root.mkdir()
    elif layout == "flat":
        make_dataset(root, {"x": 2})
        for path in (root / "x").iterdir():
            path.rename(root / path.name)
        (root / "x").rmdir()
    elif layout == "one_class":
        make_dataset(root, {"real": 3})
    elif layout == "small_class":
        make_dataset(root, {"real": 3, "fake": 1})
    elif layout == "ok":
        make_dataset(root, {"real": 3, "fake": 3})
    code, out, err = run_cli(capsys, tmp_path, str(root), *extra)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in err


def test_up_to_date_and_one_class_messages(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_dataset(tmp_path / "one", {"real": 3})
    (root / "real" / "notes.txt").write_text("x")
    run_cli(capsys, tmp_path, str(root))
    code, out, err = run_cli(capsys, tmp_path, str(root))
    assert code == 0 and "indexing" not in err  # nothing to analyse: no "0/0 files" line
    assert "3 files in 1 class (" in out and "1 non-image file ignored" in out
    assert "only 1 class: needs at least 2 classes to train" in out
    assert "exact duplicates: 0 extra copies in 0 groups" in out
    code, out, _ = run_cli(capsys, tmp_path, str(root), "--json")
    assert json.loads(out)["complete"] is True and json.loads(out)["expected_files"] == 3
