"""Cold start of the GUI: fresh process -> main window painted, and whether torch got imported.

Usage: ``python bench/bench_gui_startup.py [--runs 3] [--workspace DIR]``. Each run starts a new
interpreter (``--child``), which times, from its first line, the Qt imports, building the
window, its first paint (an event filter sees the window's first ``Paint`` event) and the first
page (built right after that paint), then how long each lazily built page takes on first show. The parent also reports the wall time from
spawning the process to the child's report (interpreter start included). Nothing is asserted;
the goal is a painted window in <= 1.5 s with torch not imported.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision", "onnxruntime")
PAGES = ("check", "datasets", "jobs", "models", "export")


def child(workspace: str) -> None:
    """Runs in the fresh process: prints one JSON line of timings."""
    sys.path.insert(0, str(REPO))
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    t_qt = time.perf_counter()
    app = QApplication(sys.argv[:1])
    from app.main_window import MainWindow
    from core.workspace import Workspace

    window = MainWindow(Workspace.resolve(workspace))
    t_built = time.perf_counter()
    marks: dict[str, float] = {}

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and "paint" not in marks:
                marks["paint"] = time.perf_counter()
                QTimer.singleShot(0, quit_when_ready)
            return False

    def quit_when_ready() -> None:
        if "page" in marks:
            app.quit()
        else:
            QTimer.singleShot(10, quit_when_ready)

    def on_page_built(name: str) -> None:
        marks.setdefault("page", time.perf_counter())

    spy = FirstPaint()
    window.installEventFilter(spy)
    window.sig_page_built.connect(on_page_built)
    window.show()
    QTimer.singleShot(10_000, app.quit)
    app.exec()
    window.removeEventFilter(spy)
    heavy_at_paint = [m for m in HEAVY if m in sys.modules]
    pages = {}
    for name in PAGES:
        start = time.perf_counter()
        window.show_page(name)
        app.processEvents()
        pages[name] = round(time.perf_counter() - start, 3)
    report = {
        "qt_import_s": round(t_qt - T0, 3),
        "window_built_s": round(t_built - T0, 3),
        "first_paint_s": round(marks.get("paint", float("nan")) - T0, 3),
        "first_page_s": round(marks.get("page", float("nan")) - T0, 3),
        "heavy_modules_at_paint": heavy_at_paint,
        "heavy_modules_after_all_pages": [m for m in HEAVY if m in sys.modules],
        "page_first_show_s": pages,
        "placeholders": sorted(window.page_errors),
        "platform": app.platformName(),
    }
    window.close()
    print(json.dumps(report), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workspace", help="workspace folder (default: a fresh temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.workspace)
        return
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    reports, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or tmp
        for _ in range(args.runs):
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--workspace", workspace],
                capture_output=True,
                text=True,
                env=env,
                cwd=REPO,
                check=True,
            )
            walls.append(time.perf_counter() - start)
            reports.append(json.loads(out.stdout.strip().splitlines()[-1]))
    paint = statistics.median(r["first_paint_s"] for r in reports)
    print(
        f"GUI cold start over {args.runs} runs ({reports[0]['platform']} platform, "
        f"{os.cpu_count()} CPUs)"
    )
    print(f"  Qt imported          {statistics.median(r['qt_import_s'] for r in reports):.3f} s")
    print(f"  window built         {statistics.median(r['window_built_s'] for r in reports):.3f} s")
    print(f"  first paint          {paint:.3f} s  (goal <= 1.5 s)")
    page = statistics.median(r["first_page_s"] for r in reports)
    print(f"  first page built     {page:.3f} s  (the Check page, built after the first paint)")
    print(f"  spawn -> report      {statistics.median(walls):.3f} s  (incl. interpreter start)")
    heavy = reports[0]["heavy_modules_at_paint"]
    print(
        f"  torch imported at first paint: {'yes' if 'torch' in heavy else 'no'}  "
        f"(heavy modules loaded: {', '.join(heavy) or 'none'})"
    )
    after = reports[0]["heavy_modules_after_all_pages"]
    print(f"  after opening every page: {', '.join(after) or 'none'} loaded")
    print("  first show of each page (lazy build):")
    for name in PAGES:
        value = statistics.median(r["page_first_show_s"][name] for r in reports)
        print(f"    {name:<9} {value:.3f} s")
    if reports[0]["placeholders"]:
        print(f"  placeholders (module missing): {', '.join(reports[0]['placeholders'])}")


if __name__ == "__main__":
    main()
