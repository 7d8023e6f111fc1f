"""Screenshots of every page after a real session: fine-tune -> prune -> export on CIFAKE images.

Run under a display (``xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python
docs/screenshots/capture.py``). It builds a small CIFAKE subset (symlinks into ../shared/data),
runs the jobs through the Jobs page like a user would (the fine-tune is captured while it runs),
then captures the Models page and its quality report (``--all-pages``: every page) into
``docs/screenshots/<page>.png``
(palette PNGs). Takes a few minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "cifake"


def subset(root: Path, per_class: int) -> Path:
    """``per_class`` CIFAKE training images per class, linked into ``root``."""
    for name in ("real", "fake"):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for source in sorted((SHARED / "train" / name).iterdir())[:per_class]:
            (folder / source.name).symlink_to(source)
    return root


def wait_until(app: QApplication, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        app.processEvents()
        time.sleep(0.02)


def pump(app: QApplication, seconds: float) -> None:
    """Keep the event loop running for ``seconds`` (background results arrive)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument(
        "--all-pages",
        action="store_true",
        help="also capture the Datasets, Check and Export pages (their owners keep their own)",
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs the CIFAKE images at {SHARED}")
    app = QApplication(sys.argv[:1])
    from app.main_window import MainWindow
    from core.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="studio-shots-"))
    data = subset(tmp / "cifake-small", args.per_class)
    window = MainWindow(Workspace.resolve(tmp / "workspace"))
    window.resize(1400, 880)
    window.show()

    def grab(name: str, page: str | None = None) -> None:
        window.show_page(page or name)
        pump(app, 0.5)
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        small = Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
        small.save(path, optimize=True)
        print("saved", args.out / f"{name}.png", flush=True)

    jobs = window.show_page("jobs")
    runs = window.workspace.runs
    ft, pruned = runs / "cifake-resnet10t", runs / "cifake-resnet10t-pruned"
    bundle = window.workspace.bundles / "cifake-resnet10t-pruned-int8"
    common = {"threads": 1, "batch_size": 32}  # one thread: the machine is shared
    form = jobs.new_job("finetune")
    form.set_values(
        {
            "data": str(data),
            "arch": "resnet10t",
            "img_size": 32,
            "epochs": 8,
            "batch_size": 32,
            "lr": 0.003,
            "out": str(ft),
        }
    )
    jobs.submit({**form.config(), **common})
    jobs.submit(
        {
            "kind": "prune",
            "run": str(ft),
            "macs_ratio": 0.5,
            "steps": 2,
            "epochs": 2,
            "importance": "magnitude",
            "out": str(pruned),
            **common,
        }
    )
    jobs.submit(
        {
            "kind": "export",
            "run": str(pruned),
            "int8": True,
            "out": str(bundle),
            "max_int8_drop": 0.05,
            "threads": 1,
        }
    )
    wait_until(app, lambda: len(jobs.curve_data("val_acc")[0]) >= 5, 900)
    grab("jobs")
    wait_until(app, lambda: not jobs.queue.pending() and jobs.queue.current is None, 1800)
    failed = [r for r in jobs.queue.history() if r.status != "done"]
    if failed:
        print("jobs that did not finish:", [(r.kind, r.summary) for r in failed])
    jobs.job_list.setCurrentItem(jobs.job_list.topLevelItem(2))  # the fine-tune, finished

    models = window.show_page("models")
    models.refresh()
    wait_until(app, lambda: len(models.runs) >= 2, 60)
    models.select_paths([ft, pruned])
    wait_until(app, lambda: len(models.overlay_curves["val_acc"]) == 2, 60)
    grab("models")

    # The quality report of the lineage, asked for on the Models page like a user would.
    models.select_paths([p for p in (ft, pruned, bundle) if p.exists()])
    models.job_buttons["report"].click()  # the window opens the Jobs page with the form filled
    form = jobs.current_form()
    form.set_values({"robustness_images": 100})
    jobs.submit({**form.config(), "threads": 1})
    wait_until(app, lambda: not jobs.queue.pending() and jobs.queue.current is None, 900)
    models = window.show_page("models")
    models.refresh()
    wait_until(app, lambda: models.reports_panel.tree.topLevelItemCount() >= 1, 60)
    models.tabs.setCurrentWidget(models.reports_panel)
    grab("models-reports", "models")
    models.tabs.setCurrentIndex(0)

    if not args.all_pages:
        window.close()
        return
    datasets = window.show_page("datasets")
    if hasattr(datasets, "add_folder"):
        datasets.add_folder(data)
        pump(app, 1)
        wait_until(app, lambda: not datasets.is_busy(), 300)
        pump(app, 2)
    grab("datasets")

    if bundle.exists():
        window.select_bundle(bundle)
    check = window.show_page("check")
    if hasattr(check, "check_paths"):
        samples = [
            *sorted((SHARED / "test" / "real").iterdir())[:6],
            *sorted((SHARED / "test" / "fake").iterdir())[:6],
        ]
        check.check_paths(samples)
        pump(app, 8)
    grab("check")
    grab("export")
    window.close()


if __name__ == "__main__":
    main()
