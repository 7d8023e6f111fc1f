"""The PyInstaller build (build.spec) starts and works: CLI, selftest, a training job, export,
check and the GUI, all through the frozen executable.

Opt-in (minutes of build time, gigabytes of disk): ``DEEPFAKE_STUDIO_TEST_PACKAGING=1``. Set
``DEEPFAKE_STUDIO_FROZEN_APP=dist/deepfake-studio/deepfake-studio`` to smoke-test an existing
build instead of building one into a temporary folder. Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.synthetic import make_image_set

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DEEPFAKE_STUDIO_TEST_PACKAGING") != "1",
        reason="packaging test is opt-in: set DEEPFAKE_STUDIO_TEST_PACKAGING=1 (builds for minutes)",
    ),
    pytest.mark.timeout(3600),
]


@pytest.fixture(scope="module")
def frozen_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frozen executable: an existing build or a fresh one from build.spec."""
    existing = os.environ.get("DEEPFAKE_STUDIO_FROZEN_APP")
    if existing:
        return Path(existing).resolve()
    pyinstaller = shutil.which("pyinstaller", path=str(Path(sys.executable).parent))
    if pyinstaller is None:
        pytest.skip("PyInstaller is not installed: pip install -e '.[package]'")
    out = tmp_path_factory.mktemp("pyinstaller")
    command = [pyinstaller, "--noconfirm", "--distpath", str(out / "dist")]
    command += ["--workpath", str(out / "build"), "build.spec"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-4000:]
    return out / "dist" / "deepfake-studio" / "deepfake-studio"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("frozen-work")


def run_app(app: Path, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the frozen app from a neutral folder (so nothing resolves from the source tree)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    result = subprocess.run(
        [str(app), *args],
        cwd=kwargs.pop("cwd", app.parent.parent),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    print(f"\n[frozen] {' '.join(args[:3])}: exit {result.returncode} in {seconds:.1f} s")
    return result


def test_help_is_fast_and_lists_every_command(frozen_app: Path):
    from app.__main__ import COMMANDS

    result = run_app(frozen_app, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: deepfake-studio")
    for name in COMMANDS:
        assert name in result.stdout


def test_unknown_command_exit_2(frozen_app: Path):
    result = run_app(frozen_app, "frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.fixture(scope="module")
def trained_run(frozen_app: Path, workdir: Path) -> Path:
    """A resnet10t trained for one epoch by the frozen app's job runner (torch + timm frozen)."""
    data = make_image_set(workdir / "data", {"real": 16, "fake": 16}, size=(40, 48))
    run_dir = workdir / "runs" / "tiny"
    job = {
        "kind": "finetune",
        "data": str(data),
        "out": str(run_dir),
        "arch": "resnet10t",
        "img_size": 32,
        "epochs": 1,
        "batch_size": 8,
        "threads": 1,
        "workspace": str(workdir / "ws"),
    }
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps(job))
    result = run_app(frozen_app, "job", str(job_file))
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, result.stderr[-3000:]
    assert events and events[-1]["type"] == "done", events[-3:]
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "model.json").is_file()
    return run_dir


def test_index_with_worker_processes_frozen(frozen_app: Path, workdir: Path):
    """2000 files: enough for core.datasets to use spawned worker processes, which in the
    frozen app re-run the executable itself (multiprocessing.freeze_support)."""
    from core.datasets import PROCESS_THRESHOLD

    per_class = PROCESS_THRESHOLD // 2
    data = make_image_set(
        workdir / "index-data", {"real": per_class, "fake": per_class}, size=(8, 8)
    )
    result = run_app(
        frozen_app,
        "--workspace",
        str(workdir / "ws"),
        "index",
        str(data),
        "--workers",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "failed to start" not in result.stderr  # no silent fallback to threads
    body = json.loads(result.stdout)
    assert body["files"] == 2 * per_class and body["unreadable"] == 0


def test_training_job_runs_frozen(trained_run: Path):
    metrics = (trained_run / "metrics.csv").read_text().splitlines()
    assert len(metrics) >= 2  # a header and one epoch


@pytest.fixture(scope="module")
def exported_bundle(frozen_app: Path, trained_run: Path, workdir: Path) -> Path:
    bundle = workdir / "bundle"
    result = run_app(frozen_app, "export", str(trained_run), "--out", str(bundle), "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (bundle / "bundle.json").is_file() and (bundle / "model.onnx").is_file()
    return bundle


def test_selftest_passes_frozen(frozen_app: Path, exported_bundle: Path, workdir: Path):
    result = run_app(
        frozen_app, "--workspace", str(workdir / "ws"), "selftest", "--model", str(exported_bundle)
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        f"PASS {name}" for name in ("python", "onnxruntime", "workspace", "bundle", "torch", "qt")
    ]
    assert "(frozen app)" in lines[0] and "(ops registered)" in result.stdout


def test_check_frozen(frozen_app: Path, exported_bundle: Path, workdir: Path):
    image = next((workdir / "data" / "fake").iterdir())
    result = run_app(frozen_app, "check", str(image), "--model", str(exported_bundle), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.splitlines()[0])
    assert row["verdict"] in ("real", "fake", "unknown")
    assert Path(row["path"]).name == image.name


def shipped_bundles(frozen_app: Path) -> list[Path]:
    return sorted(
        p.parent for p in frozen_app.parent.glob("_internal/assets/bundles/*/bundle.json")
    )


def test_shipped_bundles_verify_frozen(frozen_app: Path, workdir: Path):
    bundles = shipped_bundles(frozen_app)
    if not bundles:
        pytest.skip("this build ships no bundle (assets/bundles was empty)")
    for bundle in bundles:
        result = run_app(
            frozen_app, "--workspace", str(workdir / "ws"), "selftest", "--model", str(bundle)
        )
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        assert "golden vectors OK" in result.stdout


def test_cifake_bundle_on_real_cifake_images_frozen(frozen_app: Path):
    bundle = frozen_app.parent / "_internal" / "assets" / "bundles" / "cifake"
    data = REPO.parent / "shared" / "data" / "cifake" / "test"
    if not (bundle / "bundle.json").is_file() or not data.is_dir():
        pytest.skip("needs the shipped cifake bundle and ../shared/data/cifake")
    images = [p for name in ("real", "fake") for p in sorted((data / name).iterdir())[:50]]
    result = run_app(frozen_app, "check", *map(str, images), "--model", str(bundle), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    decided = [r for r in rows if r["verdict"] in ("real", "fake")]
    right = sum(r["verdict"] == Path(r["path"]).parent.name for r in decided)
    print(
        f"[frozen] cifake bundle: {right}/{len(decided)} right, {len(rows) - len(decided)} unknown"
    )
    assert len(rows) == 100 and len(decided) >= 50 and right >= 0.85 * len(decided)


def test_check_with_the_default_bundle(frozen_app: Path, workdir: Path):
    bundled = frozen_app.parent / "_internal" / "assets" / "bundles" / "default" / "bundle.json"
    if not bundled.is_file():
        pytest.skip("this build has no default bundle (assets/bundles/default was empty)")
    image = next((workdir / "data" / "real").iterdir())
    result = run_app(frozen_app, "check", str(image), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[0])["verdict"] in ("real", "fake", "unknown")


def test_gui_shows_its_window_offscreen_without_crashing(frozen_app: Path, workdir: Path):
    """Qt's own widget log tells when the main window became visible; then it must stay up."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "QT_LOGGING_RULES": "qt.widgets.showhide=true",
        "DEEPFAKE_STUDIO_HOME": str(workdir / "gui-ws"),
    }
    log = workdir / "gui.log"
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(frozen_app)], stdout=handle, stderr=subprocess.STDOUT, text=True, env=env
        )
        try:
            shown = None
            while shown is None and time.perf_counter() - start < 120 and process.poll() is None:
                time.sleep(0.1)
                if re.search(r"visibility of MainWindow\(.* to true", log.read_text()):
                    shown = time.perf_counter() - start
            assert shown is not None, log.read_text()[-3000:]
            print(f"\n[frozen] GUI window shown after {shown:.1f} s")
            time.sleep(5)
            assert process.poll() is None, log.read_text()[-3000:]
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert "Traceback" not in log.read_text()
