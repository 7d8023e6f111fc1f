"""Read the workspace's run directories (and exported bundles) into plain records; no Qt.

A run directory (docs/run-directory.md) holds ``run.json``, ``config.json``, ``model.json``,
``metrics.csv`` and ``events.jsonl``. :func:`scan_runs` reads only those small files, so a scan
of hundreds of runs takes milliseconds; :func:`build_lineage` turns the ``parent`` fields into a
forest (fine-tuned -> pruned -> distilled -> exported). Bundles (folders with ``bundle.json``)
found in a run directory or in the workspace's bundle folder join the tree under their
``parent_run``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.learning_curve import CURVE_FILE

RUN_FILE = "run.json"
BUNDLE_FILE = "bundle.json"
VERIFICATION_FILE = "verification.json"
"""The export job's report; ``variants[shipped]`` has the shipped model's latency."""
WEIGHT_FILES = ("best.safetensors", "last.safetensors", "model.onnx")
RUNNING = "running"
INTERRUPTED = "interrupted"
"""A run whose run.json says ``running`` though the process that wrote it has ended."""

METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "accuracy": ("test_acc", "accuracy", "test_accuracy", "best_val_acc", "val_acc", "acc"),
    "f1": ("test_macro_f1", "test_f1", "macro_f1", "f1", "val_macro_f1", "val_f1"),
    "auc": ("test_auc", "auc", "roc_auc", "best_val_auc", "val_auc"),
    "ece": ("test_ece", "ece", "best_val_ece", "val_ece"),
    "latency_ms": ("latency_ms", "latency_ms_p50", "latency_p50_ms", "latency"),
    "params": ("params", "num_params", "parameters"),
    "macs": ("macs", "num_macs"),
    "epochs": ("epochs_run", "epochs_done", "epochs", "epoch"),
    "file_bytes": ("size_bytes", "bytes", "file_bytes"),
}
"""Names a job may record each column under, most specific first."""

NESTED_SUMMARY_KEYS = ("test", "metrics", "best", "val")
"""Sub-mappings of ``summary`` searched after its top level."""


@dataclass
class RunInfo:
    """What the Models page shows about one run directory or bundle (``None`` = not recorded)."""

    path: Path
    name: str
    kind: str
    status: str = ""
    parent: str | None = None
    created: str = ""
    arch: str | None = None
    data: str | None = None
    epochs: int | None = None
    params: float | None = None
    macs: float | None = None
    file_bytes: int | None = None
    accuracy: float | None = None
    f1: float | None = None
    auc: float | None = None
    ece: float | None = None
    latency_ms: float | None = None
    bundle: Path | None = None
    """An exported bundle folder this run produced (or the run itself when it is a bundle)."""
    summary: dict[str, Any] = field(default_factory=dict)
    children: list[RunInfo] = field(default_factory=list, repr=False)

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"


def write_json_atomic(path: Path, body: Any) -> None:
    """Write JSON via a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def owner_stamp() -> dict[str, Any]:
    """The ``pid`` and ``host`` a job records in run.json while it runs (see :func:`run_status`)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would terminate it on Windows
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _windows_process_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # access denied: it exists
    code = ctypes.c_ulong()
    try:
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    finally:
        kernel32.CloseHandle(handle)
    return bool(ok) and code.value == 259  # STILL_ACTIVE


def owner_gone(run: Mapping[str, Any]) -> bool:
    """Whether the process recorded in a run.json has ended (``False`` when none is recorded
    or it ran on another host, where it cannot be checked)."""
    pid = run.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if run.get("host") not in (None, socket.gethostname()):
        return False
    return not process_alive(pid)


def run_status(run: Mapping[str, Any]) -> str:
    """A run.json's status, ``interrupted`` for a ``running`` run whose process has ended
    (killed, or its machine went down): nothing else will ever update it."""
    status = str(run.get("status") or "")
    return INTERRUPTED if status == RUNNING and owner_gone(run) else status


def settle_run(
    directory: Path, status: str, message: str, pid: int | None = None, own_only: bool = False
) -> bool:
    """Record ``status`` in a run.json that still says ``running`` after its job ended.

    Only a run whose recorded process has ended (or is ``pid``, the job that just ended, or is
    not recorded) is changed, never one another process is still writing; with ``own_only``,
    only a run ``pid`` itself recorded. Returns whether run.json was changed; a missing or
    unwritable run.json is left alone.
    """
    path = Path(directory) / RUN_FILE
    run = read_json(path)
    if run.get("status") != RUNNING:
        return False
    recorded = run.get("pid")
    if own_only and recorded != pid:
        return False
    if recorded is not None and recorded != pid and not owner_gone(run):
        return False
    summary = _mapping(run, "summary")
    run.update(status=status, summary={**summary, "message": message})
    try:
        write_json_atomic(path, run)
    except OSError:
        return False
    return True


def still_running_reason(directory: Path) -> str | None:
    """Why the run in ``directory`` cannot be used as a model yet (export, prune, distill): its
    job is still writing its weights; else ``None`` (also for folders without run.json). A
    cancelled, failed or interrupted run can be used: its best weights so far are a model (the
    callers check that they exist), the way a run cancelled when good enough is exported."""
    if run_status(read_json(Path(directory) / RUN_FILE)) == RUNNING:
        return "this run is still running; wait until it has finished"
    return None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file is missing, torn or not an object."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _mapping(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``body[key]`` when it is a JSON object, else ``{}``."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def finite_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lookup(sources: Iterable[Mapping[str, Any]], names: tuple[str, ...]) -> float | None:
    """The first finite number stored under any of ``names`` in the first source that has one."""
    for source in sources:
        for name in names:
            number = finite_number(source.get(name))
            if number is not None:
                return number
    return None


def read_metrics(path: Path) -> dict[str, list[float]]:
    """Columns of a ``metrics.csv`` as float lists (blank or non-numeric cells become NaN).

    The rows of a pruned run (``step`` and ``epoch`` columns) come ordered by step, then epoch,
    whatever order an older resume left them in.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return {}
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key in row:
            if key is not None:
                columns.setdefault(key, [])
    if "step" in columns and "epoch" in columns:
        rows.sort(key=lambda row: (_sort_number(row.get("step")), _sort_number(row.get("epoch"))))
    for row in rows:
        for key, values in columns.items():
            number = finite_number(row.get(key))
            values.append(math.nan if number is None else number)
    return columns


def _sort_number(value: Any) -> float:
    number = finite_number(value)
    return math.inf if number is None else number


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def pruning_x(step: float, epoch: float, epochs_per_step: float) -> float:
    """Where a pruned run's row sits on its x axis: at ``step`` right after that pruning step,
    its fine-tuning epochs evenly between ``step`` and ``step + 1``."""
    return step + epoch / (epochs_per_step + 1)


def x_axis(
    columns: Mapping[str, list[float]], epochs_per_step: float | None = None
) -> tuple[list[float], str]:
    """The x values and label to plot a run's ``metrics.csv`` rows against.

    ``epoch`` when it increases row by row (fine-tuning), else ``step`` (pruning records one
    evaluation per step; when epochs restart at each step, :func:`pruning_x` of each row, with
    ``epochs_per_step`` or the most epochs any step recorded), else the row number.
    """
    for name in ("epoch", "step"):
        values = columns.get(name) or []
        if values and all(b > a for a, b in pairwise(values)):
            return list(values), name
    steps, epochs = columns.get("step") or [], columns.get("epoch") or []
    if steps and len(steps) == len(epochs) and all(map(math.isfinite, [*steps, *epochs])):
        per_step = epochs_per_step if epochs_per_step is not None else max(epochs)
        return [pruning_x(s, e, per_step) for s, e in zip(steps, epochs, strict=True)], "step"
    rows = max((len(v) for v in columns.values()), default=0)
    return [float(i) for i in range(1, rows + 1)], "row"


def _last_finite(values: list[float] | None) -> float | None:
    for value in reversed(values or []):
        if math.isfinite(value):
            return value
    return None


def _file_bytes(directory: Path, bundle: Path | None) -> int | None:
    candidates = [directory / name for name in WEIGHT_FILES]
    if bundle is not None:
        candidates.insert(0, bundle / "model.onnx")
    for candidate in candidates:
        try:
            return candidate.stat().st_size
        except OSError:
            continue
    return None


def _find_bundle(directory: Path, run: Mapping[str, Any], config: Mapping[str, Any]) -> Path | None:
    summary = run.get("summary") or {}
    candidates = [directory]
    for source in (summary, config):
        for key in ("bundle", "bundle_dir", "out"):
            value = source.get(key)
            if isinstance(value, str) and value:
                candidates.append(Path(value))
    for candidate in candidates:
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    return None


def read_run(directory: Path) -> RunInfo | None:
    """A :class:`RunInfo` for a run directory or bundle folder; ``None`` if it is neither."""
    directory = Path(directory)
    run = read_json(directory / RUN_FILE)
    if not run:
        return read_bundle(directory)
    config = read_json(directory / "config.json")
    model = read_json(directory / "model.json")
    summary = _mapping(run, "summary")
    nested = [_mapping(summary, k) for k in NESTED_SUMMARY_KEYS]
    metrics = read_metrics(directory / "metrics.csv")
    last_row = {k: _last_finite(v) for k, v in metrics.items()}
    bundle = _find_bundle(directory, run, config)
    bundle_meta = read_json(bundle / BUNDLE_FILE) if bundle else {}
    bundle_metrics = _mapping(bundle_meta, "metrics")
    sources = [summary, *nested, bundle_metrics, last_row]

    def pick(column: str) -> float | None:
        return _lookup(sources, METRIC_ALIASES[column])

    epochs = pick("epochs")
    if epochs is None:
        epochs = finite_number(config.get("epochs"))
    return RunInfo(
        path=directory,
        name=str(run.get("id") or directory.name),
        kind=str(run.get("kind") or config.get("kind") or "run"),
        status=run_status(run),
        parent=run.get("parent") or config.get("run") or config.get("teacher"),
        created=str(run.get("created") or ""),
        arch=run.get("arch") or model.get("arch") or config.get("arch") or bundle_meta.get("arch"),
        data=run.get("data") or config.get("data"),
        epochs=_int(epochs),
        params=pick("params"),
        macs=pick("macs"),
        file_bytes=_int(pick("file_bytes")) or _file_bytes(directory, bundle),
        accuracy=pick("accuracy"),
        f1=pick("f1"),
        auc=pick("auc"),
        ece=pick("ece"),
        latency_ms=pick("latency_ms"),
        bundle=bundle,
        summary=dict(summary),
    )


def read_bundle(directory: Path) -> RunInfo | None:
    """A :class:`RunInfo` (kind ``bundle``) for an exported bundle folder, else ``None``."""
    meta = read_json(Path(directory) / BUNDLE_FILE)
    if not meta:
        return None
    metrics = _mapping(meta, "metrics")
    model = _mapping(meta, "model")
    precision = model.get("precision")
    verification = read_json(Path(directory) / VERIFICATION_FILE)
    shipped = _mapping(_mapping(verification, "variants"), str(verification.get("shipped")))
    return RunInfo(
        path=Path(directory),
        name=Path(directory).name,
        kind=f"bundle ({precision})" if precision else "bundle",
        status="done",
        parent=meta.get("parent_run"),
        created=str(meta.get("created") or ""),
        arch=meta.get("arch"),
        file_bytes=_int(finite_number(model.get("bytes"))),
        accuracy=_lookup([metrics], METRIC_ALIASES["accuracy"]),
        f1=_lookup([metrics], METRIC_ALIASES["f1"]),
        auc=_lookup([metrics], METRIC_ALIASES["auc"]),
        ece=_lookup([metrics], METRIC_ALIASES["ece"]),
        latency_ms=_lookup([metrics, shipped], METRIC_ALIASES["latency_ms"]),
        bundle=Path(directory),
        summary=dict(metrics),
    )


def scan_runs(*roots: Path) -> list[RunInfo]:
    """Every run directory and bundle directly inside ``roots`` (and the point runs of a
    learning curve there), oldest first.

    A bundle that lives inside a run directory is represented by that run (its ``bundle``).
    """
    found: dict[Path, RunInfo] = {}
    for root in roots:
        for entry in _subfolders(Path(root)):
            candidates = _subfolders(entry) if (entry / CURVE_FILE).is_file() else [entry]
            for candidate in candidates:
                info = read_run(candidate)
                if info is not None:
                    found.setdefault(candidate.resolve(), info)
    return sorted(found.values(), key=lambda r: (r.created, r.name))


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def build_lineage(runs: list[RunInfo]) -> list[RunInfo]:
    """Link runs to their parents (by path, directory name or id); returns the roots.

    Each run's ``children`` is rebuilt; a run whose parent is unknown (deleted, elsewhere) is a
    root, and parent cycles are broken so every run appears exactly once. A run that records no
    data set inherits its parent's.
    """
    keys: dict[str, RunInfo] = {}
    for run in runs:
        run.children = []
        for key in (str(run.path), str(run.path.resolve()), run.path.name, run.name):
            keys.setdefault(key, run)
    roots: list[RunInfo] = []
    linked: dict[int, RunInfo] = {}
    for run in runs:
        parent = _parent_of(run, keys)
        node = parent
        while node is not None and node is not run:
            node = linked.get(id(node))
        if parent is None or node is run:
            roots.append(run)
        else:
            linked[id(run)] = parent
            parent.children.append(run)
    for _, run in walk(roots):
        for child in run.children:  # a pruned/exported run trained on its parent's data
            child.data = child.data or run.data
    return roots


def _parent_of(run: RunInfo, keys: Mapping[str, RunInfo]) -> RunInfo | None:
    if not run.parent:
        return None
    ref = str(run.parent)
    parent = keys.get(ref) or keys.get(Path(ref).name)
    if parent is None:
        try:
            parent = keys.get(str(Path(ref).resolve()))
        except OSError:
            parent = None
    return None if parent is run else parent


def walk(roots: list[RunInfo]) -> Iterable[tuple[int, RunInfo]]:
    """Depth-first ``(depth, run)`` pairs of a lineage forest."""
    stack = [(0, run) for run in reversed(roots)]
    while stack:
        depth, run = stack.pop()
        yield depth, run
        stack.extend((depth + 1, child) for child in reversed(run.children))


def delete_run(path: Path, root: Path | Iterable[Path]) -> None:
    """Delete a run directory or bundle folder that lies directly inside one of ``root``.

    Raises:
        UserError: the folder is not a run/bundle or lies outside the workspace folders.
    """
    path = Path(path).resolve()
    roots = [Path(root)] if isinstance(root, str | Path) else [Path(r) for r in root]
    if not any(path.parent == r.resolve() for r in roots):
        raise UserError(f"{path} is not inside the workspace's run or bundle folders")
    if not ((path / RUN_FILE).is_file() or (path / BUNDLE_FILE).is_file()):
        raise UserError(f"{path} is not a run folder (no run.json or bundle.json)")
    shutil.rmtree(path)
