"""Static INT8 quantisation of an exported ONNX model with onnxruntime's own tools.

Nothing here hand-writes quantisation: :func:`quantize_int8` runs onnxruntime's
``quant_pre_process`` (symbolic shape inference and graph optimisation), then
``quantize_static`` in QDQ format with unsigned 8-bit activations and signed 8-bit weights
(U8S8), per-channel weight scales where the operator supports them, and MinMax calibration over
real images. U8S8 rather than onnxruntime's S8S8 default because it is the fast path of its x86
CPU kernels: on a resnet18 (32 px, AVX512-VNNI CPU, batch 1) S8S8 QDQ ran 3x *slower* than FP32
while U8S8 ran 1.2x faster, at the same accuracy. :class:`ImageReader` feeds those images,
decoded and preprocessed by the model's own contract
(:meth:`core.preprocess.PreprocessSpec.from_file`), a batch at a time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from core.datasets import Sample
from core.errors import UserError
from core.preprocess import PreprocessSpec

DEFAULT_CALIB_IMAGES = 200
CALIB_BATCH = 16

Progress = Callable[[int, int], None]
"""``progress(done, total)``: images fed to the calibrator so far."""


def pick_calibration_samples(samples: Sequence[Sample], count: int, seed: int) -> list[Sample]:
    """``count`` samples drawn without replacement (seeded), or all of them when fewer."""
    if not samples:
        raise UserError(
            "INT8 calibration needs training images, but the run's train split is empty"
        )
    chosen = list(samples)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


class ImageReader(CalibrationDataReader):
    """Batches of preprocessed images for onnxruntime's calibrator (``{"image": N x 3 x S x S}``).

    ``cancel`` is polled before each batch; when it returns True the reader raises ``exception``
    (the job's Cancelled), which stops ``quantize_static`` between batches.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        spec: PreprocessSpec,
        *,
        input_name: str = "image",
        batch_size: int = CALIB_BATCH,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
        exception: type[BaseException] = KeyboardInterrupt,
    ) -> None:
        self.paths = [s.path for s in samples]
        self.spec = spec
        self.input_name = input_name
        self.batch_size = batch_size
        self.progress = progress
        self.cancel = cancel
        self.exception = exception
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.paths):
            return None
        if self.cancel is not None and self.cancel():
            raise self.exception
        chunk = self.paths[self.position : self.position + self.batch_size]
        batch = np.stack([self.spec.from_file(path) for path in chunk]).astype(np.float32)
        self.position += len(chunk)
        if self.progress is not None:
            self.progress(self.position, len(self.paths))
        return {self.input_name: batch}

    def rewind(self) -> None:
        self.position = 0


def quantize_int8(
    fp32_path: Path, out_path: Path, reader: ImageReader, work_dir: Path
) -> dict[str, Any]:
    """Quantise ``fp32_path`` to ``out_path`` (QDQ, S8S8, per-channel); return its settings.

    Args:
        fp32_path: the exported FP32 model.
        out_path: where the INT8 model is written.
        reader: the calibration images (see :class:`ImageReader`).
        work_dir: where the pre-processed intermediate model goes.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work_dir / f"{fp32_path.stem}.prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared))
    quantize_static(
        str(prepared),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "pre_process": "onnxruntime quant_pre_process (shape inference + optimisation)",
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8",
        "per_channel": True,
        "calibrate_method": "MinMax",
        "calibration_images": len(reader.paths),
        "calibration_split": "train",
    }
