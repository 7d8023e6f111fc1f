"""``deepfake-studio selftest``: a health check a support person can ask a user to run.

Each check prints ``PASS``, ``FAIL`` or ``SKIP`` (not installed, not needed) with one line of
detail; the exit status is 0 only when no check failed. Works the same in the PyInstaller-frozen
app, where it also proves that the bundled torch, torchvision ops, onnxruntime and Qt plugins load.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import UserError

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
VERSIONED = (
    "deepfake-studio",
    "numpy",
    "pillow",
    "onnxruntime",
    "torch",
    "torchvision",
    "timm",
    "PySide6",
)
"""Distributions whose versions the report lists."""


@dataclass
class CheckResult:
    """One line of the report."""

    name: str
    status: str
    detail: str
    seconds: float = 0.0


class Skipped(Exception):
    """Raised by a check that does not apply (an optional component is not installed)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "selftest",
        help="check that this installation works (PASS/FAIL per check)",
        description="Check versions, the workspace, the default model bundle (golden vectors "
        "through onnxruntime), torch/timm and the Qt offscreen platform. Exit status 0 only if "
        "every check passes.",
    )
    parser.add_argument(
        "--model",
        metavar="BUNDLE",
        help="verify this bundle (folder or .zip) instead of the default one",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("python", check_python),
        ("onnxruntime", check_onnxruntime),
        ("workspace", lambda: check_workspace(getattr(args, "workspace", None))),
        ("bundle", lambda: check_bundle(getattr(args, "model", None))),
        ("torch", check_torch),
        ("qt", check_qt),
    ]
    results = []
    for name, check in checks:
        result = run_check(name, check)
        results.append(result)
        if not args.json:
            print(f"{result.status} {result.name}: {result.detail}", flush=True)
    ok = all(r.status != FAIL for r in results)
    if args.json:
        from app.commands import print_json

        print_json(
            {"ok": ok, "versions": versions(), "checks": [asdict(r) for r in results]},
        )
    else:
        failed = sum(r.status == FAIL for r in results)
        print("all checks passed" if ok else f"{failed} check(s) FAILED", flush=True)
    return 0 if ok else 1


def run_check(name: str, check: Callable[[], str]) -> CheckResult:
    """Run one check; any exception is a FAIL whose detail is the exception's message."""
    start = time.perf_counter()
    try:
        status, detail = PASS, check()
    except Skipped as exc:
        status, detail = SKIP, str(exc)
    except UserError as exc:  # a problem the check explains in words
        status, detail = FAIL, str(exc)
    except Exception as exc:  # a health check reports every failure instead of crashing
        status, detail = FAIL, f"{type(exc).__name__}: {exc}".strip()
    return CheckResult(name, status, detail, round(time.perf_counter() - start, 3))


def versions() -> dict[str, str | None]:
    """Versions of Python, this app and its main libraries (``None``: not installed)."""
    from importlib import metadata

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in VERSIONED:
        found[dist] = _dist_version(dist, metadata)
    found["frozen"] = str(bool(getattr(sys, "frozen", False))).lower()
    return found


def _dist_version(dist: str, metadata) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        module = {"pillow": "PIL", "deepfake-studio": "app"}.get(dist, dist)
        return getattr(sys.modules.get(module), "__version__", None)


# -- checks: each returns its detail line or raises ---------------------------------------------
def check_python() -> str:
    import platform

    frozen = " (frozen app)" if getattr(sys, "frozen", False) else ""
    return f"Python {platform.python_version()} on {platform.platform(terse=True)}{frozen}"


def check_onnxruntime() -> str:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        raise RuntimeError(f"no CPU execution provider (have {providers})")
    return f"onnxruntime {onnxruntime.__version__}, providers {', '.join(providers)}"


def check_workspace(override: str | None) -> str:
    import os
    import shutil
    import tempfile

    from core.workspace import Workspace

    workspace = Workspace.resolve(override)
    runs = workspace.runs
    with tempfile.NamedTemporaryFile("w+", dir=runs, prefix=".selftest-", delete=True) as probe:
        probe.write("ok")
        probe.flush()
        os.fsync(probe.fileno())
        probe.seek(0)
        if probe.read() != "ok":
            raise RuntimeError(f"{runs}: wrote a file but read back something else")
    free_gb = shutil.disk_usage(workspace.root).free / 1e9
    return f"{workspace.root} is writable ({free_gb:.1f} GB free)"


def check_bundle(path: str | None) -> str:
    from core.bundle import load_bundle, load_default_bundle, verify_golden
    from core.inference import OnnxPredictor

    bundle = load_bundle(path) if path else load_default_bundle()
    check = verify_golden(bundle, OnnxPredictor(bundle, threads=1))
    if not check.ok:
        raise RuntimeError(f"{bundle.root}: {check.summary()}")
    return f"{bundle.describe()} at {bundle.root}; {check.summary()}"


def check_torch() -> str:
    try:
        import torch
    except ImportError as exc:
        raise Skipped(
            f"torch is not installed ({exc}): checking works, training does not"
        ) from None
    import timm
    import torchvision

    if not hasattr(torch.ops.torchvision, "nms"):
        raise RuntimeError("torchvision's compiled operators are missing (torchvision::nms)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = timm.create_model("resnet10t", pretrained=False, num_classes=2).eval()
        with torch.no_grad():
            logits = model(torch.zeros(1, 3, 32, 32))
    finally:
        torch.set_num_threads(threads)
    if tuple(logits.shape) != (1, 2) or not bool(torch.isfinite(logits).all()):
        raise RuntimeError(f"a timm resnet10t gave {tuple(logits.shape)} non-finite logits")
    return (
        f"torch {torch.__version__}, torchvision {torchvision.__version__} (ops registered), "
        f"timm {timm.__version__}: resnet10t forward OK"
    )


def check_qt() -> str:
    """The offscreen platform starts and renders the app's SVG icon (needs no display)."""
    import os

    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import PySide6
    from PySide6.QtCore import QLibraryInfo
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    platforms = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    available = sorted(p.name for p in platforms.glob("*qoffscreen*"))
    if not available:
        raise RuntimeError(f"the Qt offscreen platform plugin is missing from {platforms}")
    app = QGuiApplication.instance() or QGuiApplication(
        ["deepfake-studio", "-platform", "offscreen"]
    )
    from app.style import resource

    icon = resource("app.svg")
    renderer = QSvgRenderer(str(icon))
    if not renderer.isValid():
        raise RuntimeError(f"cannot render {icon}")
    image = QImage(32, 32, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    painted = sum(image.pixelColor(x, y).alpha() > 0 for x in range(32) for y in range(32))
    if painted == 0:
        raise RuntimeError(f"{icon.name} rendered as an empty image")
    return f"PySide6 {PySide6.__version__}, platform {app.platformName()}, app icon renders"
