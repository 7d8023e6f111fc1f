"""``deepfake-studio prune``: structured pruning of a trained run to a MACs target."""

from __future__ import annotations

import argparse

from app.commands import add_threads_option
from app.commands.train import add_device_argument
from core.pruning import IMPORTANCES  # torch-free at import


def ratio(text: str) -> float:
    """An argparse type: a share strictly between 0 and 1 (checked before torch loads)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), not {text}")
    return value


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune",
        help="prune a trained run (fewer channels, fewer MACs) and fine-tune it",
        description="Iteratively remove channels with Torch-Pruning until the model needs "
        "MACS_RATIO of its parent's multiply-accumulates, fine-tuning EPOCHS epochs after each "
        "of STEPS steps on the parent's recorded split. Writes a child run whose parent is RUN.",
    )
    p.add_argument("--run", required=True, metavar="RUN", help="the trained run folder to prune")
    p.add_argument(
        "--macs-ratio",
        type=ratio,
        default=0.5,
        metavar="R",
        help="share of the parent's MACs to keep, between 0 and 1 (default 0.5)",
    )
    p.add_argument(
        "--params-ratio",
        type=ratio,
        metavar="R",
        help="also keep at most this share of the parameters",
    )
    p.add_argument("--steps", type=at_least_one, default=3, help="pruning steps (default 3)")
    p.add_argument("--epochs", type=int, default=2, help="fine-tune epochs after each step")
    p.add_argument("--importance", choices=IMPORTANCES, default="magnitude")
    p.add_argument("--round-to", type=int, metavar="N", help="keep channel counts multiples of N")
    add_training_arguments(p, lr=1e-3)
    p.set_defaults(func=run)


def add_training_arguments(p: argparse.ArgumentParser, *, lr: float) -> None:
    """Options every compression job shares: budget, seed, output, resume, threads, device,
    --json."""
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-train", type=int, metavar="N", help="train on a seeded subset of N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: workspace/runs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_threads_option(p)
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")


def training_config(args: argparse.Namespace) -> dict:
    """The job config keys of :func:`add_training_arguments` (``out`` goes separately)."""
    return {
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_train": args.max_train,
        "seed": args.seed,
        "resume": args.resume,
        "threads": args.threads,
        "device": args.device,
        "workspace": args.workspace,
    }


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_and_print

    config = {
        "kind": "prune",
        "run": args.run,
        "macs_ratio": args.macs_ratio,
        "params_ratio": args.params_ratio,
        "steps": args.steps,
        "epochs": args.epochs,
        "importance": args.importance,
        "round_to": args.round_to,
        **training_config(args),
    }
    return run_and_print(config, args, format_summary)


def format_summary(summary: dict) -> str:
    """Parent vs pruned in one short table."""
    if summary.get("cancelled"):
        return "pruning cancelled"
    lines = [f"{'':8}{'MACs':>14}{'params':>12}{'test acc':>10}"]
    parent_acc = summary.get("parent_test_acc")
    acc = summary.get("test_acc")
    lines.append(
        f"{'parent':8}{summary['parent_macs']:>14,}{summary['parent_params']:>12,}"
        f"{'-' if parent_acc is None else f'{parent_acc:.4f}':>10}"
    )
    lines.append(
        f"{'pruned':8}{summary['macs']:>14,}{summary['params']:>12,}"
        f"{'-' if acc is None else f'{acc:.4f}':>10}"
    )
    lines.append(f"MACs kept: {summary['macs_ratio']:.3f} (target {summary['target_macs_ratio']})")
    return "\n".join(lines)
