"""Checker benchmark: decode-to-verdict latency of one image and folder throughput.

Usage, from the repository root::

    .venv/bin/python -m bench.bench_checker [--model BUNDLE] [--data DIR] [--images N]

Uses the default bundle (assets/bundles/default) unless ``--model`` is given, and skips with a
message when there is none. Images come from ``../shared/data/scenes`` (real photos, shorter
side <= 320 px). Goals: p50 latency <= 15 ms per image, folder throughput >= 150 images/s.
Prints one line per figure, and the bundle's test metrics when its metadata has them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "scenes"
GOAL_P50_MS = 15.0
GOAL_IMAGES_PER_S = 150.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def spread(files: list[Path], n: int) -> list[Path]:
    """``n`` files spread evenly over ``files`` (all classes of a sorted folder)."""
    step = max(1, len(files) // n)
    return files[::step][:n]


def bench_latency(predictor, files: list[Path], repeat: int) -> None:
    from core.preprocess import load_image

    for path in files[:5]:
        predictor.predict_path(path)  # warm-up: onnxruntime allocations, resample matrices
    total, cpu, decode, infer = [], [], [], []
    for i in range(repeat):
        path = files[i % len(files)]
        started, cpu_started = time.perf_counter(), time.process_time()
        result = predictor.predict_path(path)
        total.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - cpu_started))
        if not result.ok:
            print(f"  (unreadable: {result.message})")
        started = time.perf_counter()
        tensor = predictor.preprocess(load_image(path))[None]
        decoded = time.perf_counter()
        predictor.predict_batch(tensor)
        decode.append(1000 * (decoded - started))
        infer.append(1000 * (time.perf_counter() - decoded))
    p50 = statistics.median(total)
    met = "met" if p50 <= GOAL_P50_MS else "NOT met"
    print(f"latency, one image decode-to-verdict: p50 {p50:.1f} ms, p95 "
          f"{percentile(total, 95):.1f} ms over {repeat} runs (goal p50 <= {GOAL_P50_MS:.0f} ms: "
          f"{met})")  # fmt: skip
    print(f"  CPU time p50 {statistics.median(cpu):.1f} ms (all threads; wall time above "
          f"includes waiting for a core); decode + preprocess p50 "
          f"{statistics.median(decode):.1f} ms, network (batch 1) p50 "
          f"{statistics.median(infer):.1f} ms")  # fmt: skip


def bench_throughput(predictor, files: list[Path], batch_size: int) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    results = list(predictor.predict_paths(files, batch_size=batch_size))
    seconds = time.perf_counter() - started
    cpu_ms = 1000 * (time.process_time() - cpu_started) / max(1, len(results))
    errors = sum(not r.ok for r in results)
    rate = len(results) / seconds
    met = "met" if rate >= GOAL_IMAGES_PER_S else "NOT met"
    print(f"throughput, folder of {len(results)} images (batch {batch_size}): {rate:.0f} images/s "
          f"in {seconds:.1f} s, {errors} unreadable (goal >= {GOAL_IMAGES_PER_S:.0f}/s: {met})")  # fmt: skip
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    print(f"  CPU time {cpu_ms:.1f} ms per image (all threads); verdicts: {counts}")


def print_metrics(bundle) -> None:
    scalars = {k: v for k, v in bundle.metrics.items() if isinstance(v, int | float)}
    if not scalars:
        print("bundle metadata has no test metrics")
        return
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(scalars.items()))
    print(f"bundle test metrics (from bundle.json): {shown}")
    print(f"bundle calibration: {bundle.calibration.summary()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_checker", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="bundle folder or .zip (default: the shipped bundle)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of images")
    parser.add_argument("--images", type=int, default=1000, help="images for the throughput run")
    parser.add_argument("--repeat", type=int, default=200, help="single-image runs")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from core.bundle import BUNDLE_FILE, default_bundle_path, load_bundle
    from core.inference import OnnxPredictor, iter_image_files

    source = Path(args.model) if args.model else default_bundle_path()
    if not args.model and not (source / BUNDLE_FILE).is_file():
        print(f"skipped: no default bundle at {source}; pass --model BUNDLE")
        return 0
    if not args.data.is_dir():
        print(f"skipped: no images at {args.data} (see ../shared/data/README.md)")
        return 0
    bundle = load_bundle(source)
    predictor = OnnxPredictor(bundle)
    spec = bundle.preprocess
    print(f"bundle: {bundle.describe()}, input {spec.input_size} px ({spec.resize_mode}), "
          f"{bundle.meta['model'].get('bytes', 0) / 1e6:.1f} MB; onnxruntime threads "
          f"{predictor.session.get_session_options().intra_op_num_threads}")  # fmt: skip
    files = list(iter_image_files([args.data]))
    print(f"data: {args.data} ({len(files)} images)")
    bench_latency(predictor, spread(files, 50), args.repeat)
    bench_throughput(predictor, spread(files, args.images), args.batch_size)
    print_metrics(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
