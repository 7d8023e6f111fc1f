"""Header tooltips for tree views: what each column's figure is, in plain words."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtWidgets import QTreeWidget


def set_header_tips(tree: QTreeWidget, tips: Iterable[str | None]) -> None:
    """Give the headers of ``tree`` these tooltips, in column order (``None``: none)."""
    header = tree.headerItem()
    for column, tip in enumerate(tips):
        if tip:
            header.setToolTip(column, tip)
