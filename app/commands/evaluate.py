"""``deepfake-studio evaluate``: metrics of run folders or bundles on a data set."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands import add_split_options, add_threads_option, print_json, split_config

TABLE_COLUMNS = (
    ("model", "model", "{}"),
    ("params", "params", "{:,}"),
    ("macs", "MACs", "{:,}"),
    ("size_bytes", "bytes", "{:,}"),
    ("latency_ms", "ms/img", "{:.2f}"),
    ("accuracy", "acc", "{:.4f}"),
    ("macro_f1", "F1", "{:.4f}"),
    ("auc", "AUC", "{:.4f}"),
    ("ece", "ECE", "{:.4f}"),
    ("n", "n", "{}"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate run folders or bundles on a data set",
        description="Accuracy, per-class P/R/F1, confusion matrix, ROC-AUC, ECE, params, MACs, "
        "size and latency. Several --model options print one comparison table (the lineage).",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="RUN_OR_BUNDLE",
        help="run folder or bundle (folder or .zip); repeat to compare",
    )
    p.add_argument(
        "--data", required=True, metavar="DIR", help="folder with one subfolder per class"
    )
    add_split_options(p)
    p.add_argument("--binary", action="store_true", help="score real vs fake (any non-real class)")
    p.add_argument("--leave-out", metavar="CLASS", help="treat CLASS as an unseen generator")
    p.add_argument(
        "--flip-average",
        action="store_true",
        help="score a run's network averaged with its mirror image (as export --flip-average)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    add_threads_option(p)
    p.add_argument("--out", metavar="FILE", help="also write the JSON report here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands import workspace_of
    from app.commands.jobcli import run_job_in_process

    config = {
        "kind": "evaluate",
        "models": args.model,
        "data": args.data,
        **split_config(args),
        "binary": args.binary,
        "flip_average": args.flip_average,
        "leave_out": args.leave_out,
        "batch_size": args.batch_size,
        "latency": not args.no_latency,
        "threads": args.threads,
        "workspace": args.workspace,
        "out": args.out,
    }
    result = run_job_in_process(config, workspace_of(args))
    if args.json:
        print_json(result)
    else:
        print(format_table(result.get("models", [result])))
    return 0


def format_table(reports: list[dict[str, Any]]) -> str:
    """A plain-text comparison table, one row per model."""
    from pathlib import Path

    rows = [[title for _, title, _ in TABLE_COLUMNS]]
    for report in reports:
        row = []
        for key, _, fmt in TABLE_COLUMNS:
            value = report.get(key)
            if key == "model":
                value = Path(str(value)).name
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    from core.reports import group_text, selection_text

    selections = {
        Path(str(r["model"])).name: selection_text(r["selection"])
        for r in reports
        if "selection" in r
    }
    if len(set(selections.values())) == 1:
        extra = [next(iter(selections.values()))]
    else:
        extra = [f"{name}: {text}" for name, text in selections.items()]
    for report in reports:
        name = Path(str(report["model"])).name
        for group, figures in report.get("by_folder", {}).items():
            extra.append(
                f"{name}, images in {group or 'class folders'}/: {group_text(figures, report.get('binary', False))}"
            )
        rows = [("left-out", report["leave_out"])] if "leave_out" in report else []
        rows += [("outlier class", row) for row in report.get("outliers", [])]
        extra += [unseen_text(what, row) for what, row in rows]
    return "\n".join(lines + extra)


def unseen_text(what: str, row: dict[str, Any]) -> str:
    """One line on a class the model does not name: its rejection AUROCs, how often it is called
    fake, and (bundles) the verdicts the bundle's own rule gives it."""
    aurocs = ", ".join(f"{k} {v:.3f}" for k, v in row["auroc"].items() if v is not None)
    text = (
        f"{what} {row['class']} (n={row['n']}): rejection AUROC {aurocs}; "
        f"called fake {row['detected_as_fake']:.1%}"
    )
    if "verdicts" in row:
        text += "; the bundle's verdicts: " + ", ".join(
            f"{kind} {share:.1%}" for kind, share in row["verdicts"].items()
        )
    return text
