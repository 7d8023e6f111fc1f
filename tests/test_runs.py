"""core.runs: reading run directories and bundles, the lineage tree, deleting runs (no Qt)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from run_factory import make_bundle, make_run

from core.errors import UserError
from core.runs import (
    build_lineage,
    delete_run,
    read_metrics,
    read_run,
    scan_runs,
    walk,
    x_axis,
)


@pytest.fixture
def lineage(tmp_path: Path) -> dict[str, Path]:
    runs, bundles = tmp_path / "runs", tmp_path / "bundles"
    ft = make_run(
        runs,
        "a-finetune",
        "finetune",
        created="2026-11-23T10:00:00",
        summary={
            "test_acc": 0.91,
            "test_macro_f1": 0.9,
            "test_auc": 0.97,
            "test_ece": 0.04,
            "params": 1_520_000,
            "macs": 56_000_000,
            "size_bytes": 6_100_000,
            "epochs_run": 5,
        },
        metrics=[
            {"epoch": 1, "val_loss": 0.7, "val_acc": 0.6},
            {"epoch": 2, "val_loss": 0.5, "val_acc": ""},
        ],
    )
    pruned = make_run(
        runs,
        "b-prune",
        "prune",
        parent=str(ft),
        created="2026-11-23T11:00:00",
        metrics=[
            {"step": 1, "val_acc": 0.8, "params": 900_000, "macs": 30_000_000},
            {"step": 2, "val_acc": 0.85, "params": 700_000, "macs": 28_000_000},
        ],
        weights=2048,
    )
    distilled = make_run(
        runs,
        "c-distill",
        "distill",
        parent="b-prune",
        created="2026-11-23T12:00:00",
        summary={"best": {"val_acc": 0.88}},
    )
    orphan = make_run(runs, "d-orphan", "prune", parent="/elsewhere/gone", created="2026-11-23T13")
    bundle = make_bundle(bundles, "e-bundle", "c-distill", accuracy=0.87)
    (runs / "not-a-run").mkdir()
    (runs / "stray.txt").write_text("x", encoding="utf-8")
    return {
        "runs": runs,
        "bundles": bundles,
        "ft": ft,
        "pruned": pruned,
        "distilled": distilled,
        "orphan": orphan,
        "bundle": bundle,
    }


def test_read_run_takes_summary_first_then_metrics_csv(lineage):
    ft = read_run(lineage["ft"])
    assert (ft.kind, ft.arch, ft.data) == ("finetune", "resnet10t", "/data/faces")
    assert (ft.accuracy, ft.f1, ft.auc, ft.ece) == (0.91, 0.9, 0.97, 0.04)
    assert (ft.params, ft.macs, ft.file_bytes, ft.epochs) == (1_520_000, 56_000_000, 6_100_000, 5)
    assert ft.latency_ms is None and ft.bundle is None

    pruned = read_run(lineage["pruned"])
    # nothing in the summary: the last finite metrics.csv values, the weights file on disk
    assert (pruned.accuracy, pruned.params, pruned.macs) == (0.85, 700_000, 28_000_000)
    assert pruned.file_bytes == 2048
    assert pruned.epochs == 7  # from config.json
    assert pruned.f1 is None and pruned.auc is None

    assert read_run(lineage["distilled"]).accuracy == 0.88  # summary["best"]
    assert read_run(lineage["runs"] / "not-a-run") is None


def test_read_bundle(lineage):
    bundle = read_run(lineage["bundle"])
    assert bundle.kind == "bundle (int8)"
    assert (bundle.accuracy, bundle.latency_ms, bundle.file_bytes) == (0.87, 3.25, 4321)
    assert bundle.bundle == lineage["bundle"]
    assert bundle.parent == "c-distill"


def test_lineage_tree_links_by_path_and_name(lineage):
    runs = scan_runs(lineage["runs"], lineage["bundles"])
    assert [r.name for r in runs] == ["a-finetune", "b-prune", "c-distill", "e-bundle", "d-orphan"]
    roots = build_lineage(runs)
    assert [r.name for r in roots] == ["a-finetune", "d-orphan"]
    tree = [(depth, run.name) for depth, run in walk(roots)]
    assert tree == [
        (0, "a-finetune"),
        (1, "b-prune"),
        (2, "c-distill"),
        (3, "e-bundle"),
        (0, "d-orphan"),
    ]
    # rebuilding does not duplicate children
    assert [r.name for r in build_lineage(runs)] == ["a-finetune", "d-orphan"]
    assert len(runs[0].children) == 1


def test_parent_cycle_is_broken(tmp_path):
    make_run(tmp_path, "x", "prune", parent="y", created="1")
    make_run(tmp_path, "y", "prune", parent="x", created="2")
    roots = build_lineage(scan_runs(tmp_path))
    assert sorted(name for _, run in walk(roots) for name in [run.name]) == ["x", "y"]
    assert len(roots) == 1


def test_read_metrics_blank_cells_are_nan(lineage):
    columns = read_metrics(lineage["ft"] / "metrics.csv")
    assert columns["epoch"] == [1.0, 2.0]
    assert columns["val_acc"][0] == 0.6 and math.isnan(columns["val_acc"][1])
    assert read_metrics(lineage["ft"] / "missing.csv") == {}


def test_delete_run_only_inside_the_workspace(lineage, tmp_path):
    roots = [lineage["runs"], lineage["bundles"]]
    with pytest.raises(UserError, match="not inside"):
        delete_run(make_run(tmp_path / "elsewhere", "z", "finetune"), roots)
    with pytest.raises(UserError, match="not a run folder"):
        delete_run(lineage["runs"] / "not-a-run", roots)
    delete_run(lineage["pruned"], roots)
    delete_run(lineage["bundle"], roots)
    assert not lineage["pruned"].exists() and not lineage["bundle"].exists()
    roots_after = build_lineage(scan_runs(*roots))
    # the distilled run lost its parent and becomes a root
    assert [r.name for r in roots_after] == ["a-finetune", "c-distill", "d-orphan"]


def test_x_axis_picks_epoch_step_or_row():
    from core.runs import x_axis

    assert x_axis({"epoch": [1.0, 2.0, 3.0], "val_acc": [0.5] * 3}) == ([1.0, 2.0, 3.0], "epoch")
    # a pruned run: epochs restart at each step -> each step's epochs between it and the next
    pruned = {"epoch": [0.0, 0.0, 1.0, 0.0, 1.0], "step": [0.0, 1.0, 1.0, 2.0, 2.0]}
    assert x_axis(pruned) == ([0.0, 1.0, 1.5, 2.0, 2.5], "step")
    assert x_axis(pruned, epochs_per_step=3)[0] == [0.0, 1.0, 1.25, 2.0, 2.25]
    assert x_axis({"epoch": [2.0, 1.0], "val_acc": [0.1, 0.2]}) == ([1.0, 2.0], "row")
    assert x_axis({"step": [1.0, 2.0], "val_acc": [0.1, 0.2]}) == ([1.0, 2.0], "step")
    assert x_axis({}) == ([], "row")


def test_bundle_latency_comes_from_the_verification_report(tmp_path):
    bundle = make_bundle(tmp_path, "b", None, accuracy=0.9)
    meta = json.loads((bundle / "bundle.json").read_text())
    del meta["metrics"]["latency_ms"]
    (bundle / "bundle.json").write_text(json.dumps(meta))
    assert read_run(bundle).latency_ms is None
    report = {
        "shipped": "int8",
        "variants": {"fp32": {"latency_ms": 0.9}, "int8": {"latency_ms": 0.31}},
    }
    (bundle / "verification.json").write_text(json.dumps(report))
    assert read_run(bundle).latency_ms == 0.31


def test_derived_runs_inherit_the_data_set(tmp_path):
    make_run(tmp_path, "ft", "finetune", created="1")
    child = make_run(tmp_path, "pr", "prune", parent="ft", created="2")
    run = json.loads((child / "run.json").read_text())
    (child / "run.json").write_text(json.dumps({**run, "data": None}))
    assert read_run(child).data is None
    roots = build_lineage(scan_runs(tmp_path))
    assert roots[0].children[0].data == "/data/faces"


def dead_pid() -> int:
    """The id of a process that has ended."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def running_run(root: Path, name: str, **owner) -> Path:
    """A run whose run.json says running, with ``owner`` fields (pid, host)."""
    path = make_run(root, name, "finetune")
    body = json.loads((path / "run.json").read_text())
    body.update(status="running", **owner)
    (path / "run.json").write_text(json.dumps(body))
    return path


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    import os
    import socket

    host = socket.gethostname()
    killed = running_run(tmp_path, "killed", pid=dead_pid(), host=host)
    alive = running_run(tmp_path, "alive", pid=os.getpid(), host=host)
    elsewhere = running_run(tmp_path, "elsewhere", pid=dead_pid(), host=host + "-other")
    unrecorded = running_run(tmp_path, "old")  # written before runs recorded their pid
    assert read_run(killed).status == "interrupted"
    assert read_run(alive).status == "running"
    assert read_run(elsewhere).status == "running"  # cannot be checked from here
    assert read_run(unrecorded).status == "running"


def test_settle_run_ends_only_runs_nobody_writes_any_more(tmp_path):
    import os
    import socket

    from core.runs import settle_run

    host = socket.gethostname()
    killed = running_run(tmp_path, "killed", pid=dead_pid(), host=host)
    assert settle_run(killed, "failed", "the job crashed")
    body = json.loads((killed / "run.json").read_text())
    assert body["status"] == "failed" and body["summary"]["message"] == "the job crashed"
    assert not settle_run(killed, "interrupted", "again")  # no longer running: left alone
    alive = running_run(tmp_path, "alive", pid=os.getpid(), host=host)
    assert not settle_run(alive, "failed", "someone else's job ended")
    assert read_run(alive).status == "running"
    orphan = running_run(tmp_path, "orphan", pid=dead_pid(), host=host)
    assert not settle_run(orphan, "failed", "not mine", os.getpid(), own_only=True)
    assert read_run(orphan).status == "interrupted"  # another process's run: left as it was
    assert settle_run(alive, "failed", "its own job ended", pid=os.getpid())
    assert not settle_run(tmp_path / "missing", "failed", "no run here")


def test_only_a_run_still_running_cannot_be_used_yet(tmp_path):
    import os
    import socket

    from core.runs import still_running_reason

    host = socket.gethostname()
    assert still_running_reason(make_run(tmp_path, "done", "finetune")) is None
    assert still_running_reason(tmp_path) is None  # not a run: the callers say so
    busy = running_run(tmp_path, "busy", pid=os.getpid(), host=host)
    assert "still running" in still_running_reason(busy)
    killed = running_run(tmp_path, "killed", pid=dead_pid(), host=host)
    assert still_running_reason(killed) is None  # interrupted: its best weights so far are usable
    settle = json.loads((killed / "run.json").read_text())
    settle["status"] = "cancelled"
    (killed / "run.json").write_text(json.dumps(settle))
    assert still_running_reason(killed) is None


def test_a_run_records_its_process_while_it_runs(tmp_path):
    import os

    from training.rundir import RunDir

    run = RunDir.create(tmp_path / "r", kind="finetune", config={})
    assert run.info()["pid"] == os.getpid() and read_run(run.path).status == "running"
    run.update(status="cancelled", pid=1)
    RunDir.create(tmp_path / "r", kind="finetune", config={}, resume=True)
    assert run.info()["pid"] == os.getpid() and run.info()["status"] == "running"


def test_a_resumed_prune_keeps_its_metrics_rows_in_order(tmp_path):
    from training.rundir import RunDir

    run = RunDir.create(tmp_path / "p", kind="prune", config={})

    def prune(steps_done: int) -> None:
        """What a prune job writes: step0, then per step its pruned row and fine-tuning epoch;
        a resumed job rewrites the rows it re-validates (epoch 0) and skips finished epochs."""
        run.append_metrics({"stage": "step0", "epoch": 0, "val_acc": 0.6, "step": 0})
        for k in (1, 2):
            run.append_metrics({"stage": f"step{k}", "epoch": 0, "val_acc": 0.5, "step": k})
            if k > steps_done:
                run.append_metrics({"stage": f"step{k}", "epoch": 1, "val_acc": 0.7, "step": k})

    prune(steps_done=0)
    prune(steps_done=2)  # killed at the very end, then resumed
    order = [(r["stage"], r["epoch"]) for r in run.read_metrics()]
    assert order == [("step0", "0"), ("step1", "0"), ("step1", "1"), ("step2", "0"), ("step2", "1")]
    x, label = x_axis(read_metrics(run.metrics_path))
    assert (x, label) == ([0.0, 1.0, 1.5, 2.0, 2.5], "step")


def test_scrambled_pruning_rows_are_read_in_step_order(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = ["step1,1,1,0.7", "step2,1,2,0.6", "step0,0,0,0.66", "step1,0,1,0.63", "step2,0,2,0.53"]
    path.write_text("stage,epoch,step,val_acc\n" + "\n".join(rows) + "\n", encoding="utf-8")
    columns = read_metrics(path)
    assert columns["val_acc"] == [0.66, 0.63, 0.7, 0.53, 0.6]
    assert x_axis(columns)[0] == [0.0, 1.0, 1.5, 2.0, 2.5]
