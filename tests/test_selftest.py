"""``deepfake-studio selftest``: PASS/FAIL/SKIP per check, exit 0 only when nothing failed."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.commands import selftest
from app.commands.selftest import FAIL, PASS, SKIP, Skipped, run_check

REPO = Path(__file__).resolve().parents[1]
CHECK_NAMES = ["python", "onnxruntime", "workspace", "bundle", "torch", "qt"]


def args_for(tmp_path: Path, model: Path | None = None, json_out: bool = False):
    return argparse.Namespace(
        workspace=str(tmp_path / "ws"), model=str(model) if model else None, json=json_out
    )


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Stub the torch and Qt checks (the subprocess test runs them for real): keeps this process
    free of a QGuiApplication and the test fast."""
    monkeypatch.setattr(selftest, "check_torch", lambda: "torch stub")
    monkeypatch.setattr(selftest, "check_qt", lambda: "qt stub")
    return monkeypatch


def test_full_selftest_in_a_fresh_process(tiny_bundle: Path, tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "--workspace",
            str(tmp_path / "ws"),
            "selftest",
            "--model",
            str(tiny_bundle),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    assert {c["status"] for c in report["checks"]} == {PASS}, report["checks"]
    details = {c["name"]: c["detail"] for c in report["checks"]}
    assert "golden vectors OK: 2 vector(s)" in details["bundle"]
    assert "resnet10t fp32, real vs 2 fake classes (sd14, sdxl)" in details["bundle"]
    assert "(ops registered)" in details["torch"] and "resnet10t forward OK" in details["torch"]
    assert "platform offscreen, app icon renders" in details["qt"]
    assert str(tmp_path / "ws") in details["workspace"]
    versions = report["versions"]
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    import onnxruntime

    assert versions["onnxruntime"] == onnxruntime.__version__
    assert versions["frozen"] == "false"
    assert all(c["seconds"] >= 0 for c in report["checks"])


def test_human_output_and_exit_status(
    quick, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert selftest.run(args_for(tmp_path, tiny_bundle)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"PASS {n}" for n in CHECK_NAMES]
    assert lines[-1] == "all checks passed"


def test_damaged_golden_vectors_fail(
    quick, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    golden_path = bundle / "golden" / "golden.json"
    golden = json.loads(golden_path.read_text())
    golden["vectors"][0]["logits"] = [v + 0.5 for v in golden["vectors"][0]["logits"]]
    golden_path.write_text(json.dumps(golden))
    assert selftest.run(args_for(tmp_path, bundle)) == 1
    lines = capsys.readouterr().out.splitlines()
    [bundle_line] = [line for line in lines if " bundle: " in line]
    assert bundle_line.startswith("FAIL bundle: RuntimeError: ")
    assert "golden vectors MISMATCH" in bundle_line and "logits 5.00e-01" in bundle_line
    assert lines[-1] == "1 check(s) FAILED"


def test_missing_default_bundle_fails_with_the_fix(
    quick, tmp_path: Path, capsys: pytest.CaptureFixture
):
    import core.bundle

    quick.setattr(core.bundle, "default_bundle_path", lambda: tmp_path / "nowhere")
    assert selftest.run(args_for(tmp_path, json_out=True)) == 1
    report = json.loads(capsys.readouterr().out)
    bundle = next(c for c in report["checks"] if c["name"] == "bundle")
    assert report["ok"] is False and bundle["status"] == FAIL
    assert bundle["detail"].startswith("no default model bundle at")  # words, no "UserError:"
    assert "--model BUNDLE" in bundle["detail"]


def test_unwritable_workspace_fails(
    quick, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = args_for(tmp_path, tiny_bundle, json_out=True)
    args.workspace = str(blocker / "ws")
    assert selftest.run(args) == 1
    report = json.loads(capsys.readouterr().out)
    workspace = next(c for c in report["checks"] if c["name"] == "workspace")
    assert workspace["status"] == FAIL and str(blocker) in workspace["detail"]


def test_skipped_check_does_not_fail(
    quick, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    def no_torch() -> str:
        raise Skipped("torch is not installed")

    quick.setattr(selftest, "check_torch", no_torch)
    assert selftest.run(args_for(tmp_path, tiny_bundle, json_out=True)) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["torch"] == SKIP and report["ok"] is True


def test_run_check_turns_exceptions_into_fail():
    def boom() -> str:
        raise ValueError("bad things")

    failed = run_check("x", boom)
    assert (failed.status, failed.detail) == (FAIL, "ValueError: bad things")
    passed = run_check("y", lambda: "fine")
    assert (passed.name, passed.status, passed.detail) == ("y", PASS, "fine")
    assert passed.seconds >= 0
