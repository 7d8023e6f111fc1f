"""Data set hygiene: problems in a folder-per-class data set that make a detector look better
(or worse) than it is.

:func:`check` reads a :class:`core.datasets.DatasetIndex` and returns a :class:`HygieneReport`
(JSON-able dataclasses). Each :class:`Finding` lists the files involved (index-relative POSIX
paths) grouped the way a person reviews them, so the GUI can show them:

* ``unreadable``: files that do not decode (with the reason);
* ``duplicates`` / ``cross_class_duplicates`` / ``cross_split_duplicates``: identical bytes
  (SHA-256); a copy in two classes is a label conflict, a copy in two splits a test leak;
* ``near_duplicates``: perceptual hashes within ``near_threshold`` bits (:func:`near_groups`,
  multi-index hashing: exact in its answer, fast at 200k images);
* ``format_bias`` / ``size_bias`` / ``quality_bias``: classes that differ by file format, image
  size or JPEG quality, shortcuts a model learns instead of the content;
* ``tiny_class`` / ``imbalance``: classes too small to measure, or very uneven.

:func:`cross_duplicates` compares two indexes (a training set against a test set).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.dataset_index import FileFacts
from core.datasets import DatasetIndex

NEAR_THRESHOLD = 4
"""Perceptual-hash bits two images may differ by and still be near duplicates (of 64)."""
BIAS_DISTANCE = 0.5
"""Total variation distance between two classes' distributions from which bias is reported."""
QUALITY_GAP = 10
"""Difference of median JPEG quality between classes from which bias is reported."""
MIN_CLASS = 50
"""Classes with fewer readable images are reported as tiny."""
IMBALANCE_RATIO = 3.0
"""Largest / smallest class size from which imbalance is reported."""
SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test", "testing"})


@dataclass
class Finding:
    """One problem: ``kind``, ``severity`` (error, warning, info), a sentence and its files.

    ``groups`` hold the files in review units (a duplicate group, a class); ``files`` is their
    union, sorted; ``notes`` says something per file (why it is unreadable).
    """

    kind: str
    severity: str
    message: str
    groups: list[list[str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        return sorted({path for group in self.groups for path in group})

    def to_dict(self, max_files: int | None = None) -> dict[str, Any]:
        """JSON-able; with ``max_files`` each group is cut and ``more`` says how many were left."""
        body = asdict(self)
        body["files"] = len(self.files)
        if max_files is not None:
            body["groups"] = [group[:max_files] for group in self.groups[:max_files]]
            body["more"] = max(0, len(self.groups) - max_files) + sum(
                max(0, len(group) - max_files) for group in self.groups[:max_files]
            )
        return body


@dataclass
class HygieneReport:
    """The findings for one data set, most severe first."""

    root: str
    files: int
    readable: int
    classes: dict[str, int]
    imbalance_ratio: float | None
    findings: list[Finding] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self, max_files: int | None = None) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "findings"}
        body["findings"] = [f.to_dict(max_files) for f in self.findings]
        return body


# -- duplicates -------------------------------------------------------------------------------
def duplicate_groups(records: Iterable[FileFacts]) -> list[list[FileFacts]]:
    """Groups of two or more readable files with identical bytes, sorted by first path."""
    by_sha: dict[str, list[FileFacts]] = defaultdict(list)
    for record in records:
        if record.error is None:
            by_sha[record.sha256].append(record)
    groups = [sorted(g, key=lambda r: r.relpath) for g in by_sha.values() if len(g) > 1]
    return sorted(groups, key=lambda g: g[0].relpath)


def _paths(groups: Iterable[Iterable[FileFacts]]) -> list[list[str]]:
    return [[r.relpath for r in group] for group in groups]


def _n(count: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _extra(groups: list[list[Any]]) -> int:
    return sum(len(g) - 1 for g in groups)


def _duplicate_findings(records: list[FileFacts]) -> list[Finding]:
    groups = duplicate_groups(records)
    findings = []
    if groups:
        findings.append(
            Finding(
                "duplicates",
                "warning",
                f"exact copies of another file: {_n(_extra(groups), 'file')} in "
                f"{_n(len(groups), 'group')} (copies inflate metrics when they straddle splits)",
                _paths(groups),
            )
        )
    return findings + _straddling(
        groups, "duplicates", "error", "identical files", "conflicting labels", "test leak"
    )


def _straddling(
    groups: list[list[FileFacts]], kind: str, severity: str, what: str, labels: str, leak: str
) -> list[Finding]:
    """Findings for the ``groups`` (of copies) that span more than one class or split."""
    findings = []
    for scope, key, why in (("class", "label", labels), ("split", "split", leak)):
        found = [g for g in groups if len({getattr(r, key) for r in g if getattr(r, key)}) > 1]
        if found:
            findings.append(
                Finding(
                    f"cross_{scope}_{kind}",
                    severity,
                    f"{what} in more than one {scope} ({why}): {_n(len(found), 'group')}",
                    _paths(found),
                )
            )
    return findings


def cross_duplicates(index_a: DatasetIndex, index_b: DatasetIndex) -> Finding | None:
    """Files of ``index_b`` identical to files of ``index_a`` (e.g. a test set against training).

    Each group lists the copies in ``a`` then those in ``b``, as absolute paths; ``notes`` maps
    each file of ``b`` to its first copy in ``a``. ``None`` when nothing is shared.
    """
    in_a: dict[str, list[str]] = defaultdict(list)
    for record in index_a.records():
        if record.error is None:
            in_a[record.sha256].append(str(index_a.path(record.relpath)))
    both: dict[str, list[str]] = defaultdict(list)
    for record in index_b.records():
        if record.error is None and record.sha256 in in_a:
            both[record.sha256].append(str(index_b.path(record.relpath)))
    if not both:
        return None
    groups = sorted(sorted(in_a[sha]) + sorted(paths) for sha, paths in both.items())
    notes = {
        path: f"identical to {min(in_a[sha])}" for sha, paths in both.items() for path in paths
    }
    return Finding(
        "cross_dataset_duplicates",
        "error",
        f"files of {index_b.root} identical to files of {index_a.root}: {len(notes)}",
        groups,
        dict(sorted(notes.items())),
    )


# -- near duplicates --------------------------------------------------------------------------
def near_pairs(hashes: np.ndarray, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """Index pairs ``(i, j)``, ``i < j``, of 64-bit hashes at most ``threshold`` bits apart.

    Multi-index hashing: split the 64 bits into ``threshold + 1`` chunks; by pigeonhole two
    hashes that close agree exactly on at least one chunk, so only hashes sharing a chunk value
    are compared (vectorised popcount, in blocks of bounded memory). Returns an ``(n, 2)``
    int64 array.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    bounds = np.linspace(0, 64, threshold + 2).astype(int).tolist()
    found: list[np.ndarray] = []
    for low, high in itertools.pairwise(bounds):
        keys = (hashes >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            found += _close_within(order[start : start + size], hashes, threshold)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


def _close_within(members: np.ndarray, hashes: np.ndarray, threshold: int) -> list[np.ndarray]:
    """Pairs of ``members`` (indexes into ``hashes``) within ``threshold`` bits, as arrays."""
    members = np.sort(members)
    values = hashes[members]
    rows_per_block = max(1, (1 << 22) // len(members))
    found = []
    for first in range(0, len(members), rows_per_block):
        block = values[first : first + rows_per_block, None] ^ values[None, first:]
        close = np.triu(np.bitwise_count(block) <= threshold, k=1)
        rows, cols = np.nonzero(close)
        if len(rows):
            found.append(np.stack([members[first + rows], members[first + cols]], axis=1))
    return found


def _component_labels(n: int, pairs: np.ndarray) -> list[int]:
    """Union-find: the representative of each of ``n`` nodes joined by ``pairs``."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        parent[root(a)] = root(b)
    return [root(i) for i in range(n)]


def near_groups(records: list[FileFacts], threshold: int = NEAR_THRESHOLD) -> list[list[FileFacts]]:
    """Groups of readable files whose perceptual hashes are within ``threshold`` bits (chained),
    leaving out groups that are only exact copies of one file.

    Equal hashes are compared once (a folder of 10,000 black frames is one node, not 50 million
    pairs).
    """
    readable = [r for r in records if r.error is None and r.phash]
    if not readable:
        return []
    hashes = np.array([int(r.phash, 16) for r in readable], dtype=np.uint64)
    unique, node_of = np.unique(hashes, return_inverse=True)
    labels = _component_labels(len(unique), near_pairs(unique, threshold))
    by_label: dict[int, list[FileFacts]] = defaultdict(list)
    for record, node in zip(readable, node_of.tolist(), strict=True):
        by_label[labels[node]].append(record)
    groups = [
        sorted(group, key=lambda r: r.relpath)
        for group in by_label.values()
        if len({r.sha256 for r in group}) > 1
    ]
    return sorted(groups, key=lambda g: g[0].relpath)


# -- shortcuts --------------------------------------------------------------------------------
def _distance(a: Counter, b: Counter) -> float:
    """Total variation distance between two count distributions (0 same, 1 disjoint)."""
    total_a, total_b = sum(a.values()), sum(b.values())
    if not total_a or not total_b:
        return 0.0
    return 0.5 * sum(abs(a[k] / total_a - b[k] / total_b) for k in set(a) | set(b))


def _describe(counts: Counter) -> str:
    total = sum(counts.values())
    return ", ".join(f"{100 * n / total:.0f}% {key}" for key, n in counts.most_common(2))


def _size_bin(record: FileFacts) -> str:
    """Half-octave bins of the shorter side: 32 and 45 px fall in different bins."""
    shorter = min(record.width or 1, record.height or 1)
    low = 2 ** (math.floor(2 * math.log2(shorter)) / 2)
    return f"~{round(low)}px"


def _bias_finding(
    kind: str, what: str, by_class: dict[str, list[FileFacts]], key, threshold: float
) -> Finding | None:
    """Report the class pair whose distributions of ``key(record)`` differ the most."""
    dists = {
        label: Counter(k for k in map(key, rs) if k is not None) for label, rs in by_class.items()
    }
    labels = sorted(label for label, d in dists.items() if d)
    worst = max(
        (
            (_distance(dists[a], dists[b]), a, b)
            for i, a in enumerate(labels)
            for b in labels[i + 1 :]
        ),
        default=None,
    )
    if worst is None or worst[0] < threshold:
        return None
    distance, a, b = worst
    top = {label: dists[label].most_common(1)[0][0] for label in (a, b)}
    groups = [[r.relpath for r in by_class[label] if key(r) == top[label]] for label in (a, b)]
    return Finding(
        kind,
        "warning",
        f"classes differ by {what}: '{a}' is {_describe(dists[a])}; '{b}' is "
        f"{_describe(dists[b])} (distance {distance:.2f}). A model can learn the {what} instead "
        "of the content: re-encode or resize one class, or train with JPEG/resize augmentation",
        groups,
    )


def _quality_finding(by_class: dict[str, list[FileFacts]], gap: int) -> Finding | None:
    medians = {
        label: statistics.median(q)
        for label, rs in by_class.items()
        if (q := [r.jpeg_quality for r in rs if r.jpeg_quality is not None])
    }
    if len(medians) < 2:
        return None
    low = min(medians, key=medians.get)
    high = max(medians, key=medians.get)
    if medians[high] - medians[low] < gap:
        return None
    groups = [
        [r.relpath for r in by_class[label] if r.jpeg_quality is not None] for label in (high, low)
    ]
    return Finding(
        "quality_bias",
        "warning",
        f"classes differ by JPEG quality: median {medians[high]:.0f} in '{high}' vs "
        f"{medians[low]:.0f} in '{low}'. A model can learn the compression instead of the "
        "content: train with JPEG re-compression augmentation",
        groups,
    )


def _class_findings(
    counts: dict[str, int], by_class: dict[str, list[FileFacts]], min_class: int, ratio: float
) -> tuple[list[Finding], float | None]:
    findings = []
    for label in sorted(counts):
        if counts[label] < min_class:
            findings.append(
                Finding(
                    "tiny_class",
                    "warning",
                    f"class '{label}' has only {_n(counts[label], 'readable image')} (fewer than "
                    f"{min_class}): its metrics will be noisy",
                    [[r.relpath for r in by_class.get(label, [])]],
                )
            )
    nonzero = [n for n in counts.values() if n]
    imbalance = max(nonzero) / min(nonzero) if len(nonzero) > 1 else None
    if imbalance is not None and imbalance >= ratio:
        big = max(counts, key=counts.get)
        small = min((c for c in counts if counts[c]), key=counts.get)
        findings.append(
            Finding(
                "imbalance",
                "warning",
                f"classes are imbalanced {imbalance:.1f}:1 ('{big}' {counts[big]} vs '{small}' "
                f"{counts[small]}): use balanced sampling and read per-class metrics",
                [[r.relpath for r in by_class[small]]],
            )
        )
    split_like = sorted(c for c in counts if c.lower() in SPLIT_NAMES)
    if split_like:
        findings.append(
            Finding(
                "split_folders",
                "warning",
                f"class folders {split_like} look like splits, not classes: index the folder "
                "inside them that holds one subfolder per class",
                [],
            )
        )
    return findings, imbalance


# -- the report -------------------------------------------------------------------------------
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def check(
    index: DatasetIndex,
    *,
    near_threshold: int | None = NEAR_THRESHOLD,
    min_class: int = MIN_CLASS,
    imbalance_ratio: float = IMBALANCE_RATIO,
    bias_distance: float = BIAS_DISTANCE,
    quality_gap: int = QUALITY_GAP,
) -> HygieneReport:
    """All hygiene findings for ``index`` (``near_threshold=None`` skips near duplicates)."""
    records = index.records()
    readable = [r for r in records if r.error is None]
    by_class: dict[str, list[FileFacts]] = defaultdict(list)
    for record in readable:
        by_class[record.label].append(record)
    counts = {label: len(by_class.get(label, [])) for label in index.class_names}

    findings: list[Finding] = []
    bad = [r for r in records if r.error is not None]
    if bad:
        findings.append(
            Finding(
                "unreadable",
                "error",
                f"unreadable files, left out of training: {_n(len(bad), 'file')}",
                [[r.relpath for r in bad]],
                {r.relpath: r.error or "" for r in bad},
            )
        )
    findings += _duplicate_findings(records)
    if near_threshold is not None:
        near = near_groups(readable, near_threshold)
        if near:
            findings.append(
                Finding(
                    "near_duplicates",
                    "info",
                    f"near-identical images (perceptual hash within {near_threshold} bits: "
                    f"resized, re-encoded or edited copies): {_n(len(near), 'group')}",
                    _paths(near),
                )
            )
        findings += _straddling(
            near,
            "near_duplicates",
            "warning",
            "near-identical images",
            "a resized or re-encoded copy under another label?",
            "the test split may hold what training saw",
        )
    for finding in (
        _bias_finding("format_bias", "file format", by_class, lambda r: r.format, bias_distance),
        _bias_finding("size_bias", "image size", by_class, _size_bin, bias_distance),
        _quality_finding(by_class, quality_gap),
    ):
        if finding:
            findings.append(finding)
    class_findings, imbalance = _class_findings(counts, by_class, min_class, imbalance_ratio)
    findings += class_findings
    findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return HygieneReport(
        root=str(index.root),
        files=len(records),
        readable=len(readable),
        classes=counts,
        imbalance_ratio=None if imbalance is None else round(imbalance, 3),
        findings=findings,
    )
