"""One Predictor interface over onnxruntime (bundles) and torch (training runs).

A :class:`Predictor` maps preprocessed ``NCHW`` float32 batches to ``(logits, cam | None)``
(:meth:`~Predictor.predict_batch`) and files to :class:`CheckResult` values
(:meth:`~Predictor.predict_paths`): decoding runs in a small thread pool one batch ahead of the
network, an unreadable file gives a result with verdict ``error`` (never an exception), and a
``cancel`` callable is checked between batches. Every result goes through the rule's step 0
(:mod:`core.content`): an image too small or too uniform to judge is ``unknown``. Predictors are safe to use from one worker
thread (the GUI's), not from several at once.

* :class:`OnnxPredictor` runs a bundle with onnxruntime only (it never imports torch);
* :class:`TorchPredictor` runs an in-memory torch model (training-time evaluation, Grad-CAM);
* :func:`open_predictor` picks the right one for a bundle folder/zip or a run folder.

:func:`iter_image_files` expands files and folders into the image files to check (fast:
``os.scandir``; the GUI reuses it from a worker thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from core.content import content_problem, overrule
from core.errors import UserError
from core.preprocess import IMAGE_EXTENSIONS, PreprocessSpec, load_image
from core.rejection import Calibration
from core.verdict import Verdict, decide

if TYPE_CHECKING:
    import torch

    from core.bundle import Bundle
    from core.models import ModelDescription

DECODE_WORKERS = 4
RESULT_FIELDS = (
    "path",
    "verdict",
    "label",
    "confidence",
    "probs",
    "threshold",
    "score",
    "margin",
    "explanation",
)
"""The keys of :meth:`CheckResult.to_dict` for a checked image (the CLI's JSON lines)."""

Cancel = Callable[[], bool]
Decoded = tuple[str, np.ndarray | str, tuple[int, int] | None, str | None]
"""``(path, 1x3xSxS tensor, (h, w), content problem)`` or ``(path, error message, None, None)``."""


@dataclass
class CheckResult:
    """The checker's result for one file: a verdict, or ``verdict == "error"`` and a message."""

    path: str
    verdict: str
    label: str | None = None
    confidence: float | None = None
    probs: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    threshold: float | None = None
    margin: float | None = None
    explanation: str = ""
    message: str | None = None
    image_size: tuple[int, int] | None = None
    """``(height, width)`` of the decoded image."""
    cam: np.ndarray | None = field(default=None, repr=False)
    """``[C, h, w]`` class activation maps (see :mod:`core.explain`), when the model has them."""

    @property
    def ok(self) -> bool:
        return self.verdict != "error"

    @classmethod
    def from_verdict(
        cls,
        path: str,
        verdict: Verdict,
        image_size: tuple[int, int] | None = None,
        cam: np.ndarray | None = None,
    ) -> CheckResult:
        return cls(path=path, image_size=image_size, cam=cam, **verdict.to_dict())

    @classmethod
    def error(cls, path: str, message: str) -> CheckResult:
        return cls(path=path, verdict="error", message=message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (no ``cam``); errors carry only path, verdict and message."""
        if not self.ok:
            return {"path": self.path, "verdict": "error", "message": self.message}
        return {name: getattr(self, name) for name in RESULT_FIELDS}


@runtime_checkable
class Predictor(Protocol):
    """What the checker, the GUI and evaluation use; see the module docstring."""

    class_names: list[str]
    real_class: str
    preprocess: PreprocessSpec
    calibration: Calibration
    description: str

    def predict_batch(self, tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def predict_paths(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int = 32,
        on_result: Callable[[CheckResult], None] | None = None,
        cancel: Cancel | None = None,
    ) -> Iterator[CheckResult]: ...


class BasePredictor(Predictor):
    """File decoding, batching and the decision rule, shared by the back-ends."""

    def decide(self, logits: np.ndarray) -> list[Verdict]:
        """The bundle's decision rule on ``N x C`` logits."""
        return decide(logits, self.calibration, self.class_names, self.real_class)

    def predict_image(self, rgb: np.ndarray, path: str = "<image>") -> CheckResult:
        """Check one decoded ``HxWx3`` uint8 RGB image."""
        return self._infer([self._prepare(path, rgb)])[0]

    def predict_path(self, path: str | os.PathLike) -> CheckResult:
        """Check one file (an unreadable file gives an ``error`` result)."""
        return self._infer([self._decode(str(path))])[0]

    def predict_paths(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int = 32,
        on_result: Callable[[CheckResult], None] | None = None,
        cancel: Cancel | None = None,
    ) -> Iterator[CheckResult]:
        """Check files in order, ``batch_size`` at a time; see the module docstring.

        Args:
            paths: image files (expand folders with :func:`iter_image_files` first).
            on_result: called with each result as it is produced (before it is yielded).
            cancel: returns True to stop; checked before each batch.
        """
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, not {batch_size}")
        batches = _chunks((str(p) for p in paths), batch_size)
        with ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="decode") as pool:
            pending = self._submit(pool, next(batches, None))
            while pending is not None:
                if cancel is not None and cancel():
                    for future in pending:
                        future.cancel()
                    return
                decoded = [future.result() for future in pending]
                pending = self._submit(pool, next(batches, None))
                for result in self._infer(decoded):
                    if on_result is not None:
                        on_result(result)
                    yield result

    def _submit(self, pool: ThreadPoolExecutor, batch: list[str] | None) -> list[Future] | None:
        if batch is None:
            return None
        return [pool.submit(self._decode, path) for path in batch]

    def _prepare(self, path: str, rgb: np.ndarray) -> Decoded:
        """A decoded image's model input, size and content problem (the rule's step 0)."""
        return path, self.preprocess(rgb)[None], rgb.shape[:2], content_problem(rgb)

    def _decode(self, path: str) -> Decoded:
        """:meth:`_prepare` of a file, or ``(path, error message, None, None)``."""
        try:
            return self._prepare(path, load_image(path))
        except UserError as exc:
            message = str(exc)
        except MemoryError:
            message = f"{path}: not enough memory to decode this image"
        except Exception as exc:  # a decoder bug on one file must not end a 10,000-file check
            message = f"{path}: cannot decode ({type(exc).__name__}: {exc})"
        return path, message, None, None

    def _infer(self, decoded: Sequence[Decoded]) -> list[CheckResult]:
        good = [i for i, item in enumerate(decoded) if item[2] is not None]
        results: list[CheckResult | None] = [
            None if size is not None else CheckResult.error(path, message)
            for path, message, size, _ in decoded
        ]
        if good:
            batch = np.concatenate([decoded[i][1] for i in good])
            logits, cams = self.predict_batch(batch)
            for k, (i, verdict) in enumerate(zip(good, self.decide(logits), strict=True)):
                path, _, size, problem = decoded[i]
                cam = None if cams is None else cams[k]
                results[i] = CheckResult.from_verdict(path, overrule(verdict, problem), size, cam)
        return [result for result in results if result is not None]


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- back-ends --------------------------------------------------------------------------------
class OnnxPredictor(BasePredictor):
    """A bundle run by onnxruntime on the CPU (all cores for one batch). Never imports torch."""

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.bundle = bundle
        self.class_names = list(bundle.class_names)
        self.real_class = bundle.real_class
        self.preprocess = bundle.preprocess
        self.calibration = bundle.calibration
        self.description = bundle.describe()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle onnxruntime threads would otherwise spin for a while after each run, taking the
        # cores from the next batch's decoding (measured: 3x slower decoding on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(bundle.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise UserError(f"{bundle.model_path.name} cannot be run: {exc}") from None
        names = [o.name for o in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = ["logits", "cam"] if "cam" in names else ["logits"]

    def predict_batch(self, tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        tensors = np.ascontiguousarray(tensors, dtype=np.float32)
        outputs = self.session.run(self.outputs, {self.input_name: tensors})
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)


class TorchPredictor(BasePredictor):
    """An in-memory torch model (eval mode, CPU), for evaluation during training.

    Maps come from the in-graph CAM when the head allows it (see :mod:`core.explain`), else from
    Grad-CAM when ``gradcam`` is set, else none. Without ``calibration`` the temperature is 1 and
    the threshold 0: nothing is ``unknown`` (a run is calibrated when it is exported).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        description: ModelDescription,
        calibration: Calibration | None = None,
        gradcam: bool = False,
    ) -> None:
        from core.explain import CamModel, supports_cam

        self.model = model.eval()
        self.class_names = list(description.class_names)
        self.real_class = description.real_class
        self.preprocess = description.preprocess
        self.calibration = calibration or Calibration()
        self.description = f"{description.arch} (torch)"
        size = description.preprocess.input_size
        self.cam_model = CamModel(model, size) if supports_cam(model, size) else None
        self.gradcam = gradcam and self.cam_model is None and _grad_cam_works(model, size)

    def predict_batch(self, tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(tensors, dtype=np.float32))
        if self.cam_model is None and self.gradcam:
            from core.explain import grad_cam

            return grad_cam(self.model, x)
        with torch.inference_mode():
            if self.cam_model is not None:
                logits, cam = self.cam_model(x)
                return logits.float().numpy(), cam.float().numpy()
            return self.model(x).float().numpy(), None


def _grad_cam_works(model: torch.nn.Module, input_size: int) -> bool:
    """Whether :func:`core.explain.grad_cam` applies (a spatial feature map, e.g. not a ViT)."""
    import torch

    from core.explain import grad_cam

    try:
        grad_cam(model, torch.zeros(1, 3, input_size, input_size))
    except (ValueError, AttributeError):
        return False
    return True


def open_predictor(path: str | os.PathLike, weights: str = "best") -> BasePredictor:
    """A predictor for a bundle folder / ``.zip`` (onnxruntime) or a run folder (torch)."""
    from core.bundle import BUNDLE_FILE, load_bundle, refuse_pickle

    source = Path(path).expanduser()
    refuse_pickle(source)
    if source.is_dir() and not (source / BUNDLE_FILE).exists() and (source / "model.json").exists():
        from core.models import load_model

        model, description = load_model(source, weights)
        return TorchPredictor(model, description)
    return OnnxPredictor(load_bundle(source))


# -- files ------------------------------------------------------------------------------------
def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def iter_image_files(
    paths: Iterable[str | os.PathLike],
    recursive: bool = True,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[Path]:
    """Expand ``paths`` into image files, in order.

    A file named explicitly is always kept (whatever its extension: if it is not an image, the
    checker says so). A folder contributes the files with an image extension beneath it
    (``recursive``), sorted by path, skipping hidden files and folders. A path that does not
    exist is kept too, so the checker reports it as an error. Entries beneath a folder that
    cannot be read (no permission, vanished) are left out and, with ``skipped``, appended to it
    as ``(path, reason)``: one unreadable sub-folder never stops a check.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from (Path(p) for p in sorted(_scan(str(path), recursive, skipped)))
        else:
            yield path


def _scan(folder: str, recursive: bool, skipped: list[tuple[str, str]] | None) -> Iterator[str]:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        _note_skipped(skipped, folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:  # is_file() follows links and may stat; either may fail on an unreadable entry
            is_image = is_image_name(entry.name) and entry.is_file()
            is_folder = not is_image and recursive and entry.is_dir(follow_symlinks=False)
        except OSError as exc:
            _note_skipped(skipped, entry.path, exc)
            continue
        if is_image:
            yield entry.path
        elif is_folder:
            yield from _scan(entry.path, recursive, skipped)


def _note_skipped(skipped: list[tuple[str, str]] | None, path: str, exc: OSError) -> None:
    if skipped is not None:
        skipped.append((path, exc.strerror or str(exc)))


def describe_skipped(skipped: Sequence[tuple[str, str]]) -> str:
    """``"2 unreadable entries were skipped (e.g. /x/y: Permission denied)"`` ("" for none)."""
    if not skipped:
        return ""
    path, reason = skipped[0]
    count = len(skipped)
    noun = "entry was" if count == 1 else "entries were"
    return f"{count} unreadable {noun} skipped (e.g. {path}: {reason})"
