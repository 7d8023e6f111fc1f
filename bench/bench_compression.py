"""Compression of a trained run: structured pruning and knowledge distillation, in figures.

Usage: ``python -m bench.bench_compression [RUN] [--max-train 4000] [--prune-epochs 1] ...``

``RUN`` is a finished run trained on CIFAKE (default: the newest finished run under
``../exp/runs`` or the workspace whose data path mentions ``cifake``). On the run's recorded
test split it measures:

* **prune**: the prune job (``--macs-ratio`` in ``--steps`` steps, ``--prune-epochs`` fine-tune
  epochs after each on ``--max-train`` training images). Goal: at least 2x fewer MACs at no more
  than 1 accuracy point below the parent.
* **distill**: a student with at most 1/4 of the teacher's parameters (default a resnet18 with
  stage widths 16/32/64/112: 0.21 of the lead's resnet18 at 32/64/128/256), trained ``--distill-epochs`` epochs on the same ``--max-train`` images twice:
  with the teacher (``alpha``, ``T``) and alone (the same job with ``alpha = 0``: plain
  cross-entropy, identical split, subset, augmentation, schedule, seed and epochs).

Every budget is a parameter because a 2-core CPU is slow; the settings used print with the
figures. Results also go to ``--json-out`` when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOALS = {"min_macs_reduction": 2.0, "max_prune_loss_points": 1.0, "max_student_params": 0.25}
REPO = Path(__file__).resolve().parents[1]


def find_run() -> Path | None:
    """The newest finished CIFAKE run in ``../exp/runs`` or the default workspace's runs."""
    from core.workspace import Workspace

    roots = [REPO.parent / "exp" / "runs", Workspace.resolve(None).runs]
    found = []
    for root in roots:
        for run_json in root.glob("*/run.json") if root.is_dir() else []:
            info = json.loads(run_json.read_text(encoding="utf-8"))
            folder = run_json.parent
            if (
                "cifake" in str(info.get("data") or "").lower()
                and (folder / "best.safetensors").is_file()
                and (folder / "split.json").is_file()
                and info.get("kind") == "finetune"
            ):
                found.append((run_json.stat().st_mtime, folder))
    return max(found)[1] if found else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", type=Path, help="trained CIFAKE run (default: newest found)")
    p.add_argument("--max-train", type=int, default=4000, help="training images per job")
    p.add_argument("--macs-ratio", type=float, default=0.45)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--prune-epochs", type=int, default=1, help="fine-tune epochs per step")
    p.add_argument("--prune-lr", type=float, default=1e-3)
    p.add_argument("--importance", default="magnitude")
    p.add_argument("--student", default="resnet18", help="student timm architecture")
    p.add_argument(
        "--student-kwargs",
        type=json.loads,
        default={"channels": [16, 32, 64, 112]},
        help="JSON model kwargs of the student",
    )
    p.add_argument("--distill-epochs", type=int, default=3)
    p.add_argument("--distill-lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip", choices=("prune", "distill"), action="append", default=[])
    p.add_argument("--out", type=Path, help="folder for the runs (default: a temporary one)")
    p.add_argument("--json-out", type=Path, help="also write the figures here")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return p.parse_args(argv)


def emitter(quiet: bool):
    """Job events printed on stderr (epochs, logs), or nothing with ``quiet``."""
    from app.console import ConsoleEvents
    from core.events import EventWriter

    listeners = [] if quiet else [ConsoleEvents(progress_every_s=30.0)]
    return EventWriter("bench", [], listeners=listeners)


def teacher_figures(run: Path) -> dict:
    """Params, MACs and test-split accuracy of the parent run, measured here."""
    from core.models import load_model
    from training.common import evaluate_samples, headline, model_summary
    from training.config import read_split

    model, description = load_model(run)
    test = read_split(run / "split.json", "test")
    report = evaluate_samples(model, description, test)
    return {
        **model_summary(model, description, run / "best.safetensors"),
        **headline(report, "test"),
    }


def timed(job, config: dict, emit) -> dict:
    started = time.perf_counter()
    summary = job(config, emit)
    summary["wall_s"] = time.perf_counter() - started
    return summary


def bench_prune(run: Path, out: Path, args: argparse.Namespace, emit) -> dict:
    from training.prune import run as prune

    return timed(
        prune,
        {
            "run": str(run),
            "out": str(out / "pruned"),
            "macs_ratio": args.macs_ratio,
            "steps": args.steps,
            "epochs": args.prune_epochs,
            "lr": args.prune_lr,
            "importance": args.importance,
            "max_train": args.max_train,
            "batch_size": args.batch_size,
            "threads": args.threads,
        },
        emit,
    )


def bench_distill(run: Path, out: Path, alpha: float, args: argparse.Namespace, emit) -> dict:
    from training.distill import run as distill

    recorded = json.loads((run / "split.json").read_text(encoding="utf-8"))
    parent_config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    return timed(
        distill,
        {
            "teacher": str(run),
            "arch": args.student,
            "model_kwargs": args.student_kwargs,
            "data": recorded["root"],
            "out": str(out / f"student-alpha{alpha:g}"),
            "epochs": args.distill_epochs,
            "lr": args.distill_lr,
            "temperature": args.temperature,
            "alpha": alpha,
            "max_train": args.max_train,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "workspace": parent_config.get("workspace"),
        },
        emit,
    )


def row(name: str, figures: dict, teacher: dict) -> str:
    acc = figures.get("test_acc")
    delta = "" if acc is None else f"{100 * (acc - teacher['test_acc']):+7.2f}"
    return (
        f"{name:22}{figures['params']:>11,}{figures['macs']:>13,}"
        f"{'-' if acc is None else f'{acc:.4f}':>9}{delta:>9}"
        f"{figures.get('wall_s', 0):>9.0f}"
    )


def report(teacher: dict, results: dict, args: argparse.Namespace) -> list[str]:
    """The table and the verdicts, as printed."""
    lines = [
        f"{'model':22}{'params':>11}{'MACs':>13}{'test acc':>9}{'Δ pts':>9}{'wall s':>9}",
        row("parent (teacher)", teacher, teacher),
    ]
    names = {"pruned": "pruned", "distilled": "student + teacher", "alone": "student alone"}
    lines += [row(names[k], v, teacher) for k, v in results.items()]
    if "pruned" in results:
        pruned = results["pruned"]
        reduction = teacher["macs"] / pruned["macs"]
        loss = 100 * (teacher["test_acc"] - pruned["test_acc"])
        ok = reduction >= GOALS["min_macs_reduction"] and loss <= GOALS["max_prune_loss_points"]
        lines.append(
            f"prune: {reduction:.2f}x fewer MACs, {pruned['params_ratio']:.2f} of the params, "
            f"accuracy {-loss:+.2f} points -> goal (>= 2x, <= 1 point loss) "
            f"{'MET' if ok else 'NOT MET'}"
        )
    if "distilled" in results and "alone" in results:
        kd, alone = results["distilled"], results["alone"]
        share = kd["params"] / teacher["params"]
        gain = 100 * (kd["test_acc"] - alone["test_acc"])
        lines.append(
            f"distill: student has {share:.3f} of the teacher's params (goal <= 0.25: "
            f"{'yes' if share <= GOALS['max_student_params'] else 'no'}); with the teacher "
            f"{kd['test_acc']:.4f} vs alone {alone['test_acc']:.4f} ({gain:+.2f} points)"
        )
    lines.append(
        f"settings: max_train {args.max_train}, prune {args.steps} step(s) x "
        f"{args.prune_epochs} epoch(s) to {args.macs_ratio} MACs ({args.importance}), distill "
        f"{args.distill_epochs} epoch(s) T={args.temperature} alpha={args.alpha}, "
        f"batch {args.batch_size}, {args.threads} thread(s)"
    )
    return lines


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run = args.run or find_run()
    if run is None:
        print("skipped: no finished CIFAKE run found; pass RUN (a run trained on cifake)")
        return 0
    from training.common import set_threads

    set_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-compression-"))
    out.mkdir(parents=True, exist_ok=True)
    emit = emitter(args.quiet)
    print(f"run {run}; outputs in {out}", flush=True)
    teacher = teacher_figures(run)
    print(row("parent (teacher)", teacher, teacher), flush=True)
    jobs = {
        "pruned": lambda: bench_prune(run, out, args, emit),
        "distilled": lambda: bench_distill(run, out, args.alpha, args, emit),
        "alone": lambda: bench_distill(run, out, 0.0, args, emit),
    }
    skipped = {"pruned": "prune", "distilled": "distill", "alone": "distill"}
    results: dict[str, dict] = {}
    for name, job in jobs.items():
        if skipped[name] not in args.skip:
            results[name] = job()
            print(row(name, results[name], teacher), flush=True)  # as soon as it is known
    lines = report(teacher, results, args)
    print("\n".join(lines), flush=True)
    if args.json_out:
        keep = ("params", "macs", "test_acc", "test_auc", "wall_s", "macs_ratio", "params_ratio")
        body = {
            "run": str(run),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "teacher": {k: teacher.get(k) for k in keep},
            **{name: {k: r.get(k) for k in keep} for name, r in results.items()},
            "report": lines,
        }
        args.json_out.write_text(json.dumps(body, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
