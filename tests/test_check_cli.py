"""``deepfake-studio check``: JSON lines, the table, reports and exit status."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.__main__ import main
from core import bundle as bundle_module
from core.inference import RESULT_FIELDS

REPO = Path(__file__).resolve().parents[1]


def run_check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    status = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_json_lines_one_per_image(capsys, tiny_bundle: Path, tiny_image_dir: Path) -> None:
    status, out, err = run_check(capsys, tiny_image_dir, "--model", tiny_bundle, "--json")
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 12
    paths = [line["path"] for line in lines]
    assert paths == sorted(paths) and Path(paths[0]).parent.parent == tiny_image_dir
    for line in lines:
        assert tuple(line) == RESULT_FIELDS
        assert line["verdict"] in {"real", "fake", "unknown"}
        assert line["label"] in {"real", "sd14", "sdxl"}
        assert sum(line["probs"].values()) == pytest.approx(1.0)
        assert line["margin"] == pytest.approx(line["score"] - line["threshold"])
        assert (line["margin"] < 0) == (line["verdict"] == "unknown")
        if line["verdict"] == "fake":
            assert line["label"] != "real"
    assert "resnet10t fp32" in err and "12 images:" in err


def test_table_and_summary(capsys, tiny_bundle: Path, tiny_image_dir: Path, tmp_path) -> None:
    missing = tmp_path / "missing.jpg"
    status, out, _ = run_check(capsys, tiny_image_dir / "real", missing, "--model", tiny_bundle)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("model: resnet10t fp32, real vs 2 fake classes")
    rows = lines[1:-1]
    assert len(rows) == 5
    assert rows[-1].startswith("error") and "file not found" in rows[-1]
    assert all(row.split()[0] in {"real", "fake", "unknown"} for row in rows[:-1])
    assert lines[-1].startswith("5 images:") and lines[-1].endswith("1 error")


def test_reports_in_three_formats(capsys, tiny_bundle: Path, tiny_image_dir: Path, tmp_path):
    results = {}
    for suffix in ("csv", "json", "html"):
        report = tmp_path / f"out.{suffix}"
        status, out, _ = run_check(
            capsys, tiny_image_dir, "--model", tiny_bundle, "--report", report, "--batch-size", "5"
        )
        assert status == 0 and f"report written to {report}" in out
        results[suffix] = report
    with open(results["csv"], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert {"p_real", "p_sd14", "p_sdxl", "margin", "explanation"} <= set(rows[0])
    body = json.loads(results["json"].read_text())
    assert body["format"] == "deepfake-studio/check-report"
    assert sum(body["counts"].values()) == 12
    assert [r["path"] for r in body["results"]] == [r["path"] for r in rows]
    page = results["html"].read_text()
    assert page.count("data:image/jpeg;base64,") == 2 * 12  # thumbnail + heatmap overlay
    assert f"{body['counts']['real']} real" in page
    assert results["html"].stat().st_size < 24 * 6000  # at most ~6 KB per noise thumbnail


def test_nothing_readable_exits_2(capsys, tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    status, out, err = run_check(capsys, tmp_path / "a.jpg", "--model", tiny_bundle, "--json")
    assert status == 2
    assert json.loads(out)["verdict"] == "error"
    assert "error: none of the 1 file(s) could be read as an image" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run_check(capsys, empty, "--model", tiny_bundle)
    assert status == 2 and "error: no image files found in" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/bundle"], "model bundle /nonexistent/bundle does not exist"),
        (["--report", "out.pdf"], "report must end in .csv, .json, .html"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_options_are_clear(capsys, tiny_bundle, tiny_image_dir, args, message) -> None:
    if "--model" not in args:
        args = [*args, "--model", str(tiny_bundle)]
    status, _, err = run_check(capsys, tiny_image_dir, *args)
    assert status == 2 and f"error: {message}" in err


def test_an_unwritable_report_is_refused_before_the_work(
    capsys, tiny_bundle, tiny_image_dir, tmp_path
):
    (tmp_path / "file.jpg").write_bytes(b"")
    for report, reason in [
        (tmp_path / "file.jpg" / "r.csv", f"{tmp_path / 'file.jpg'} is a file, not a folder"),
        (Path("/proc/r.csv"), "cannot write in /proc (No such file or directory)"),
    ]:
        status, out, err = run_check(
            capsys, tiny_image_dir, "--model", tiny_bundle, "--report", report
        )
        assert status == 2 and out == ""  # nothing was checked
        assert err == f"error: Could not save the report to {report}: {reason}\n"


def test_a_report_that_fails_at_the_end_is_a_clear_error(
    capsys, tiny_bundle, tiny_image_dir, tmp_path, monkeypatch
) -> None:
    import core.report_export

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.report_export, "write_csv", disk_full)
    report = tmp_path / "r.csv"
    status, out, err = run_check(capsys, tiny_image_dir, "--model", tiny_bundle, "--report", report)
    assert status == 2 and len(out.splitlines()) == 14  # the verdicts were printed
    assert err == f"error: Could not save the report to {report}: No space left on device\n"


def test_unreadable_entries_of_a_folder_are_skipped_with_a_warning(
    capsys, tiny_bundle, tiny_image_dir, tmp_path
) -> None:
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")  # stat fails, like /proc/1's fd entries
    status, out, err = run_check(capsys, tiny_image_dir / "real", tmp_path, "--model", tiny_bundle)
    assert status == 0 and out.splitlines()[-1].startswith("4 images:")
    assert err.startswith(f"warning: 1 unreadable entry was skipped (e.g. {tmp_path / 'loop.jpg'}:")
    status, _, err = run_check(capsys, tmp_path, "--model", tiny_bundle)
    assert status == 2 and "no image files found in" in err and "1 unreadable entry" in err


def test_default_bundle(capsys, tiny_bundle, tiny_image_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bundle_module, "default_bundle_path", lambda: tmp_path / "none")
    status, _, err = run_check(capsys, tiny_image_dir)
    assert status == 2 and "no default model bundle" in err and "--model BUNDLE" in err
    monkeypatch.setattr(bundle_module, "default_bundle_path", lambda: tiny_bundle)
    status, out, _ = run_check(capsys, tiny_image_dir / "sd14", "--json")
    assert status == 0 and len(out.splitlines()) == 4


def test_real_entry_point_in_a_subprocess(tiny_bundle_zip: Path, tiny_image_dir: Path, tmp_path):
    env = {"DEEPFAKE_STUDIO_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    command = ["-m", "app", "check", str(tiny_image_dir / "real"), "--model", str(tiny_bundle_zip)]
    out = subprocess.run(
        [sys.executable, *command, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 4 and all(line["path"].endswith((".jpg", ".png")) for line in lines)
    assert (tmp_path / "cache" / "bundles").is_dir()


def test_html_heatmap_thumbnails_show_the_model_s_map(tiny_bundle: Path, tmp_path: Path):
    from core.bundle import load_bundle
    from core.explain import class_map, heatmap_for_image, overlay
    from core.inference import OnnxPredictor
    from core.report_export import load_thumbnail, thumbnails

    predictor = OnnxPredictor(load_bundle(tiny_bundle))
    path = tmp_path / "smooth.png"  # smooth, so JPEG thumbnails are close to exact
    ramp = np.linspace(60, 200, 80).astype(np.uint8)
    Image.fromarray(np.tile(ramp[None, :, None], (80, 1, 3))).save(path)
    result = predictor.predict_path(path)
    plain, heat_uri = thumbnails(result, predictor.preprocess)
    assert thumbnails(result, None) == [plain]

    def decode(uri: str) -> np.ndarray:
        data = base64.b64decode(uri.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)

    rgb = load_thumbnail(path)
    index = predictor.class_names.index(result.label)
    expected = overlay(
        rgb, heatmap_for_image(class_map(result.cam, index), rgb.shape[:2], predictor.preprocess)
    )
    assert np.abs(decode(heat_uri) - expected).mean() < 4  # JPEG noise only
    assert np.abs(decode(heat_uri) - decode(plain)).mean() > 10  # the map is visible


SHARED = REPO.parent / "shared" / "data"


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "scenes").is_dir(), reason="../shared/data/scenes is absent")
def test_real_photos_from_every_class_are_checked(capsys, tiny_bundle: Path) -> None:
    folders = sorted(p for p in (SHARED / "scenes").iterdir() if p.is_dir())
    picks = [str(sorted(folder.iterdir())[0]) for folder in folders]
    status, out, _ = run_check(capsys, *picks, "--model", tiny_bundle, "--json")
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == picks
    assert all(line["verdict"] in {"real", "fake", "unknown"} for line in lines)


def test_a_pipe_named_explicitly_is_an_error_row_not_a_hang(
    capsys, tiny_bundle, tiny_image_dir, tmp_path
):
    import os

    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    good = next((tiny_image_dir / "real").iterdir())
    status, out, _ = run_check(capsys, fifo, good, "--model", tiny_bundle)
    assert status == 0
    rows = out.splitlines()[1:-1]
    assert rows[0].startswith("error")
    assert rows[0].endswith(f"{fifo}: not a regular file (a pipe, device or socket)")
    assert rows[1].split()[0] in {"real", "fake", "unknown"}


def test_model_may_name_the_bundle_json_and_a_truncated_zip_is_called_damaged(
    capsys, tiny_bundle, tiny_bundle_zip, tiny_image_dir, tmp_path
) -> None:
    status, out, _ = run_check(
        capsys, tiny_image_dir / "real", "--model", tiny_bundle / "bundle.json"
    )
    assert status == 0 and out.splitlines()[-1].startswith("4 images:")
    truncated = tmp_path / "download.zip"
    truncated.write_bytes(tiny_bundle_zip.read_bytes()[:5000])
    status, _, err = run_check(capsys, tiny_image_dir, "--model", truncated)
    assert status == 2
    assert err == "error: download.zip is a damaged zip (truncated or an incomplete download?)\n"
