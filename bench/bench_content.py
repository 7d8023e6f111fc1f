"""The rule's step 0 (core.content) on real data: which images it would call unjudgeable.

Usage, from the repository root::

    .venv/bin/python -m bench.bench_content [--data DIR]

Decodes every image under ``--data`` (default ``../shared/data``: cifake, faces, scenes) and
prints, per data set and class folder, the image count, the lowest luma standard deviation, the
shortest side and how many images step 0 catches, then the overall figures for the ``real``
folders (the limits were chosen so that none is caught: lowest 5.94 over 26,112 images) and
the time ``luma_std`` takes per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def group_of(relative: Path) -> str:
    """``cifake/real`` for ``cifake/train/real/x.jpg``, ``faces/stylegan2`` for faces ones."""
    parts = [p for p in relative.parts[:-1] if p not in ("train", "test", "val")]
    return "/".join(parts[:2])


def measure(data: Path) -> dict[str, list[tuple[float, int, bool]]]:
    """``{group: [(luma std, shorter side, caught), ...]}``; prints the time per measurement."""
    from core.content import content_problem, luma_std
    from core.preprocess import IMAGE_EXTENSIONS, load_image

    groups: dict[str, list[tuple[float, int, bool]]] = defaultdict(list)
    seconds = 0.0
    for path in sorted(data.rglob("*")):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        rgb = load_image(path)
        start = time.perf_counter()
        value = luma_std(rgb)
        seconds += time.perf_counter() - start
        caught = content_problem(rgb) is not None
        groups[group_of(path.relative_to(data))].append((value, min(rgb.shape[:2]), caught))
    count = sum(len(rows) for rows in groups.values())
    if count:
        print(f"luma_std: {1e6 * seconds / count:.0f} us per image ({count} images)")
    return groups


def summary(name: str, rows: list[tuple[float, int, bool]]) -> str:
    lowest = min(value for value, _, _ in rows)
    side = min(s for _, s, _ in rows)
    caught = sum(c for _, _, c in rows)
    return f"{name:24s} n={len(rows):6d}  min luma std {lowest:7.2f}  min side {side:4d}  caught {caught}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: no data at {args.data}")
        return 0
    from core.content import MIN_LUMA_STD, MIN_SIDE

    print(f"step 0 limits: shorter side >= {MIN_SIDE} px, luma std >= {MIN_LUMA_STD}")
    groups = measure(args.data)
    for name in sorted(groups):
        print(summary(name, groups[name]))
    real = [row for name, rows in groups.items() if name.endswith("/real") for row in rows]
    if real:
        print(summary("all real", real))
    return 0


if __name__ == "__main__":
    sys.exit(main())
