"""``deepfake-studio distill``: train a small student from a trained teacher's soft targets."""

from __future__ import annotations

import argparse

from app.commands.prune import add_training_arguments, training_config
from app.commands.train import add_mixing_arguments, mixing_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distill",
        help="knowledge distillation: a small student learns from a trained teacher run",
        description="Train a student on DIR with loss (1-alpha)*CE + alpha*T^2*KL(teacher || "
        "student) at temperature T. The teacher sees the same augmented batch (resized to its "
        "own input size when that differs; with --cutmix/--mixup both see the same mixed "
        "images). Writes a run whose parent is the teacher.",
    )
    p.add_argument("--teacher", required=True, metavar="RUN", help="the trained teacher run")
    student = p.add_mutually_exclusive_group(required=True)
    student.add_argument("--arch", help="a new student: any timm architecture name")
    student.add_argument("--student", metavar="RUN", help="start from this run (e.g. a pruned one)")
    p.add_argument(
        "--data", required=True, metavar="DIR", help="folder with one subfolder per class"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--temperature", type=float, default=4.0, metavar="T")
    p.add_argument(
        "--alpha", type=float, default=0.7, help="weight of the teacher's soft targets (0..1)"
    )
    p.add_argument("--img-size", type=int, help="student input size (default: the teacher's)")
    add_mixing_arguments(p)
    add_training_arguments(p, lr=2e-3)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_and_print

    config = {
        "kind": "distill",
        "teacher": args.teacher,
        "arch": args.arch,
        "student": args.student,
        "data": args.data,
        "epochs": args.epochs,
        "temperature": args.temperature,
        "alpha": args.alpha,
        "img_size": args.img_size,
        **mixing_config(args),
        **training_config(args),
    }
    return run_and_print(config, args, format_summary)


def format_summary(summary: dict) -> str:
    """Teacher vs student in one short table."""

    def acc(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    return "\n".join(
        [
            f"{'':9}{'params':>12}{'MACs':>14}{'test acc':>10}",
            f"{'teacher':9}{summary['teacher_params']:>12,}{summary['teacher_macs']:>14,}"
            f"{acc(summary.get('teacher_test_acc')):>10}",
            f"{'student':9}{summary['params']:>12,}{summary['macs']:>14,}"
            f"{acc(summary.get('test_acc')):>10}",
            f"student/teacher params: {summary['params_vs_teacher']:.3f}",
        ]
    )
