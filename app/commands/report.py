"""``deepfake-studio report``: the HTML quality report of one or more detectors."""

from __future__ import annotations

import argparse

from app.commands import (
    add_split_options,
    add_threads_option,
    print_json,
    split_config,
    workspace_of,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="HTML quality report: metrics, ROC, reliability, rejection, robustness",
        description="Accuracy, per-class P/R/F1, confusion matrix with misclassified thumbnails, "
        "ROC and reliability diagrams, ECE, coverage vs risk of the rejection rule, robustness "
        "to JPEG/resize/crop, and the unseen-generator row for runs trained with --leave-out.",
    )
    p.add_argument(
        "--data", required=True, metavar="DIR", help="folder with one subfolder per class"
    )
    p.add_argument("--models", nargs="+", required=True, metavar="RUN_OR_BUNDLE")
    add_split_options(p)
    p.add_argument("--out", required=True, metavar="REPORT.html")
    p.add_argument("--target-risk", type=float, default=0.05, help="for runs without a bundle")
    p.add_argument(
        "--robustness-images",
        type=int,
        default=300,
        help="images perturbed (0: no robustness panel)",
    )
    add_threads_option(p)
    p.add_argument("--json", action="store_true", help="print the headline figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_job_in_process

    config = {
        "kind": "report",
        "models": args.models,
        "data": args.data,
        **split_config(args),
        "out": args.out,
        "target_risk": args.target_risk,
        "robustness_images": args.robustness_images,
        "threads": args.threads,
        "workspace": args.workspace,
    }
    summary = run_job_in_process(config, workspace_of(args))
    if args.json:
        print_json(summary)
    else:
        print(f"report written to {summary['report']}")
    return 0
