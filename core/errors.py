"""The one exception type user-facing code turns into a clear message (no traceback), and the
words for the operating system's errors (a full disk, a folder one cannot write in)."""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
    """Bad input the user can fix: a missing folder, a wrong model file, an invalid option.

    The CLI prints ``error: <message>`` and exits with status 2; the GUI shows the message.
    """


def describe_os_error(exc: OSError) -> str:
    """An operating-system error in words: its reason and file, and what to do about a full
    disk (``the disk is full (No space left on device: /runs/x); free some space ...``)."""
    text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if exc.errno == errno.ENOSPC:
        return f"the disk is full ({text}); free some space and run it again (or resume the job)"
    return text


def os_error_of(exc: Exception, path: str) -> OSError | None:
    """The :class:`OSError` behind a library's own write error (safetensors reports a full
    disk as ``SafetensorError: ... No space left on device (os error 28)``), or ``None`` when it
    names none."""
    found = re.search(r"(?:os error|Os \{ code:) (\d+)", str(exc))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), path)
