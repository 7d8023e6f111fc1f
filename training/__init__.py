"""Deepfake Studio training jobs. No Qt; imports ``core``; never imported by the GUI at start-up.

Every job is a module with ``run(config: dict, emit) -> dict`` (see :mod:`training.jobs`), usable
from the CLI, the GUI's job runner (a child process reading JSON-lines events) and tests.
"""
