"""core.preprocess: resampling weights, geometry of each resize mode, Pillow parity, normalisation,
decoding of awkward files, the serialised contract and seeded augmentation."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import UserError
from core.inference import iter_image_files
from core.preprocess import (
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentSpec,
    ImageDecodeError,
    PreprocessSpec,
    augment,
    load_image,
    resample_matrix,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def scaled(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Reference separable resize in float64 straight from the weight matrices."""
    rows = resample_matrix(image.shape[0], out_h)
    cols = resample_matrix(image.shape[1], out_w)
    return np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)


# -- resampling weights -------------------------------------------------------------------------
def test_resample_matrix_downscale_4_to_2():
    # centres 1.0 and 3.0, support 2: pixel centres 0.5 1.5 2.5 3.5 get 1 - |d|/2
    # = .75 .75 .25 0 -> / 1.75
    expected = np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7
    np.testing.assert_allclose(resample_matrix(4, 2), expected, atol=1e-15)


def test_resample_matrix_upscale_2_to_4():
    # centres .25 .75 1.25 1.75, support 1: weights 1 - |d| of pixel centres .5 and 1.5
    expected = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(resample_matrix(2, 4), expected, atol=1e-15)


@pytest.mark.parametrize(("n_in", "n_out"), [(4, 2), (2, 4), (37, 24), (10, 23), (7, 7)])
def test_resample_matrix_rows_sum_to_one_and_are_read_only(n_in, n_out):
    weights = resample_matrix(n_in, n_out)
    assert weights.shape == (n_out, n_in)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert (weights >= 0).all()
    with pytest.raises(ValueError):
        weights[0, 0] = 1.0  # the cached matrix is shared: it must not be writable


def test_same_size_resample_is_identity():
    np.testing.assert_allclose(resample_matrix(5, 5), np.eye(5), atol=1e-15)


# -- geometry of each resize mode ---------------------------------------------------------------
def test_resize_crop_wide_image():
    image = noise(10, 20)
    out = PreprocessSpec(input_size=8).geometry(image)
    # shorter side 10 -> 8, width 20 -> 16, centre crop starts at (16 - 8) // 2 = 4
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, scaled(image, 8, 16)[:, 4:12], atol=1e-3)


def test_resize_crop_tall_image_with_resize_size():
    image = noise(30, 20, seed=1)
    out = PreprocessSpec(input_size=8, resize_size=10).geometry(image)
    # width 20 -> 10, height 30 -> 15; top = (15 - 8) // 2 = 3 (floor), left = (10 - 8) // 2 = 1
    np.testing.assert_allclose(out, scaled(image, 15, 10)[3:11, 1:9], atol=1e-3)


def test_resize_crop_rounds_half_to_even_like_the_java_port():
    image = noise(20, 30, seed=2)
    out = PreprocessSpec(input_size=8, resize_size=11).geometry(image)
    # scale 11/20: width 16.5 -> round() = 16 (ties to even), left = (16 - 8) // 2 = 4
    np.testing.assert_allclose(out, scaled(image, 11, 16)[1:9, 4:12], atol=1e-3)


def test_resize_mode_ignores_aspect():
    image = noise(10, 20, seed=3)
    out = PreprocessSpec(input_size=8, resize_mode="resize").geometry(image)
    np.testing.assert_allclose(out, scaled(image, 8, 8), atol=1e-3)


def test_crop_mode_keeps_native_pixels_with_floor_offsets():
    image = noise(13, 17, seed=4)
    out = PreprocessSpec(input_size=8, resize_mode="crop").geometry(image)
    # odd margins: top (13 - 8) // 2 = 2, left (17 - 8) // 2 = 4; no resampling at all
    np.testing.assert_array_equal(out, image[2:10, 4:12].astype(np.float32))


def test_crop_mode_scales_up_a_smaller_image():
    image = noise(6, 10, seed=5)
    out = PreprocessSpec(input_size=8, resize_mode="crop").geometry(image)
    # shorter side 6 -> 8, width 10 * 8/6 = 13.33 -> 13, left = (13 - 8) // 2 = 2
    np.testing.assert_allclose(out, scaled(image, 8, 13)[:, 2:10], atol=1e-3)


@pytest.mark.parametrize(("shape", "size"), [((37, 53), 24), ((10, 12), 23), ((64, 48), 32)])
def test_resize_matches_pillow_bilinear_within_one_grey_level(shape, size):
    image = noise(*shape, seed=size)
    ours = PreprocessSpec(input_size=size, resize_mode="resize").geometry(image)
    pillow = np.asarray(
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    assert np.abs(ours - pillow).max() <= 1.0


def test_normalize_math_and_layout():
    spec = PreprocessSpec(input_size=8)
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 128
    tensor = spec.normalize(image)
    assert tensor.shape == (3, 8, 8) and tensor.dtype == np.float32
    means, stds = IMAGENET_MEAN, IMAGENET_STD
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), means, stds, strict=True)]
    np.testing.assert_allclose(tensor[:, 3, 5], expected, rtol=1e-6)
    assert tensor[0].std() == 0  # each channel plane holds its own constant


def test_call_accepts_pil_and_array_and_from_file(tmp_path: Path):
    image = noise(20, 30, seed=6)
    spec = PreprocessSpec(input_size=16)
    path = tmp_path / "x.png"
    Image.fromarray(image).save(path)
    from_array = spec(image)
    np.testing.assert_array_equal(from_array, spec(Image.fromarray(image)))
    np.testing.assert_array_equal(from_array, spec.from_file(path))
    assert from_array.shape == (3, 16, 16)


# -- decoding -----------------------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path: Path):
    stored = np.zeros((2, 4, 3), dtype=np.uint8)
    stored[0, 0] = RED
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(stored).save(path, exif=exif)
    rgb = load_image(path)
    assert rgb.shape == (4, 2, 3)  # width and height swapped
    assert tuple(rgb[0, -1]) == RED  # the stored top-left corner is now top-right


def test_sixteen_bit_png_scaled_to_eight_bits(tmp_path: Path):
    values = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    rgb = load_image(path)
    # the high byte (v >> 8), as Pillow does for 16-bit RGB and phone decoders for grey
    assert rgb[..., 0].tolist() == [[0, 128], [255, 1]]
    assert (rgb[..., 0] == rgb[..., 2]).all()
    dark = tmp_path / "dark.png"  # a dark 16-bit picture stays dark (not read as 8-bit values)
    Image.fromarray(np.array([[0, 255], [200, 511]], dtype=np.uint16)).save(dark)
    assert load_image(dark)[..., 0].tolist() == [[0, 0], [0, 1]]


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    rgb = load_image(path)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - RED).max() <= 3


def test_palette_with_transparency_composited_on_white(tmp_path: Path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([*BLUE, *GREEN] + [0] * 762)
    image.paste(1, (0, 0, 2, 4))
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == GREEN
    assert tuple(rgb[0, 3]) == WHITE  # the transparent blue index


def test_rgba_composited_on_white(tmp_path: Path):
    pixels = np.array(
        [[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]],
        dtype=np.uint8,
    )
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, "RGBA").save(path)
    rgb = load_image(path).astype(int)
    assert tuple(rgb[0, 0]) == RED
    assert tuple(rgb[0, 1]) == WHITE
    # half-transparent black over white: 255 * (1 - 128/255) = 127
    assert np.abs(rgb[0, 2] - 127).max() <= 1


def test_animated_gif_first_frame(tmp_path: Path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 3
    assert (load_image(path) == RED).all()


def test_bytes_input():
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), GREEN).save(buffer, "PNG")
    rgb = load_image(buffer.getvalue())
    assert rgb.shape == (3, 5, 3) and (rgb == GREEN).all()


def _decode_error(source) -> str:
    with pytest.raises(ImageDecodeError) as info:
        load_image(source)
    assert isinstance(info.value, UserError)
    return str(info.value)


def test_zero_byte_file(tmp_path: Path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert _decode_error(path) == f"{path}: file is empty"


def test_truncated_jpeg(tmp_path: Path):
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buffer, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    message = _decode_error(path)
    assert message.startswith(f"{path}: damaged image (") and "truncated" in message


def test_text_file_renamed_jpg(tmp_path: Path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    assert _decode_error(path) == f"{path}: not an image (unknown or unsupported format)"


def test_missing_file_and_folder(tmp_path: Path):
    assert _decode_error(tmp_path / "nope.png").endswith("nope.png: file not found")
    assert _decode_error(tmp_path).endswith(": is a folder, not an image")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` (1-bit grey) with a token IDAT: a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("side", "reason"),
    [
        (15000, "15000×15000 pixels is larger than the 200 megapixel limit"),
        (
            30000,
            "image is too large: over 400 megapixels, far beyond the 200 megapixel limit "
            "(decompression bomb?)",
        ),
    ],
)
def test_decompression_bomb_refused_before_decoding(tmp_path: Path, side: int, reason: str):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    assert path.stat().st_size < 100
    assert _decode_error(path) == f"{path}: {reason}"


def test_a_72_megapixel_photo_is_checked_and_previewed_small(tmp_path: Path):
    path = tmp_path / "phone.jpg"
    gradient = np.linspace(0, 255, 12000, dtype=np.uint8)
    pixels = np.broadcast_to(gradient[None, :, None], (6000, 12000, 3))
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, quality=80)
    assert load_image(path).shape == (6000, 12000, 3)  # Pillow's 64 MP warning refused this
    small = load_image(path, max_side=2048)
    assert small.shape == (1024, 2048, 3)
    assert abs(int(small[0, 1024, 0]) - 128) <= 3


def test_pipes_and_devices_are_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    assert _decode_error(fifo) == f"{fifo}: not a regular file (a pipe, device or socket)"
    assert "not a regular file" in _decode_error(Path("/dev/zero"))


def test_heic_photos_decode(tmp_path: Path):
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "iphone.HEIC"
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, :30] = RED
    pillow_heif.from_bytes(mode="RGB", size=(60, 40), data=rgb.tobytes()).save(path, quality=95)
    assert ".heic" in IMAGE_EXTENSIONS
    assert [p.name for p in iter_image_files([tmp_path])] == ["iphone.HEIC"]
    decoded = load_image(path)
    assert decoded.shape == (40, 60, 3)
    assert np.abs(decoded[:, :25].astype(int) - RED).max() < 40


def test_without_pillow_heif_heic_files_are_errors_not_silence(tmp_path: Path, monkeypatch):
    import core.preprocess

    monkeypatch.setattr(core.preprocess, "HEIF_SUPPORTED", False)
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    assert [p.name for p in iter_image_files([tmp_path])] == ["photo.heic"]
    if not _heif_opener_registered():
        assert "HEIC is not supported" in _decode_error(path)


def _heif_opener_registered() -> bool:
    return "HEIF" in Image.OPEN


# -- the serialised contract --------------------------------------------------------------------
def test_spec_dict_and_json_round_trip():
    spec = PreprocessSpec(
        input_size=96, resize_mode="crop", resize_size=128, mean=(0.5, 0.5, 0.5), std=(1, 1, 1)
    )
    body = spec.to_dict()
    assert body["mean"] == [0.5, 0.5, 0.5] and body["std"] == [1.0, 1.0, 1.0]
    assert PreprocessSpec.from_dict(body) == spec
    assert PreprocessSpec.from_dict(json.loads(spec.to_json())) == spec
    assert set(body) == {
        "input_size",
        "resize_mode",
        "resize_size",
        "interpolation",
        "mean",
        "std",
        "channel_order",
        "layout",
        "version",
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"resize_mode": "squash"}, "resize_mode must be one of"),
        ({"input_size": 4}, "between 8 and 4096"),
        ({"input_size": 64, "resize_size": 32}, "smaller than input_size"),
        ({"interpolation": "bicubic"}, "only triangle interpolation"),
        ({"channel_order": "BGR"}, "RGB"),
        ({"version": 2}, "version 2 is not supported"),
    ],
)
def test_spec_validation_errors(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        PreprocessSpec(**kwargs)


def test_spec_unknown_field_refused():
    body = {**PreprocessSpec().to_dict(), "gamma": 2.2}
    with pytest.raises(UserError, match=r"unknown preprocessing fields \['gamma'\]"):
        PreprocessSpec.from_dict(body)


# -- augmentation -------------------------------------------------------------------------------
AGGRESSIVE = AugmentSpec(crop_prob=1.0, jpeg_prob=1.0, downscale_prob=1.0)


def test_augment_is_deterministic_for_a_seed():
    image = noise(48, 64, seed=7)
    first = augment(image, AGGRESSIVE, random.Random(3))
    again = augment(image, AGGRESSIVE, random.Random(3))
    np.testing.assert_array_equal(first, again)
    others = [augment(image, AGGRESSIVE, random.Random(seed)) for seed in range(4, 8)]
    assert any(o.shape != first.shape or not np.array_equal(o, first) for o in others)


def test_augment_sizes_stay_in_range():
    image = noise(48, 64, seed=8)
    for seed in range(10):
        out = augment(image, AGGRESSIVE, random.Random(seed))
        assert out.dtype == np.uint8 and out.shape[2] == 3
        # downscale >= 0.5, then a crop keeping >= 60% of the area
        assert 48 * 0.5 * 0.6**0.5 - 1 <= out.shape[0] <= 48
        assert 64 * 0.5 * 0.6**0.5 - 1 <= out.shape[1] <= 64


def test_augment_spec_round_trip_and_identity():
    spec = AugmentSpec.from_dict({"jpeg_quality": [70, 80], "crop_scale": [0.5, 1.0]})
    assert spec.jpeg_quality == (70, 80) and spec.crop_scale == (0.5, 1.0)
    assert AugmentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    image = noise(16, 16, seed=9)
    off = AugmentSpec(hflip=False, crop_prob=0.0)
    np.testing.assert_array_equal(augment(image, off, random.Random(0)), image)
