"""Small, dependency-free SVG charts and HTML pieces for the quality report."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

WIDTH, HEIGHT, PAD = 320, 240, 36


def _xy(x: float, y: float) -> tuple[float, float]:
    """Map unit-square coordinates to the plot area (y grows upwards)."""
    return PAD + x * (WIDTH - 2 * PAD), HEIGHT - PAD - y * (HEIGHT - 2 * PAD)


def line_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    y_max: float = 1.0,
    marks: Sequence[tuple[str, float, float]] = (),
    legend_below: bool = False,
) -> str:
    """An SVG line chart of ``(name, xs, ys)`` series, x from 0 to 1 and y from 0 to ``y_max``,
    with ticks at 0, half and the top of each axis; ``marks`` are labelled points. The series
    names stand top left, or bottom right with ``legend_below``."""
    colours = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")

    def at(x: float, y: float) -> tuple[float, float]:
        return _xy(x, min(y / y_max, 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" text-anchor="middle" font-size="11">'
        f"{html.escape(x_label)}</text>",
        f'<text x="10" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 10 {HEIGHT / 2})" '
        f'text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        x, bottom = _xy(fraction, 0)
        left, y = _xy(0, fraction)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 12:.1f}" font-size="9" text-anchor="middle">'
            f"{fraction:g}</text>"
            f'<text x="{left - 3:.1f}" y="{y + 3:.1f}" font-size="9" text-anchor="end">'
            f"{fraction * y_max:g}</text>"
        )
    if diagonal:
        (x0, y0), (x1, y1) = _xy(0, 0), _xy(1, 1)
        parts.append(
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4"/>'
        )
    for i, (name, xs, ys) in enumerate(series):
        points = " ".join(
            "{:.1f},{:.1f}".format(*at(float(x), float(y)))
            for x, y in zip(xs, ys, strict=True)
            if y is not None
        )
        colour = colours[i % len(colours)]
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        x, y, anchor = (
            (WIDTH - PAD - 6, HEIGHT - PAD - 8 - 13 * i, "end")
            if legend_below
            else (PAD + 6, PAD + 14 + 13 * i, "start")
        )
        parts.append(
            f'<text x="{x}" y="{y}" font-size="11" fill="{colour}" text-anchor="{anchor}">'
            f"{html.escape(name)}</text>"
        )
    for label, x, y in marks:
        cx, cy = at(x, y)
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#111"/>'
            f'<text x="{cx - 6:.1f}" y="{cy - 7:.1f}" font-size="10" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; floats shown with 4 decimals, ``None`` as a dash."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def thumbnail_uri(rgb: np.ndarray, size: int = 72) -> str:
    """A small JPEG data URI of an RGB array (for misclassified examples)."""
    from PIL import Image

    image = Image.fromarray(rgb)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1f2937;max-width:1100px}
h1{font-size:1.6em} h2{margin-top:2em;border-bottom:1px solid #ddd} h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f4f6} .charts svg{margin-right:1em} .thumbs img{margin:2px;border:2px solid #dc2626}
.note{color:#6b7280;font-size:.9em}
"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
