"""``deepfake-studio export``: a training run to a verified ONNX bundle (FP32 or INT8)."""

from __future__ import annotations

import argparse

from app.commands import add_threads_option, print_json, workspace_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a training run to a model bundle (ONNX FP32 or INT8) for the app and phones",
        description="Export a run folder to ONNX, calibrate the unknown threshold on its val "
        "split, optionally quantise to INT8, and verify against the torch model on its test "
        "split (parity, accuracy, size, latency). Refuses (exit 2, no bundle) when FP32 differs from "
        "torch by more than --tolerance or INT8 loses more than --max-int8-drop accuracy.",
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN", help="the run folder (same as --run)")
    p.add_argument("--run", metavar="RUN", help="the run folder (train, prune or distill)")
    p.add_argument(
        "--out",
        metavar="BUNDLE",
        help="bundle folder (default: workspace/bundles/<run>-<precision>)",
    )
    p.add_argument("--int8", action="store_true", help="ship a static INT8 (QDQ) model")
    p.add_argument(
        "--flip-average",
        action="store_true",
        help="average each image with its mirror image inside the model (2x MACs)",
    )
    p.add_argument("--zip", action="store_true", help="also write BUNDLE.zip")
    p.add_argument(
        "--target-risk",
        type=float,
        default=0.05,
        help="at most this share of errors among accepted images (default 0.05)",
    )
    p.add_argument(
        "--score",
        choices=("auto", "max_softmax", "energy"),
        default="auto",
        help="rejection score; auto picks the one that separates right from wrong better",
    )
    p.add_argument(
        "--energy-floor",
        type=float,
        metavar="KEEP",
        help="also answer 'unknown' for unfamiliar images: an energy floor that keeps this share "
        "of the val split (e.g. 0.8); for models trained with --outlier-loss energy",
    )
    p.add_argument(
        "--calib-images",
        type=int,
        default=200,
        metavar="N",
        help="training images for INT8 calibration",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (13-20)")
    p.add_argument("--weights", choices=("best", "last"), default="best")
    p.add_argument(
        "--tolerance", type=float, default=1e-3, help="max |torch - ONNX FP32| on logits"
    )
    p.add_argument(
        "--max-int8-drop",
        type=float,
        default=0.02,
        help="max INT8 test-accuracy loss vs FP32, as a fraction (0.02 = 2 points)",
    )
    p.add_argument(
        "--golden", type=int, default=6, metavar="N", help="golden vectors to store (4-8)"
    )
    p.add_argument(
        "--verify-images",
        type=int,
        default=0,
        metavar="N",
        help="verify on at most N test images (0 = the whole test split)",
    )
    add_threads_option(p)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_job_in_process
    from core.errors import UserError

    if args.run and args.run_dir and args.run != args.run_dir:
        raise UserError(f"two different runs given: {args.run_dir} and --run {args.run}")
    run_dir = args.run or args.run_dir
    if not run_dir:
        raise UserError("which run? pass its folder: deepfake-studio export --run RUN --out BUNDLE")
    config = {
        "kind": "export",
        "run": run_dir,
        "out": args.out,
        "int8": args.int8,
        "flip_average": args.flip_average,
        "zip": args.zip,
        "target_risk": args.target_risk,
        "score": args.score,
        "energy_floor": args.energy_floor,
        "calib_images": args.calib_images,
        "opset": args.opset,
        "weights": args.weights,
        "tolerance": args.tolerance,
        "max_int8_drop": args.max_int8_drop,
        "golden": args.golden,
        "verify_images": args.verify_images,
        "threads": args.threads,
        "workspace": args.workspace,
    }
    summary = run_job_in_process(config, workspace_of(args))
    if args.json:
        print_json(summary)
    elif not summary.get("cancelled"):
        from training.verify import format_report

        print(format_report(summary["verification"]))
        print(
            f"bundle: {summary['bundle']}" + (f"\nzip: {summary['zip']}" if summary["zip"] else "")
        )
    return 0
