"""``python -m bench [NAME ...]`` (``make bench``): run every ``bench/bench_*.py`` in turn.

Each script runs in its own interpreter (``python -m bench.<name>``, from the repository root),
so one script's imports and failures do not affect the next; its output is passed through. The
run starts with a description of the machine (CPU model, cores, memory), because every figure
depends on it. ``NAME`` filters scripts by substring (``python -m bench checker``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_description() -> str:
    """``AMD EPYC, 2 cores, 7.8 GiB RAM, Linux 6.1, Python 3.11.9``."""
    memory = memory_gib()
    parts = [
        cpu_model(),
        f"{os.cpu_count()} cores",
        f"{memory:.1f} GiB RAM" if memory else None,
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
    ]
    return ", ".join(p for p in parts if p)


def scripts(filters: list[str]) -> list[str]:
    names = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    return [n for n in names if not filters or any(f in n for f in filters)]


def main(argv: list[str]) -> int:
    names = scripts(argv)
    print(f"machine: {machine_description()}", flush=True)
    if not names:
        print(f"no bench script matches {argv}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        status = subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=REPO)
        print(f"-- {name}: exit {status}, {time.perf_counter() - started:.1f} s", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
