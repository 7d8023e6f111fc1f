"""THE preprocessing contract shared by training, checking, export and the Android app.

Everything that turns a file into a model input lives here, in NumPy and Pillow only (no torch),
so the onnxruntime checker, the training loop and the Java port compute the same tensor:

1. **decode** (:func:`load_image`): Pillow, EXIF orientation applied, first frame of animations,
   any mode (16-bit, CMYK, palette, alpha) converted to 8-bit RGB; alpha is composited on white.
2. **geometry** (:meth:`PreprocessSpec.geometry`), one of three ``resize_mode`` values:

   * ``resize_crop``: scale the shorter side to ``resize_size``, then centre-crop ``input_size``;
   * ``resize``: scale both sides to ``input_size`` (aspect not kept);
   * ``crop``: no scaling (forensic traces survive), centre-crop ``input_size`` at native
     resolution; an image smaller than that is first scaled up so its shorter side fits.

   Scaling is the separable antialiased triangle ("bilinear") filter defined by
   :func:`resample_matrix`: every output pixel is a normalised weighted sum of input pixels, in
   float, with no intermediate rounding. The centre crop starts at ``floor((size - crop) / 2)``.
3. **normalise**: ``(pixel / 255 - mean) / std`` per channel, channel order RGB, layout NCHW,
   float32.

Training augmentation (:func:`augment`) works on the decoded image before step 2, so the
geometry and normalisation used by a trained model are always the ones it ships with.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import stat
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from core.errors import UserError

CONTRACT_VERSION = 1
RESIZE_MODES = ("resize_crop", "resize", "crop")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PHOTO_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".avif", ".bmp", ".dib", ".gif",
    ".tif", ".tiff", ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi",
)  # fmt: skip
MAX_IMAGE_PIXELS = 200_000_000
"""Larger images are refused before decoding (from the file's header): 200 megapixels lets every
camera and phone photo through (the largest phone sensors give 200 MP) while a decompression bomb
(a small file that claims 20000x20000 pixels or more) is refused."""
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
"""iPhone photos. Decoded by the ``pillow-heif`` plugin; without it such files are listed and
reported as unsupported (never silently skipped)."""

try:  # registers HEIC/HEIF with Pillow
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    HEIF_SUPPORTED = False
else:
    register_heif_opener()
    HEIF_SUPPORTED = True

IMAGE_EXTENSIONS = HEIF_EXTENSIONS | frozenset(
    ext for ext, kind in Image.registered_extensions().items()
    if ext in PHOTO_EXTENSIONS and kind in Image.OPEN
)  # fmt: skip
"""File name endings treated as images everywhere (checker, data sets): the photo formats this
Pillow can decode, and HEIC/HEIF. Pillow's other formats (PDF, EPS, HDF5 stubs, icons, ...) are
not pictures a detector should judge and often cannot be decoded without extra programs."""

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own guard stays on for every Image.open in the app: an error above twice this. Its
# warning above this is silenced once, for the whole process (toggling warning filters around
# each open is not thread-safe: decoding runs on several threads); open_image refuses those
# images itself, and every opener of untrusted files goes through it.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


ORIENTATION_TAG = 0x0112


class ImageDecodeError(UserError):
    """A file that is not a readable image, with a one-line reason."""


@dataclass(frozen=True)
class PreprocessSpec:
    """The serialisable preprocessing contract of a model. See the module docstring."""

    input_size: int = 64
    resize_mode: str = "resize_crop"
    resize_size: int | None = None
    interpolation: str = "triangle"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"resize_mode must be one of {RESIZE_MODES}, not {self.resize_mode!r}")
        if not 8 <= self.input_size <= 4096:
            raise UserError(f"input size must be between 8 and 4096 pixels, not {self.input_size}")
        if self.resize_size is not None and self.resize_size < self.input_size:
            raise UserError(
                f"resize_size {self.resize_size} is smaller than input_size {self.input_size}"
            )
        if self.interpolation != "triangle" or self.channel_order != "RGB" or self.layout != "NCHW":
            raise UserError("only triangle interpolation, RGB and NCHW are supported")
        if self.version != CONTRACT_VERSION:
            raise UserError(f"preprocessing contract version {self.version} is not supported")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["mean"] = list(self.mean)
        body["std"] = list(self.std)
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> PreprocessSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(body) - known
        if unknown:
            raise UserError(f"unknown preprocessing fields {sorted(unknown)}")
        return cls(**body)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    # -- the pipeline --------------------------------------------------------------------------
    @property
    def shorter_side(self) -> int:
        return self.resize_size or self.input_size

    def scaled_shape(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image is scaled to before its centre crop."""
        size = self.input_size
        if self.resize_mode == "resize":
            return size, size
        if self.resize_mode == "crop" and min(height, width) >= size:
            return height, width
        shorter = size if self.resize_mode == "crop" else self.shorter_side
        scale = shorter / min(height, width)
        if height <= width:
            return shorter, max(shorter, round(width * scale))
        return max(shorter, round(height * scale)), shorter

    def geometry(self, rgb: np.ndarray) -> np.ndarray:
        """Step 2: an ``HxWx3`` uint8 (or float) image to an ``SxSx3`` float32 image, 0..255."""
        size = self.input_size
        if self.resize_mode == "resize":
            return _resize(rgb, size, size)
        new_h, new_w = self.scaled_shape(*rgb.shape[:2])
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return _resize(rgb, new_h, new_w, rows=(top, top + size), cols=(left, left + size))

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Step 3: ``SxSx3`` 0..255 to a ``3xSxS`` float32 tensor."""
        mean = np.asarray(self.mean, dtype=np.float32) * 255.0
        std = np.asarray(self.std, dtype=np.float32) * 255.0
        return ((np.asarray(image, dtype=np.float32) - mean) / std).transpose(2, 0, 1).copy()

    def __call__(self, rgb: np.ndarray | Image.Image) -> np.ndarray:
        """Steps 2 and 3 on a decoded RGB image: returns ``3xSxS`` float32."""
        if isinstance(rgb, Image.Image):
            rgb = np.asarray(rgb.convert("RGB"))
        return self.normalize(self.geometry(rgb))

    def from_file(self, path: str | Path) -> np.ndarray:
        """The whole contract: a file to a ``3xSxS`` float32 tensor."""
        return self(load_image(path))


# -- resampling -------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``out_size x in_size`` antialiased triangle-filter matrix (rows sum to 1).

    Output pixel ``i`` has centre ``c = (i + 0.5) * in/out``; the filter support is
    ``s = max(in/out, 1)``; input pixel ``j`` gets weight ``max(0, 1 - |j + 0.5 - c| / s)``; the
    weights of a row are divided by their sum. (This is Pillow's BILINEAR filter, without its
    rounding to 8 bits.)
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    pixels = np.arange(in_size, dtype=np.float64) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(pixels[None, :] - centres[:, None]) / support)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.setflags(write=False)
    return weights


def _resize(
    rgb: np.ndarray,
    out_h: int,
    out_w: int,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize to ``out_h x out_w`` and keep only ``rows``/``cols`` of the result (a crop)."""
    height, width = rgb.shape[:2]
    image = np.asarray(rgb)  # rows are taken first, then converted: no float copy of a big photo
    if (out_h, out_w) == (height, width):
        r0, r1 = rows or (0, out_h)
        c0, c1 = cols or (0, out_w)
        return image[r0:r1, c0:c1].astype(np.float32)
    # The sums of w_rows @ image @ w_cols.T over each row's non-zero band only: about
    # 2 * scale + 2 taps per output pixel instead of the whole input row (40x faster at 320 px),
    # and no dense matrix, so a 2 x 20000 strip cannot ask for gigabytes of weights.
    row_index, row_weights = resample_band(height, out_h, *(rows or (0, out_h)))
    col_index, col_weights = resample_band(width, out_w, *(cols or (0, out_w)))
    row_weights = row_weights.astype(np.float32)
    col_weights = col_weights.astype(np.float32)
    out = np.zeros((len(row_index), width, image.shape[2]), dtype=np.float32)
    for k in range(row_index.shape[1]):
        out += row_weights[:, k, None, None] * image[row_index[:, k]].astype(np.float32)
    result = np.zeros((len(row_index), len(col_index), image.shape[2]), dtype=np.float32)
    for k in range(col_index.shape[1]):
        result += col_weights[None, :, k, None] * out[:, col_index[:, k]]
    return result


@lru_cache(maxsize=256)
def resample_band(
    in_size: int, out_size: int, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start:stop`` of :func:`resample_matrix` as ``(indices, weights)``, each
    ``rows x taps``: row ``i``'s weights for input pixels ``indices[i]`` (its non-zero band)."""
    stop = out_size if stop is None else stop
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(start, stop, dtype=np.float64) + 0.5) * scale
    taps = min(in_size, math.ceil(2 * support) + 2)
    first = np.floor(centres - support - 0.5).astype(np.int64).clip(0, in_size - taps)
    index = first[:, None] + np.arange(taps)
    weights = np.maximum(0.0, 1.0 - np.abs(index + 0.5 - centres[:, None]) / support)
    weights /= weights.sum(axis=1, keepdims=True)
    index.setflags(write=False)
    weights.setflags(write=False)
    return index, weights


# -- decoding ---------------------------------------------------------------------------------
def load_image(source: str | Path | bytes, max_side: int | None = None) -> np.ndarray:
    """Decode a file (or bytes) to an ``HxWx3`` uint8 RGB array, or raise ImageDecodeError.

    With ``max_side`` the image is shrunk to fit ``max_side x max_side``, for display only
    (JPEGs then decode at a reduced scale: a 9000x7000 photo costs 1/16 of the memory). Model
    inputs always come from the full image.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    handle = io.BytesIO(source) if isinstance(source, bytes) else _open_file(name)
    with handle:
        try:
            with open_image(handle, name) as image:
                if max_side is not None:
                    image.draft("RGB", (max_side, max_side))
                image.seek(0)
                image.load()
                rgb = to_rgb(image)
        except ImageDecodeError:
            raise
        except Image.UnidentifiedImageError:
            raise ImageDecodeError(f"{name}: {_unidentified_reason(handle, name)}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            if handle.seek(0, io.SEEK_END) == 0:
                reason = "file is empty"
            raise ImageDecodeError(f"{name}: damaged image ({reason})") from None
    return rgb if max_side is None else fit_within(rgb, max_side)


def _open_file(name: str) -> BinaryIO:
    """Open a regular file for reading; a pipe, device or socket is refused without blocking."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(name, flags)
    except FileNotFoundError:
        raise ImageDecodeError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{name}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot open ({exc.strerror or exc})") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise ImageDecodeError(f"{name}: is a folder, not an image")
        raise ImageDecodeError(f"{name}: not a regular file (a pipe, device or socket)")
    return os.fdopen(descriptor, "rb")


def open_image(source: str | Path | BinaryIO, name: str | None = None) -> Image.Image:
    """``Image.open`` (lazy: reads the header only) that refuses more than
    :data:`MAX_IMAGE_PIXELS` with a clear ImageDecodeError."""
    name = name or str(source)
    limit = f"{MAX_IMAGE_PIXELS // 1_000_000} megapixel limit"
    try:
        image = Image.open(source)  # the size is checked below, not by Pillow's warning
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            f"{name}: image is too large: over {2 * MAX_IMAGE_PIXELS // 1_000_000} megapixels, "
            f"far beyond the {limit} (decompression bomb?)"
        ) from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageDecodeError(f"{name}: {width}×{height} pixels is larger than the {limit}")
    return image


def _unidentified_reason(handle: BinaryIO, name: str) -> str:
    if handle.seek(0, io.SEEK_END) == 0:
        return "file is empty"
    if Path(name).suffix.lower() in HEIF_EXTENSIONS and not HEIF_SUPPORTED:
        return "HEIC is not supported (install the pillow-heif package to check HEIC/HEIF photos)"
    return "not an image (unknown or unsupported format)"


def fit_within(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (bilinear, aspect kept) so that neither side exceeds ``max_side``."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """EXIF orientation, then any Pillow mode to 8-bit RGB (alpha composited on white).

    An upright RGB photo is copied once (into the array), not three times: a 72 MP photo
    needs 216 MB, not 860 MB.
    """
    if image.getexif().get(ORIENTATION_TAG, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L"):  # 16-bit grey: its high byte, as Pillow
        high = np.asarray(image, dtype=np.uint16) >> 8  # does for 16-bit RGB and phones do
        image = Image.fromarray(high.astype(np.uint8), "L")
    elif image.mode == "I":  # 32-bit integers of unknown range: 8 or 16 bits in practice
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / peak * 255.0 + 0.5).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


# -- training augmentation ------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentSpec:
    """Training-time augmentation. Probabilities are per image; all defaults keep it mild.

    ``jpeg_prob``/``downscale_prob`` re-encode and shrink images so the model cannot learn format
    or size shortcuts (real JPEG vs fake PNG, large vs small).
    """

    hflip: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_prob: float = 0.5
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 95)
    downscale_prob: float = 0.0
    downscale_range: tuple[float, float] = (0.5, 1.0)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, body: dict[str, Any] | None) -> AugmentSpec:
        body = dict(body or {})
        for key in ("crop_scale", "jpeg_quality", "downscale_range"):
            if key in body:
                body[key] = tuple(body[key])
        return cls(**body)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def augment(rgb: np.ndarray, spec: AugmentSpec, rng: random.Random) -> np.ndarray:
    """Random JPEG re-compression, down-scaling, crop and flip of a decoded RGB image."""
    image = Image.fromarray(rgb)
    if spec.downscale_prob and rng.random() < spec.downscale_prob:
        factor = rng.uniform(*spec.downscale_range)
        new_size = (max(8, round(image.width * factor)), max(8, round(image.height * factor)))
        image = image.resize(new_size, Image.Resampling.BILINEAR)
    if spec.jpeg_prob and rng.random() < spec.jpeg_prob:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(*spec.jpeg_quality))
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    if spec.crop_prob and rng.random() < spec.crop_prob:
        area = rng.uniform(*spec.crop_scale)
        side_w = max(8, round(image.width * area**0.5))
        side_h = max(8, round(image.height * area**0.5))
        left = rng.randint(0, image.width - side_w)
        top = rng.randint(0, image.height - side_h)
        image = image.crop((left, top, left + side_w, top + side_h))
    if spec.hflip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image, dtype=np.uint8)
