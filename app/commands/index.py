"""``deepfake-studio index``: index a folder-per-class data set, make splits, check hygiene."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from app.commands import print_json, workspace_of
from app.widgets.formatting import plural

MAX_LISTED = 20
"""Files listed per finding group (and groups per finding) in the printed report."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index",
        help="index a folder-per-class data set (incremental), make splits, check hygiene",
        description="Index DIR (one subfolder per class) into the workspace: size, hash, format, "
        "readability of every image. Re-running analyses only new or changed files; an "
        "interrupted run continues where it stopped.",
    )
    p.add_argument("dir", metavar="DIR", help="folder with one subfolder per class")
    p.add_argument("--splits", action="store_true", help="make (or remake) train/val/test splits")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--val", type=float, default=0.1, help="validation share (default 0.1)")
    p.add_argument("--test", type=float, default=0.1, help="test share (default 0.1)")
    p.add_argument(
        "--hygiene", action="store_true", help="report duplicates, near duplicates and bias"
    )
    p.add_argument(
        "--against",
        metavar="DIR",
        help="also index DIR and report files identical to this data set's (e.g. a test set)",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel workers (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


class _Progress:
    """``progress(done, total)`` that writes at most one line a second to stderr."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.shown = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not total or (done < total and now - self.shown < 1.0):
            return  # nothing to analyse (up to date), or a line was shown less than 1 s ago
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        print(f"indexing {self.name}: {done}/{total} files ({rate:.0f}/s)", file=sys.stderr)


def _build(path: str, args: argparse.Namespace):
    from core.datasets import DatasetIndex

    return DatasetIndex.build(
        path, workspace_of(args), progress=_Progress(path), workers=args.workers
    )


def summarise(index, hygiene_report=None) -> dict[str, Any]:
    """The JSON summary of an index (and its hygiene report)."""
    from core.hygiene import duplicate_groups

    build = index.last_build
    groups = duplicate_groups(index.records())
    body: dict[str, Any] = {
        "root": str(index.root),
        "index": str(index.db_path),
        "complete": index.is_complete(),
        "expected_files": index.expected_files(),
        "classes": index.counts(),
        "files": index.count(),
        "unreadable": len(index.errors()),
        "errors": [[str(p), e] for p, e in index.errors()[:MAX_LISTED]],
        "duplicates": {"files": sum(len(g) - 1 for g in groups), "groups": len(groups)},
        "splits": index.split_counts() if index.has_splits() else None,
        "split_params": index.split_params(),
    }
    if build is not None:
        body["build"] = {
            "analysed": build.analysed,
            "removed": build.removed,
            "ignored": build.ignored,
            "links_skipped": build.links_skipped,
            "cancelled": build.cancelled,
            "seconds": round(build.seconds, 3),
        }
    if hygiene_report is not None:
        body["hygiene"] = hygiene_report.to_dict(max_files=MAX_LISTED)
    return body


def _print_text(body: dict[str, Any]) -> None:
    build = body.get("build")
    classes = len(body["classes"])
    line = (
        f"{body['root']}: {plural(body['files'], 'file')} in {plural(classes, 'class', 'classes')}"
    )
    if build:
        rate = build["analysed"] / max(build["seconds"], 1e-9)
        line += f" ({build['analysed']} analysed in {build['seconds']:.1f} s, {rate:.0f} files/s"
        line += (
            f", {build['removed']} removed, {plural(build['ignored'], 'non-image file')} ignored"
        )
        if build["links_skipped"]:
            line += f", {plural(build['links_skipped'], 'folder link')} skipped (loop or repeat)"
        line += ")"
    print(line)
    if not body["complete"]:
        expected = body["expected_files"]
        of = f" of {expected:,}" if expected is not None else ""
        print(f"index incomplete: {body['files']:,}{of} files; run the command again to finish")
    elif classes == 1:
        print("only 1 class: needs at least 2 classes to train")
    width = max(len(name) for name in body["classes"])
    for name, count in body["classes"].items():
        print(f"  {name:<{width}}  {count}")
    print(f"unreadable: {body['unreadable']}")
    for path, error in body["errors"]:
        print(f"  {path}: {error}")
    dup = body["duplicates"]
    print(
        f"exact duplicates: {plural(dup['files'], 'extra copy', 'extra copies')} "
        f"in {plural(dup['groups'], 'group')}"
    )
    if body["splits"]:
        params = body["split_params"]
        sizes = ", ".join(f"{k} {v}" for k, v in body["splits"].items())
        print(
            f"splits (seed {params['seed']}, val {params['val']}, test {params['test']}): {sizes}"
        )
    findings = list(body.get("hygiene", {}).get("findings", []))
    if "against" in body:
        other = body["against"]
        print(f"identical files in {other['root']}: {other['files']}")
        if other["finding"]:
            findings.append(other["finding"])
    for finding in findings:
        print(f"{finding['severity']}: {finding['message']}")
        for group in finding["groups"][:5]:
            print("    " + "  ".join(group[:5]))


def run(args: argparse.Namespace) -> int:
    from core import hygiene

    index = _build(args.dir, args)
    if index.last_build.cancelled:
        print("indexing was interrupted; run the command again to continue", file=sys.stderr)
    if args.splits:
        index.make_splits(seed=args.seed, val=args.val, test=args.test)
    report = hygiene.check(index) if args.hygiene else None
    body = summarise(index, report)
    if args.against:
        other = _build(args.against, args)
        finding = hygiene.cross_duplicates(index, other)
        body["against"] = {
            "root": str(other.root),
            "files": len(finding.notes) if finding else 0,
            "finding": finding.to_dict(max_files=MAX_LISTED) if finding else None,
        }
    if args.json:
        print_json(body)
    else:
        _print_text(body)
    return 0
