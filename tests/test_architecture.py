"""The dependency rule (docs: design notes): ``core`` never imports Qt, ``training`` or ``app``;
``training`` never imports Qt or ``app``; the CLI's ``--help`` loads no heavy library.

Each check runs in a fresh interpreter so nothing this test process already imported hides a
violation. Blocked packages are refused by a meta path finder that raises ImportError.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]
QT = ("PySide6", "shiboken6", "pyqtgraph")
HEAVY = ("torch", "torchvision", "timm", "onnxruntime", "PySide6", "pyqtgraph")

IMPORT_ALL = """
import importlib, json, pkgutil, sys

BLOCKED = set({blocked!r})


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked by the dependency rule: {{name}}")
        return None


sys.meta_path.insert(0, Blocker())
package = importlib.import_module({package!r})
imported = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    imported.append(info.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({{"imported": imported, "leaked": leaked}}))
"""

HEAVY_AFTER = """
import json, runpy, sys

HEAVY = {heavy!r}
report = {{}}
for argv in {argvs!r}:
    sys.argv = ["deepfake-studio", *argv]
    try:
        {runner}
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
    finally:
        report[" ".join(argv)] = sorted(m for m in HEAVY if m in sys.modules)
print("\\n" + json.dumps(report))
"""


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def import_everything(package: str, blocked: tuple[str, ...]) -> dict:
    out = run_python(IMPORT_ALL.format(package=package, blocked=blocked))
    return json.loads(out.strip().splitlines()[-1])


def test_core_imports_without_qt_training_or_app():
    report = import_everything("core", (*QT, "training", "app"))
    modules = {p.stem for p in (REPO / "core").glob("*.py")} - {"__init__"}
    assert {m.removeprefix("core.") for m in report["imported"][1:]} == modules
    assert report["leaked"] == []


def test_training_imports_without_qt_or_app():
    report = import_everything("training", (*QT, "app"))
    modules = {p.stem for p in (REPO / "training").glob("*.py")} - {"__init__"}
    assert {m.removeprefix("training.") for m in report["imported"][1:]} == modules
    assert report["leaked"] == []


def test_the_blocker_really_blocks():
    code = IMPORT_ALL.format(package="json", blocked=("json",))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "blocked by the dependency rule: json" in result.stderr


def heavy_modules_after(argvs: list[list[str]], runner: str) -> dict[str, list[str]]:
    out = run_python(HEAVY_AFTER.format(heavy=HEAVY, argvs=argvs, runner=runner))
    return json.loads(out.strip().splitlines()[-1])


def test_python_dash_m_app_help_loads_nothing_heavy():
    report = heavy_modules_after([["--help"]], "runpy.run_module('app', run_name='__main__')")
    assert report == {"--help": []}


def test_console_script_help_loads_nothing_heavy():
    script = shutil.which("deepfake-studio", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the deepfake-studio console script is not installed in this environment")
    report = heavy_modules_after([["--help"]], f"runpy.run_path({script!r}, run_name='__main__')")
    assert report == {"--help": []}
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: deepfake-studio")


def test_every_subcommand_help_loads_nothing_heavy():
    argvs = [[name, "--help"] for name in COMMANDS]
    report = heavy_modules_after(argvs, "runpy.run_module('app', run_name='__main__')")
    assert report == {f"{name} --help": [] for name in COMMANDS}


def test_import_linter_contracts_are_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout
