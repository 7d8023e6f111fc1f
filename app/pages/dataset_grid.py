"""The Datasets page's image grid: :class:`ThumbnailModel`, one row per file of a data set,
rows read from SQLite a page at a time when painted, thumbnails made on a dedicated
``QThreadPool`` and cached on disk (:mod:`core.thumbnails`) and in memory."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QImage, QPainter

from app.style import ERROR, MUTED
from app.widgets.background import run_in_background
from core.dataset_index import FileFacts
from core.datasets import DatasetIndex
from core.thumbnails import DEFAULT_SIZE, make_thumbnail

PAGE_ROWS = 256
"""Rows read from SQLite at a time (one query) by the image grid."""
PAGE_CACHE = 64
"""Pages of rows kept in memory by the image grid (least recently used dropped first)."""
IMAGE_CACHE = 4000
"""Thumbnails kept in memory (least recently used dropped first)."""


class _ThumbnailSignals(QObject):
    sig_thumbnail_ready = Signal(int, str, QImage)
    """``(generation, sha256, image)``; the image is null when the file cannot be decoded."""


class _ThumbnailTask(QRunnable):
    """Make (or find) one thumbnail file and load it as a ``QImage`` (thread-safe, unlike
    ``QPixmap``)."""

    def __init__(
        self, signals: _ThumbnailSignals, generation: int, path: Path, sha: str, cache: Path
    ) -> None:
        super().__init__()
        self.signals, self.generation = signals, generation
        self.path, self.sha, self.cache = path, sha, cache

    def run(self) -> None:
        made = make_thumbnail(self.path, self.sha, self.cache, DEFAULT_SIZE)
        image = QImage(str(made)) if made else QImage()
        if not image.isNull() and max(image.width(), image.height()) < DEFAULT_SIZE:
            # tiny images (32 px CIFAKE) are enlarged with visible pixels, not blurred
            image = image.scaled(
                DEFAULT_SIZE,
                DEFAULT_SIZE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        self.signals.sig_thumbnail_ready.emit(self.generation, self.sha, image)


def _placeholder(text: str, colour: str) -> QImage:
    image = QImage(DEFAULT_SIZE, DEFAULT_SIZE, QImage.Format.Format_RGB32)
    image.fill(QColor("#f3f4f6"))
    painter = QPainter(image)
    painter.setPen(QColor(colour))
    painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return image


class ThumbnailModel(QAbstractListModel):
    """The files of one class (or an explicit list) of an index, one row each.

    ``rowCount`` is the full count from the start, so the scroll bar spans every file and End
    jumps to the last; rows are read from SQLite a page of :data:`PAGE_ROWS` at a time when the
    view first asks for one of them (the page after a cached one by key, any other by offset;
    :data:`PAGE_CACHE` pages kept, least recently used dropped). Rows are
    :class:`core.dataset_index.FileFacts`; ``DecorationRole`` returns the cached thumbnail or,
    the first time a row is painted, a placeholder while a pool thread makes it.
    """

    sig_thumbnail_loaded = Signal(int)
    """A thumbnail reached the model; the argument is how many have so far (per source)."""

    def __init__(self, cache_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.pool.setExpiryTimeout(2000)
        self._signals = _ThumbnailSignals(self)
        self._signals.sig_thumbnail_ready.connect(self._on_task_thumbnail_ready)
        self._index: DatasetIndex | None = None
        self._label: str | None = None
        self._wanted: list[str] | None = None
        self._total = 0
        self._pages: OrderedDict[int, list[FileFacts | None]] = OrderedDict()
        self._page_ends: list[str] = []
        """The last relative path of every page (read on a pool thread): deep pages by key."""
        self._waiting: dict[str, set[int]] = {}
        """Rows painted with the placeholder, by the SHA-256 whose thumbnail is being made."""
        self._generation = 0
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self.loaded = 0
        self.page_reads = 0
        """Pages read from SQLite so far (all sources)."""
        self._loading = _placeholder("…", MUTED)
        self._broken = _placeholder("unreadable", ERROR)

    # -- sources -------------------------------------------------------------------------------
    def show_class(self, index: DatasetIndex | None, label: str | None, total: int) -> None:
        """Show the ``total`` files of class ``label`` (``None``: every class) of ``index``."""
        self._reset(index, label, None, total if index is not None else 0)

    def show_files(self, index: DatasetIndex, relpaths: list[str]) -> None:
        """Show exactly these files (sorted), e.g. those of a hygiene finding."""
        wanted = sorted(relpaths)
        self._reset(index, None, wanted, len(wanted))

    def _reset(
        self, index: DatasetIndex | None, label: str | None, wanted: list[str] | None, total: int
    ) -> None:
        self.beginResetModel()
        self._generation += 1
        self._waiting.clear()
        self.pool.clear()
        self._index, self._label, self._wanted, self._total = index, label, wanted, total
        self._pages.clear()
        self._page_ends = []
        self.loaded = 0
        self.endResetModel()
        if index is not None and wanted is None and total > PAGE_ROWS:
            generation = self._generation
            run_in_background(
                index.page_ends,
                label,
                PAGE_ROWS,
                on_done=lambda ends: self._on_page_ends_read(generation, ends),
            )

    def _on_page_ends_read(self, generation: int, ends: list[str]) -> None:
        if generation == self._generation:
            self._page_ends = ends

    def facts(self, row: int) -> FileFacts | None:
        """The facts of ``row`` (its page read now if needed); ``None`` for a file that left
        the index since the source was shown."""
        if not 0 <= row < self._total or self._index is None:
            return None
        page, offset = divmod(row, PAGE_ROWS)
        rows = self._page(page)
        return rows[offset] if offset < len(rows) else None

    def relpath(self, row: int) -> str | None:
        """The relative path of ``row`` (no SQLite read when showing an explicit list)."""
        if self._wanted is not None:
            return self._wanted[row] if 0 <= row < self._total else None
        facts = self.facts(row)
        return facts.relpath if facts else None

    def row_of(self, relpath: str) -> int | None:
        """The row showing ``relpath``, or ``None``."""
        if self._index is None:
            return None
        if self._wanted is not None:
            row = bisect.bisect_left(self._wanted, relpath)
        else:
            row = self._index.position(relpath, self._label)
        return row if self.relpath(row) == relpath else None

    # -- pages ---------------------------------------------------------------------------------
    def _page(self, page: int) -> list[FileFacts | None]:
        rows = self._pages.get(page)
        if rows is None:
            rows = self._pages[page] = self._read_page(page)
            while len(self._pages) > PAGE_CACHE:
                self._pages.popitem(last=False)
        self._pages.move_to_end(page)
        return rows

    def _read_page(self, page: int) -> list[FileFacts | None]:
        """One page from SQLite: by key after the previous page's last path when known (page
        ends arrive from a pool thread soon after a reset), else by offset (slower deep down)."""
        assert self._index is not None
        self.page_reads += 1
        start = page * PAGE_ROWS
        if self._wanted is not None:
            chunk = self._wanted[start : start + PAGE_ROWS]
            found = {facts.relpath: facts for facts in self._index.find(chunk)}
            return [found.get(relpath) for relpath in chunk]
        after = self._page_end(page - 1)
        if after is not None:
            return list(self._index.records(self._label, limit=PAGE_ROWS, after=after))
        return list(self._index.records(self._label, offset=start, limit=PAGE_ROWS))

    def _page_end(self, page: int) -> str | None:
        """The last relative path of ``page`` if known (cached page or page ends), else ``None``."""
        if 0 <= page < len(self._page_ends):
            return self._page_ends[page]
        rows = self._pages.get(page)
        if rows and len(rows) == PAGE_ROWS and rows[-1] is not None:
            return rows[-1].relpath
        return None

    # -- cells ---------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._total

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or role not in _ROLES:
            return None
        facts = self.facts(index.row())
        if facts is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(facts.relpath).name
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(facts)
        if role == Qt.ItemDataRole.UserRole:
            return facts.relpath
        return self._thumbnail(facts, index.row())

    def _thumbnail(self, facts: FileFacts, row: int) -> QImage:
        if facts.error is not None:
            return self._broken
        image = self._images.get(facts.sha256)
        if image is not None:
            self._images.move_to_end(facts.sha256)
            return image
        waiting = self._waiting.setdefault(facts.sha256, set())
        if not waiting and self._index is not None:
            task = _ThumbnailTask(
                self._signals,
                self._generation,
                self._index.path(facts.relpath),
                facts.sha256,
                self.cache_dir,
            )
            self.pool.start(task)
        waiting.add(row)
        return self._loading

    @Slot(int, str, QImage)
    def _on_task_thumbnail_ready(self, generation: int, sha: str, image: QImage) -> None:
        self._images[sha] = image if not image.isNull() else self._broken
        while len(self._images) > IMAGE_CACHE:
            self._images.popitem(last=False)
        if generation != self._generation:
            return
        self.loaded += 1
        for row in self._waiting.pop(sha, ()):
            cell = self.index(row)
            self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DecorationRole])
        self.sig_thumbnail_loaded.emit(self.loaded)

    def shutdown(self) -> None:
        """Drop queued thumbnail work and wait for the running tasks."""
        self._generation += 1
        self.pool.clear()
        self.pool.waitForDone()


_ROLES = {
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.UserRole,
    Qt.ItemDataRole.DecorationRole,
}


def _tooltip(facts: FileFacts) -> str:
    lines = [facts.relpath, f"class {facts.label}, {facts.bytes:,} bytes"]
    if facts.error:
        lines.append(f"unreadable: {facts.error}")
    else:
        detail = f"{facts.format} {facts.width}x{facts.height}"
        if facts.jpeg_quality:
            detail += f", JPEG quality ~{facts.jpeg_quality}"
        lines.append(detail)
    if facts.split:
        lines.append(f"split: {facts.split}")
    return "\n".join(lines)


# -- the page ----------------------------------------------------------------------------------
