"""``deepfake-studio distill``: train a small student from a trained teacher's soft targets."""

from __future__ import annotations

import argparse

from app.commands import print_json, workspace_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distill",
        help="knowledge distillation: a small student learns from a trained teacher run",
        description="Train a student on DIR with loss (1-alpha)*CE + alpha*T^2*KL(teacher || "
        "student) at temperature T. The teacher sees the same augmented batch (resized to its "
        "own input size when that differs). Writes a run whose parent is the teacher.",
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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-train", type=int, metavar="N", help="train on a seeded subset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="RUN_DIR", help="student run directory (default: workspace)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_job_in_process

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
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_train": args.max_train,
        "seed": args.seed,
        "resume": args.resume,
        "threads": args.threads,
        "workspace": args.workspace,
    }
    summary = run_job_in_process(config, workspace_of(args), out=args.out)
    if args.json:
        print_json(summary)
    elif not summary.get("cancelled"):
        print(format_summary(summary))
    return 0


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
