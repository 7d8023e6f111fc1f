"""onnxruntime-node reproduces exported bundles: mobile/node/check_bundle.mjs on real exports.

The bundles come from the export job (``training.export``) on ``trained_run`` (tests/conftest.py,
a resnet10t fine-tune run): ``exported_bundle`` (FP32, with a CAM output) and an INT8 (QDQ)
export of the same run made here; their golden logits are Python onnxruntime's. The Node script
runs each golden input through the model and applies the decision rule in JavaScript; logits,
probabilities, scores and verdicts must match. ``node_modules`` is installed on first use from the committed lockfile
(``npm ci``; the onnxruntime-node package carries its CPU binaries, so no download step).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "mobile" / "node"
SCRIPT = NODE_DIR / "check_bundle.mjs"
NPM_CI = ("ci", "--onnxruntime-node-install=skip", "--prefer-offline", "--no-audit", "--no-fund")
INSTALL_LOCK = Path(tempfile.gettempdir()) / "deepfake-studio-npm-ci.lock"


def _installed_version() -> str | None:
    package = NODE_DIR / "node_modules" / "onnxruntime-node" / "package.json"
    return json.loads(package.read_text())["version"] if package.is_file() else None


def _locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/onnxruntime-node"]["version"]


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with mobile/node/node_modules installed from the lockfile."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    if executable is None or npm is None:
        pytest.skip("node and npm are needed for the onnxruntime-node parity check")
    with open(INSTALL_LOCK, "w") as lock:  # parallel test runs share node_modules
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != _locked_version():
            install = subprocess.run(
                [npm, *NPM_CI],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if install.returncode != 0:
                pytest.skip(f"npm ci failed (offline without a cache?): {install.stderr[-500:]}")
    return executable


@pytest.fixture(scope="module")
def bundles(exported_bundle: Path, trained_run: Path, tmp_path_factory) -> dict[str, Path]:
    """``fp32``: ``exported_bundle``; ``int8``: the same run exported with static INT8."""
    from core.events import EventWriter
    from training.export import run

    int8 = tmp_path_factory.mktemp("node-int8") / "tiny-int8"
    config = {"run": str(trained_run), "out": str(int8), "int8": True, "threads": 1}
    run({**config, "latency_repeats": 5}, EventWriter("node-parity-int8", []))
    return {"fp32": exported_bundle, "int8": int8}


def check(node: str, bundle: Path) -> tuple[int, dict]:
    """Run check_bundle.mjs; its exit status and JSON summary."""
    result = subprocess.run(
        [node, str(SCRIPT), str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_node_reproduces_the_exported_bundle(node: str, bundles, precision: str) -> None:
    bundle = bundles[precision]
    status, summary = check(node, bundle)
    golden = json.loads((bundle / "golden" / "golden.json").read_text())
    assert json.loads((bundle / "bundle.json").read_text())["model"]["precision"] == precision
    print(
        f"Node vs Python ({precision}): logits max |diff| {summary['max_logits_diff']:.3g}, "
        f"probs {summary['max_probs_diff']:.3g} ({summary['runtime']})"
    )
    assert status == 0, summary
    assert summary["ok"] is True and summary["failures"] == []
    assert summary["vectors"] == len(golden["vectors"]) >= 2
    assert summary["verdicts_equal"] == summary["vectors"]
    assert summary["max_logits_diff"] <= golden["tolerance"]["logits"]
    assert summary["max_probs_diff"] <= golden["tolerance"]["probs"]
    assert summary["runtime"].startswith(f"onnxruntime-node {_locked_version()}")


def test_node_reports_mismatching_logits(node: str, exported_bundle: Path, tmp_path: Path) -> None:
    bundle = shutil.copytree(exported_bundle, tmp_path / "tampered")
    golden_file = bundle / "golden" / "golden.json"
    golden = json.loads(golden_file.read_text())
    golden["vectors"][1]["logits"][0] += 0.01
    golden_file.write_text(json.dumps(golden))
    status, summary = check(node, bundle)
    assert status == 1
    assert summary["ok"] is False
    assert 0.009 < summary["max_logits_diff"] < 0.011
    name = golden["vectors"][1]["name"]
    assert any(f.startswith(f"{name}: logits differ by") for f in summary["failures"])


def test_node_refuses_a_modified_model_or_unknown_version(
    node: str, exported_bundle: Path, tmp_path: Path
) -> None:
    bundle = shutil.copytree(exported_bundle, tmp_path / "modified")
    with open(bundle / "model.onnx", "ab") as model:
        model.write(b"\0")
    status, summary = check(node, bundle)
    assert status == 2
    assert "model.onnx is damaged or was replaced" in summary["error"]

    meta = json.loads((exported_bundle / "bundle.json").read_text())
    meta["format_version"] = 2
    newer = shutil.copytree(exported_bundle, tmp_path / "newer")
    (newer / "bundle.json").write_text(json.dumps(meta))
    status, summary = check(node, newer)
    assert status == 2
    assert summary["error"] == "bundle format version 2 is not supported"


def test_node_applies_the_energy_floor(node: str, tmp_path: Path) -> None:
    """A bundle whose energy floor rejects a vector its threshold accepts: same verdicts."""
    from tests.test_mobile_jvm import FLOORED, write_geometry_bundle

    bundle = write_geometry_bundle(FLOORED, tmp_path / "floored")
    golden = json.loads((bundle / "golden" / "golden.json").read_text())
    assert [v["verdict"] for v in golden["vectors"]].count("unknown") == 2
    status, summary = check(node, bundle)
    assert status == 0, summary
    assert summary["verdicts_equal"] == summary["vectors"] == len(golden["vectors"])
