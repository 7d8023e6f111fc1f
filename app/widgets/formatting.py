"""Human-readable numbers for tables and status lines (blank for ``None``)."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``75 -> "1:15"``, ``3725 -> "1:02:05"``; blank when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def count(value: float | None) -> str:
    """``2_540_000 -> "2.54 M"``, ``56_000_000 -> "56 M"``, ``1.2e9 -> "1.2 G"``."""
    if value is None:
        return ""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            scaled = value / factor
            return f"{scaled:.3g} {suffix}" if scaled < 100 else f"{scaled:.0f} {suffix}"
    return f"{value:.0f}"


def size(num_bytes: float | None) -> str:
    """``1536 -> "1.5 KiB"``."""
    if num_bytes is None:
        return ""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def fraction(value: float | None, digits: int = 3) -> str:
    """A metric in [0, 1] with ``digits`` decimals; blank when unknown."""
    return "" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A share in [0, 1] as a percentage with one decimal; blank when unknown."""
    return "" if value is None else f"{value:.1%}"


def milliseconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def plural(number: int, noun: str, nouns: str | None = None) -> str:
    """``(1, "class", "classes") -> "1 class"``, ``(3, "file") -> "3 files"`` (``1,000``)."""
    return f"{number:,} {noun if number == 1 else nouns or noun + 's'}"
