"""Check images off the GUI thread: expand folders, run the bundle, hand results back in chunks.

:class:`CheckRunner` (lives in the GUI thread) starts one :class:`CheckWorker` per run on its
own :class:`QThread`. The worker expands files and folders (:func:`core.inference.iter_image_files`),
feeds them to an onnxruntime predictor in batches and emits the results in chunks at most every
``chunk_ms`` (so 10,000 images reach the GUI as ~100 signals, not 10,000). It never touches a
widget; cancel sets a :class:`threading.Event` that the predictor checks between batches.

The Qt-free helpers :func:`load_predictor`, :func:`is_bundle` and :func:`load_thumbnails` run on
worker threads too (model loading, zip extraction and decoding never block the GUI). Nothing
here imports torch: bundles run on onnxruntime only.
"""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

from core.bundle import BUNDLE_FILE, looks_like_zip
from core.errors import UserError
from core.inference import CheckResult, OnnxPredictor, describe_skipped, iter_image_files

log = logging.getLogger(__name__)

BATCH_SIZE = 32
CHUNK_MS = 80
THUMBNAIL_SIZE = 48
PREVIEW_SIDE = 2048
"""The detail panel's image is decoded at most this large (the verdict uses the full image)."""


# -- Qt-free helpers (worker threads) ------------------------------------------------------------
def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle folder or a ``.zip`` holding ``bundle.json`` (cheap check)."""
    path = Path(path)
    if path.is_dir():
        return (path / BUNDLE_FILE).is_file()
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return looks_like_zip(path)  # a damaged bundle .zip: loading it says so
    return any(name == BUNDLE_FILE or name.endswith(f"/{BUNDLE_FILE}") for name in names)


def load_predictor(path: str | Path) -> OnnxPredictor:
    """Open and verify a bundle (folder or zip) and create its onnxruntime session.

    Raises:
        UserError: the bundle is missing, damaged or cannot be run (a message for the user).
    """
    from core.bundle import load_bundle

    return OnnxPredictor(load_bundle(path))


def load_default_predictor() -> OnnxPredictor:
    """The app's default bundle (``assets/bundles/default``), or a UserError saying how to get one."""
    from core.bundle import load_default_bundle

    return OnnxPredictor(load_default_bundle())


def _thumbnail(path: str, size: int) -> QImage | None:
    from core.preprocess import ImageDecodeError, load_image

    try:  # every mode (16-bit grey, CMYK, ...) is made RGB before it is shrunk
        rgb = np.ascontiguousarray(load_image(path, max_side=size))
    except ImageDecodeError:  # an undecodable file simply has no thumbnail
        return None
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def load_thumbnails(paths: Sequence[str], size: int = THUMBNAIL_SIZE) -> dict[str, QImage | None]:
    """Small previews (``QImage``, safe to build off the GUI thread); ``None`` when undecodable."""
    return {path: _thumbnail(path, size) for path in paths}


def heatmap_problem(cam: np.ndarray | None, spec: Any) -> str | None:
    """Why ``cam`` cannot show where the evidence is (``None`` when it can)."""
    if cam is None:
        return (
            "This model has no heatmap output (only 'pool + linear' heads such as ResNet or "
            "EfficientNet export one)."
        )
    height, width = cam.shape[-2:]
    if height * width == 1:
        size = getattr(spec, "input_size", "?")
        return (
            f"No heatmap: at its {size} px input this model's activation map is 1×1, so it "
            "cannot say where in the image the evidence is."
        )
    return None


def load_preview(
    path: str,
    cam: np.ndarray | None,
    class_index: int | None,
    spec: Any,
    source_hw: tuple[int, int] | None = None,
    max_side: int = PREVIEW_SIDE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The image at display size (longest side at most ``max_side``) and, when ``cam`` has
    spatial detail, its heatmap overlay (both ``HxWx3`` uint8); the overlay is ``None`` when the
    map is missing or flat. ``source_hw`` is the size the verdict was computed on (the full
    image), so the heatmap covers the region the model saw."""
    from core.explain import class_map, heatmap_for_image, overlay
    from core.preprocess import load_image

    rgb = load_image(path, max_side=max_side)
    if class_index is None or heatmap_problem(cam, spec) is not None:
        return rgb, None
    heat = heatmap_for_image(class_map(cam, class_index), rgb.shape[:2], spec, source_hw)
    if not heat.any():
        return rgb, None
    return rgb, overlay(rgb, heat)


# -- the worker ----------------------------------------------------------------------------------
class CheckWorker(QObject):
    """Checks ``paths`` with ``predictor`` when :meth:`run` is called (on its own thread)."""

    sig_total_known = Signal(int)
    """How many files the run will check (after folders were expanded)."""
    sig_results_ready = Signal(list)
    """A chunk of :class:`core.inference.CheckResult`, in input order."""
    sig_run_finished = Signal(dict)
    """``{"checked", "errors", "cancelled", "seconds", "message", "skipped"}`` (``skipped``: why
    unreadable entries of folders were left out, "" when none); always emitted last."""

    def __init__(
        self,
        predictor: Any,
        paths: Sequence[str | Path],
        *,
        batch_size: int = BATCH_SIZE,
        chunk_ms: int = CHUNK_MS,
    ) -> None:
        super().__init__()
        self.predictor = predictor
        self.paths = [str(p) for p in paths]
        self.batch_size = batch_size
        self.chunk_s = chunk_ms / 1000.0
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop after the current batch (thread-safe)."""
        self.cancel_event.set()

    @Slot()
    def run(self) -> None:
        started = time.monotonic()
        summary: dict[str, Any] = {
            "checked": 0, "errors": 0, "cancelled": False, "message": "", "skipped": ""
        }  # fmt: skip
        try:
            files, skipped = [], []
            for file in iter_image_files(self.paths, skipped=skipped):
                if self.cancel_event.is_set():
                    break
                files.append(file)
            summary["skipped"] = describe_skipped(skipped)
            self.sig_total_known.emit(len(files))
            buffer: list[CheckResult] = []
            last = time.monotonic()
            results = self.predictor.predict_paths(
                files, batch_size=self.batch_size, cancel=self.cancel_event.is_set
            )
            for result in results:
                buffer.append(result)
                summary["checked"] += 1
                summary["errors"] += not result.ok
                now = time.monotonic()
                if now - last >= self.chunk_s:
                    self.sig_results_ready.emit(buffer)
                    buffer, last = [], now
            if buffer:
                self.sig_results_ready.emit(buffer)
        except UserError as exc:
            summary["message"] = str(exc)
        except Exception as exc:  # a bug must not kill the thread silently: report it
            log.exception("checking images failed")
            summary["message"] = f"checking failed: {type(exc).__name__}: {exc}"
        summary["cancelled"] = self.cancel_event.is_set()
        summary["seconds"] = time.monotonic() - started
        self.sig_run_finished.emit(summary)


class CheckRunner(QObject):
    """Runs one :class:`CheckWorker` at a time on a fresh :class:`QThread` (GUI-thread object)."""

    sig_run_started = Signal(int)
    """The number of files of the run that just started (after folder expansion)."""
    sig_results_ready = Signal(list)
    sig_run_finished = Signal(dict)
    """The worker's summary, once its thread has stopped."""

    def __init__(self, parent: QObject | None = None, *, chunk_ms: int = CHUNK_MS) -> None:
        super().__init__(parent)
        self.chunk_ms = chunk_ms
        self._thread: QThread | None = None
        self._worker: CheckWorker | None = None
        self._summary: dict[str, Any] = {}

    def is_running(self) -> bool:
        return self._thread is not None

    def start(self, predictor: Any, paths: Sequence[str | Path]) -> None:
        """Check ``paths`` with ``predictor``; raises ``RuntimeError`` while a run is going."""
        if self._thread is not None:
            raise RuntimeError("a check is already running")
        thread = QThread()
        thread.setObjectName("check-worker")
        worker = CheckWorker(predictor, paths, chunk_ms=self.chunk_ms)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.sig_total_known.connect(self.sig_run_started)
        worker.sig_results_ready.connect(self.sig_results_ready)
        worker.sig_run_finished.connect(self._on_worker_run_finished)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker, self._summary = thread, worker, {}
        thread.start()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel and wait for the thread (the page is closing); safe when nothing runs."""
        thread, worker = self._thread, self._worker
        if thread is None or worker is None:
            return
        worker.cancel()
        thread.quit()
        if not thread.wait(timeout_ms):
            log.warning("the check thread did not stop within %d ms", timeout_ms)
        self._release()

    @Slot(dict)
    def _on_worker_run_finished(self, summary: dict) -> None:
        self._summary = summary
        if self._thread is not None:
            self._thread.quit()

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None:
            return
        self._thread.wait()
        summary = self._summary or {"checked": 0, "errors": 0, "cancelled": True, "message": ""}
        self._release()
        self.sig_run_finished.emit(summary)

    def _release(self) -> None:
        self._thread, self._worker = None, None
