"""``deepfake-studio job JOB.json``: run any job config, printing JSON-lines events.

This is how the GUI (and the packaged app, which runs its own executable) starts every job.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "job",
        help="run a job config (JSON), printing JSON-lines events",
        description="Run a job config file and print one JSON event per line on stdout. "
        "Send the line 'cancel' on stdin (or SIGTERM) to stop it between batches.",
    )
    parser.add_argument("job_file", metavar="JOB.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.config import load_job_file
    from training.jobs import main

    config = load_job_file(args.job_file)
    if args.workspace and not config.get("workspace"):
        config["workspace"] = args.workspace
    return main(config)
