"""FP32 vs INT8 export of a run: size, onnxruntime latency and test-split accuracy.

Usage: ``python -m bench.bench_export [RUN] [--calib-images 200] [--repeats 200] [--threads 1 2]
[--sizes 64 128]`` (default RUN: the newest CIFAKE run, as in ``bench.bench_compression``).

Exports ``RUN`` twice with the export job (FP32, then INT8 with its INT8 accuracy limit lifted so
the figures always print), times each ``model.onnx`` with onnxruntime at batch 1 (median of
``--repeats`` runs after warm-up) for each thread count, and checks the goals: INT8 loses at most
1 accuracy point, runs at least 1.5x faster and is about 4x smaller (at least 3.5x).
``--sizes`` also times the same weights exported at other input sizes (latency only: the
network is fully convolutional, but its accuracy at a size it was not trained on means nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOALS = {"max_loss_points": 1.0, "min_speedup": 1.5, "min_size_ratio": 3.5}


def export(run: Path, out: Path, int8: bool, args: argparse.Namespace) -> dict:
    from core.events import EventWriter
    from training.export import run as export_job

    config = {
        "run": str(run),
        "out": str(out),
        "int8": int8,
        "calib_images": args.calib_images,
        "threads": max(args.threads),
        "verify_images": args.verify_images,
        "max_int8_drop": 1.0,
        "latency_repeats": 20,
    }
    started = time.perf_counter()
    summary = export_job(config, EventWriter("bench", []))
    summary["seconds"] = time.perf_counter() - started
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run folder (default: newest found)")
    parser.add_argument("--calib-images", type=int, default=200)
    parser.add_argument("--verify-images", type=int, default=0, help="0 = whole test split")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="extra input sizes")
    args = parser.parse_args()
    if args.run is None:
        from bench.bench_compression import find_run

        args.run = find_run()
        if args.run is None:
            print("skipped: no trained CIFAKE run found; pass RUN (a training run folder)")
            return 0

    import numpy as np

    from core.models import ModelDescription
    from training.verify import OnnxModel, latency_ms

    size = ModelDescription.load(args.run).preprocess.input_size
    image = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        fp32 = export(args.run, Path(tmp) / "fp32", False, args)
        int8 = export(args.run, Path(tmp) / "int8", True, args)
        latency = {
            (name, threads): latency_ms(
                OnnxModel(Path(tmp) / name / "model.onnx", threads, spinning=True),
                image,
                args.repeats,
                20,
            )
            for name in ("fp32", "int8")
            for threads in args.threads
        }
    report = int8["verification"]
    variants = report["variants"]
    print(f"run {args.run} ({report['n']} {report['split']} images, input {size} px)")
    print(f"export time: FP32 {fp32['seconds']:.1f} s, INT8 {int8['seconds']:.1f} s (with verify)")
    print(
        f"{'variant':8} {'accuracy':>9} {'size MB':>8} "
        + " ".join(f"{f'ms@{t}thr':>9}" for t in args.threads)
    )
    for name in ("torch", "fp32", "int8"):
        row = variants[name]
        sizes = f"{row['bytes'] / 1e6:8.2f}" if row.get("bytes") else f"{'-':>8}"
        times = " ".join(
            f"{latency[(name, t)]:9.3f}" if (name, t) in latency else f"{'-':>9}"
            for t in args.threads
        )
        print(f"{name:8} {row['accuracy']:9.2%} {sizes} {times}")
    loss = (variants["fp32"]["accuracy"] - variants["int8"]["accuracy"]) * 100
    ratio = variants["fp32"]["bytes"] / variants["int8"]["bytes"]
    speedups = {t: latency[("fp32", t)] / latency[("int8", t)] for t in args.threads}
    print(f"INT8 agrees with FP32 on {variants['int8']['agreement_with_fp32']:.2%} of images")
    goals = [
        ("accuracy loss <= 1 point", f"{loss:.2f} points", loss <= GOALS["max_loss_points"]),
        *(
            (f">= 1.5x faster ({t} thread(s))", f"{s:.2f}x", s >= GOALS["min_speedup"])
            for t, s in speedups.items()
        ),
        ("~4x smaller (>= 3.5x)", f"{ratio:.2f}x", ratio >= GOALS["min_size_ratio"]),
    ]
    for goal, value, reached in goals:
        print(f"goal {goal:32} {value:>12}  {'reached' if reached else 'NOT reached'}")
    print(json.dumps({"loss_points": loss, "size_ratio": ratio, "speedup": speedups}))
    for size, (fp32_ms, int8_ms) in latency_at_sizes(args).items():
        print(
            f"input {size} px, 1 thread: FP32 {fp32_ms:.3f} ms, INT8 {int8_ms:.3f} ms, "
            f"{fp32_ms / int8_ms:.2f}x faster"
        )
    return 0


def latency_at_sizes(args: argparse.Namespace) -> dict[int, tuple[float, float]]:
    """``{size: (fp32 ms, int8 ms)}`` at batch 1, 1 thread, for each of ``args.sizes``."""
    import dataclasses

    import numpy as np

    from core.models import load_model
    from training.config import read_split
    from training.export import export_onnx
    from training.quantize import ImageReader, pick_calibration_samples, quantize_int8
    from training.verify import OnnxModel, latency_ms

    model, description = load_model(args.run)
    train = read_split(args.run / "split.json", "train")
    samples = pick_calibration_samples(train, args.calib_images, 0)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-sizes-") as tmp:
        work = Path(tmp)
        for size in args.sizes:
            spec = dataclasses.replace(description.preprocess, input_size=size)
            fp32, int8 = work / f"fp32-{size}.onnx", work / f"int8-{size}.onnx"
            export_onnx(model, size, fp32)
            quantize_int8(fp32, int8, ImageReader(samples, spec), work)
            image = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
            figures[size] = tuple(
                latency_ms(OnnxModel(path, 1, spinning=True), image, args.repeats, 20)
                for path in (fp32, int8)
            )
    return figures


if __name__ == "__main__":
    sys.exit(main())
