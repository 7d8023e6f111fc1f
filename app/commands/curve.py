"""``deepfake-studio curve``: a learning curve, the fine-tune recipe on growing shares of the data."""

from __future__ import annotations

import argparse

from app.commands.train import add_finetune_arguments, finetune_config


def shares(text: str) -> list[float]:
    """An argparse type: ``0.25,0.5,1`` (checked before torch loads)."""
    from core.errors import UserError
    from core.learning_curve import parse_shares

    try:
        return parse_shares(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "curve",
        help="learning curve: does more training data help, and how much would a target need?",
        description="Fine-tune the same recipe on nested shares of the train split (the same "
        "val and test split for every point), score each on the test split and fit error = "
        "a * n^-b over the training images n. Writes one run per point and curve.json into "
        "--out; --resume skips the finished points.",
    )
    add_finetune_arguments(p)
    p.add_argument(
        "--shares",
        type=shares,
        default=[0.25, 0.5, 1.0],
        metavar="S,S,...",
        help="shares of the train split, 2 to 8 of them (default 0.25,0.5,1)",
    )
    p.add_argument(
        "--target-acc",
        type=float,
        metavar="ACC",
        help="an accuracy (e.g. 0.977) to say how many training images it would need",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_and_print

    config = {
        **finetune_config(args),
        "kind": "curve",
        "shares": args.shares,
        "target_acc": args.target_acc,
    }
    return run_and_print(config, args, format_summary)


def format_summary(summary: dict) -> str:
    """The points as a table, then the verdict."""
    lines = [f"{'share':>6} {'images':>9} {'test acc':>9}"]
    for point in summary["points"]:
        acc = point["test_acc"]
        shown = f"{100 * acc:8.2f}%" if acc is not None else f"{'-':>9}"
        lines.append(f"{point['share']:>6g} {point['n_train']:>9,} {shown}")
    lines.append(summary["verdict"])
    lines.append(f"curve: {summary['curve_dir']}/curve.json")
    return "\n".join(lines)
