"""A torch-free stand-in for ``deepfake-studio job JOB.json``: emits a scripted event stream.

Usage: ``python tests/fake_job.py job JOB.json``. Keys of the job config it understands:

* ``epochs`` (3), ``steps`` (4 per epoch), ``delay`` (seconds per step, 0): the stream's shape;
  a slow job (``delay`` 0.2) leaves time to cancel it.
* ``crash_at_epoch``: print a traceback to stderr and exit 1 *without* a terminal event (what a
  segfault or an out-of-memory kill looks like to the GUI).
* ``error_at_epoch``: end with an ``error`` event (a clean failure).
* ``out``: a folder where it keeps ``state.json`` (the last finished epoch) so ``"resume": true``
  continues after it, like a real job's checkpoint; ``run.json`` (``running`` with this process
  as owner from the start) and ``metrics.csv`` are written like a real run directory, and an
  ``out`` that already holds a run.json fails without ``resume``, like a real job.

The line ``cancel`` on stdin ends the job after the current step with ``done`` +
``"cancelled": true``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.events import EventWriter
from core.runs import owner_stamp


def _watch_stdin(flag: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "cancel":
            flag.set()
            return


def _write_run(out: Path, config: dict, status: str, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    run = {
        **owner_stamp(),
        "id": out.name,
        "kind": config.get("kind", "finetune"),
        "parent": config.get("run"),
        "status": status,
        "arch": config.get("arch", "fake_net"),
        "data": config.get("data"),
        "summary": {"best_val_acc": max((r["val_acc"] for r in rows), default=None)},
    }
    (out / "run.json").write_text(json.dumps(run), encoding="utf-8")
    if rows:
        header = list(rows[0])
        lines = [",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows]
        (out / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "job":
        print("usage: fake_job.py job JOB.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    job_id = Path(argv[1]).stem
    emit = EventWriter(job_id, [sys.stdout], max_progress_per_s=0)
    epochs, steps = int(config.get("epochs", 3)), int(config.get("steps", 4))
    delay = float(config.get("delay", 0.0))
    out = Path(config["out"]) if config.get("out") else None
    state_path = out / "state.json" if out else None
    start, rows = 0, []
    if out and not config.get("resume") and (out / "run.json").exists():
        emit("error", {"message": f"{out} already holds a run; pass --resume to continue it"})
        return 2
    if config.get("resume") and state_path and state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        start, rows = state["epoch"], state["rows"]
        emit.log(f"resuming after epoch {start}")
    if out:
        _write_run(out, config, "running", rows)
    cancel = threading.Event()
    threading.Thread(target=_watch_stdin, args=(cancel,), daemon=True).start()
    emit.log(f"fake job: {epochs} epochs x {steps} steps")
    emit.log(f"workspace: {os.environ.get('DEEPFAKE_STUDIO_HOME', '')}")
    for epoch in range(start + 1, epochs + 1):
        if config.get("crash_at_epoch") == epoch:
            sys.stderr.write("Traceback (most recent call last):\n  File fake_job.py\n")
            sys.stderr.write("RuntimeError: CUDA out of memory (fake crash)\n")
            sys.stderr.flush()
            return 1
        if config.get("error_at_epoch") == epoch:
            emit("error", {"message": "the data set has only one class"})
            return 1
        for step in range(1, steps + 1):
            if cancel.is_set():
                if out:
                    _write_run(out, config, "cancelled", rows)
                emit("done", {"cancelled": True, "epochs_done": epoch - 1})
                return 0
            time.sleep(delay)
            emit(
                "progress",
                {
                    "done": step,
                    "total": steps,
                    "phase": "train",
                    "images_per_s": 100.0 + step,
                    "eta_s": (steps - step) * max(delay, 0.01),
                },
                epoch=epoch,
                step=step,
            )
        row = {
            "epoch": epoch,
            "train_loss": round(1.0 / epoch, 4),
            "train_acc": round(1.0 - 0.5 / epoch, 4),
            "val_loss": round(1.2 / epoch, 4),
            "val_acc": round(0.9 - 0.4 / epoch, 4),
            "lr": round(0.01 / epoch, 6),
        }
        rows.append(row)
        emit("metric", {k: v for k, v in row.items() if k != "epoch"}, epoch=epoch)
        if state_path:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps({"epoch": epoch, "rows": rows}), encoding="utf-8")
    print("this line is not JSON and must become a log line", flush=True)
    if out:
        _write_run(out, config, "done", rows)
    emit("done", {"cancelled": False, "best_val_acc": rows[-1]["val_acc"] if rows else None})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
