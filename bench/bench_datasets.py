"""Data set benchmark: index throughput, hygiene time, and time to first thumbnails in the GUI.

Run from the repository root (takes about a minute on 2 cores for cifake/train)::

    .venv/bin/python -m bench.bench_datasets [--data ../shared/data/cifake/train] [--threads]

Prints one line per figure. Everything goes to a temporary workspace, so indexes and thumbnail
caches start cold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifake" / "train"


def bench_index(data: Path, workspace, threads_only: bool) -> None:
    from core import datasets, hygiene

    if threads_only:
        datasets.PROCESS_THRESHOLD = 10**12
    started = time.perf_counter()
    index = datasets.DatasetIndex.build(data, workspace)
    seconds = time.perf_counter() - started
    build = index.last_build
    pool = "2 threads" if threads_only else "2 processes"
    print(f"index {data.name}: {build.analysed} files in {seconds:.1f} s = "
          f"{build.analysed / seconds:.0f} files/s ({pool}, full decode + sha256 + phash)")  # fmt: skip
    started = time.perf_counter()
    again = datasets.DatasetIndex.build(data, workspace)
    print(f"re-index unchanged: {time.perf_counter() - started:.2f} s "
          f"({again.last_build.analysed} files analysed)")  # fmt: skip
    started = time.perf_counter()
    sizes = index.make_splits(seed=0)
    print(f"make_splits: {time.perf_counter() - started:.2f} s {sizes}")
    started = time.perf_counter()
    report = hygiene.check(index)
    kinds = {f.kind: len(f.groups) for f in report.findings}
    print(f"hygiene check: {time.perf_counter() - started:.2f} s, findings {kinds}")
    started = time.perf_counter()
    samples = index.samples("train")
    print(f"samples('train'): {len(samples)} in {time.perf_counter() - started:.2f} s")


def bench_page(data: Path, workspace) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app.pages.datasets import DatasetsPage

    started = time.perf_counter()
    page = DatasetsPage(workspace)
    print(f"page constructor: {1000 * (time.perf_counter() - started):.0f} ms")
    page.resize(1280, 800)
    page.show()
    page.tabs.setCurrentIndex(1)
    marks: dict[str, float] = {}
    page.sig_index_finished.connect(lambda _view: marks.setdefault("view", time.perf_counter()))
    page.model.sig_thumbnail_loaded.connect(
        lambda n: marks.setdefault("first", time.perf_counter()) if n == 1 else None
    )
    started = time.perf_counter()
    page.open_dataset(data)

    def wait(done, limit: float = 120.0) -> None:
        deadline = time.perf_counter() + limit
        while not done() and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.002)

    wait(lambda: "first" in marks)
    visible = page.grid.viewport().height() // page.grid.gridSize().height() + 1
    visible *= page.grid.viewport().width() // page.grid.gridSize().width()
    wait(lambda: page.model.loaded >= min(visible, page.model.rowCount()))
    screen = time.perf_counter()
    view = page.view
    print(f"page: {view.files} images; counts and grid shown after "
          f"{marks['view'] - started:.2f} s, first thumbnail after "
          f"{marks['first'] - started:.2f} s, first screen ({visible} thumbnails, cold cache) "
          f"after {screen - started:.2f} s")  # fmt: skip
    page.shutdown()
    page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", action="store_true", help="index with threads, not processes")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data set at {args.data}", file=sys.stderr)
        return 0
    from core.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as folder:
        workspace = Workspace(Path(folder))
        bench_index(args.data, workspace, args.threads)
        bench_page(args.data, workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
