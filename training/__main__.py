"""``python -m training JOB.json``: run one job, printing JSON-lines events on stdout."""

from __future__ import annotations

import sys

from core.errors import UserError
from training.config import load_job_file
from training.jobs import main

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m training JOB.json", file=sys.stderr)
        sys.exit(2)
    try:
        config = load_job_file(sys.argv[1])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(config))
