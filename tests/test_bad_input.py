"""Hostile and unusual input, at the Predictor and the CLI level: never a traceback.

Images: empty, truncated, not an image, a 20000x20000 decompression bomb, 16-bit, CMYK, palette,
RGBA, EXIF-rotated, animated, a unicode path, a 2 x 20000 strip. Models: a tampered bundle, an unknown format
version, a pickled ``.pt`` file.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.__main__ import main
from core.bundle import load_bundle
from core.inference import OnnxPredictor
from core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessSpec,
    load_image,
    resample_band,
    resample_matrix,
)

RED, BLUE = (220, 20, 20), (20, 20, 220)
READABLE = {
    "gray16.png",
    "cmyk.jpg",
    "palette.png",
    "rgba.png",
    "rotated.jpg",
    "animated.gif",
    "фото ☃ 写真.jpg",
    "strip.png",
}
ERRORS = {
    "zero.jpg": "file is empty",
    "truncated.jpg": "damaged image",
    "text.jpg": "not an image",
    "bomb.png": "20000×20000 pixels is larger than the 200 megapixel limit",
}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit ``side`` x ``side`` PNG of a few tens of KB (400 megapixels decoded)."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data)
        + png_chunk(b"IEND", b"")
    )


def two_colour(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = RED
    array[:, width // 2 :] = BLUE
    return Image.fromarray(array)


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    (root / "zero.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "text.jpg").write_text("this is a shopping list, not a photo\n")
    (root / "bomb.png").write_bytes(bomb_png())
    gray = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(gray).save(root / "gray16.png")  # mode I;16: 16 bits per pixel
    Image.new("CMYK", (50, 40), (0, 255, 255, 0)).save(root / "cmyk.jpg", quality=95)
    two_colour(60, 30).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 40))
    rgba.save(root / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    two_colour(40, 20).save(root / "rotated.jpg", quality=95, exif=exif)
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(noise).save(root / "фото ☃ 写真.jpg", quality=90)
    Image.new("RGB", (20000, 2), (90, 120, 150)).save(root / "strip.png")
    return root


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> OnnxPredictor:
    return OnnxPredictor(load_bundle(tiny_bundle))


def test_predictor_reports_every_bad_file_and_checks_the_rest(
    predictor: OnnxPredictor, bad_dir: Path
) -> None:
    paths = sorted(bad_dir.iterdir())
    start = time.perf_counter()
    results = {Path(r.path).name: r for r in predictor.predict_paths(paths, batch_size=4)}
    assert time.perf_counter() - start < 10  # the bomb is refused before decoding
    assert set(results) == READABLE | set(ERRORS)
    for name, expected in ERRORS.items():
        assert results[name].verdict == "error"
        assert expected in results[name].message, results[name].message
        assert name in results[name].message
    for name in READABLE:
        assert results[name].verdict in {"real", "fake", "unknown"}, results[name].message
        assert 0.0 < results[name].confidence <= 1.0
    assert results["rotated.jpg"].image_size == (40, 20)


def test_a_thin_strip_costs_no_more_than_a_photo(bad_dir: Path) -> None:
    """Scaling 2 x 20000 to a 64 px shorter side is 64 x 640000 before the crop: the
    resampler must touch only the band of weights it needs (a dense matrix would be 100 GB)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    tensor = PreprocessSpec(input_size=64).from_file(bad_dir / "strip.png")
    assert time.perf_counter() - start < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KiB
    expected = (np.array([90, 120, 150]) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(tensor.mean(axis=(1, 2)), expected, atol=1e-4)


@pytest.mark.parametrize("in_size", [1, 2, 7, 64, 333, 1000])
@pytest.mark.parametrize("out_size", [1, 3, 64, 65, 700])
def test_resample_band_equals_the_dense_matrix(in_size: int, out_size: int) -> None:
    index, weights = resample_band(in_size, out_size)
    dense = np.zeros((out_size, in_size))
    np.put_along_axis(dense, index, weights, axis=1)
    np.testing.assert_allclose(dense, resample_matrix(in_size, out_size), atol=1e-15)
    rows = resample_band(in_size, out_size, 1, 3) if out_size > 3 else (index, weights)
    np.testing.assert_array_equal(rows[1], weights[1:3] if out_size > 3 else weights)


def test_decoding_of_unusual_modes(bad_dir: Path) -> None:
    gray = load_image(bad_dir / "gray16.png")
    assert gray.shape == (48, 64, 3) and gray.dtype == np.uint8
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[-1, -1].tolist() == [255, 255, 255]
    cmyk = load_image(bad_dir / "cmyk.jpg")
    assert cmyk.shape == (40, 50, 3) and cmyk[20, 25, 0] > 200 and cmyk[20, 25, 1:].max() < 60
    palette = load_image(bad_dir / "palette.png")
    assert palette[15, 5].tolist() == list(RED) and palette[15, 55].tolist() == list(BLUE)
    rgba = load_image(bad_dir / "rgba.png")
    assert rgba[20, 5].tolist() == [0, 0, 255]
    assert rgba[20, 35].tolist() == [255, 255, 255]  # transparent: composited on white


def test_exif_orientation_is_applied(bad_dir: Path) -> None:
    with Image.open(bad_dir / "rotated.jpg") as raw:
        assert raw.size == (40, 20)  # stored landscape
    image = load_image(bad_dir / "rotated.jpg")
    assert image.shape == (40, 20, 3)  # displayed portrait
    # Rotating 90 degrees clockwise puts the stored left (red) half on top.
    assert image[5, 10, 0] > 180 and image[5, 10, 2] < 80
    assert image[35, 10, 2] > 180 and image[35, 10, 0] < 80


def test_animated_gif_uses_the_first_frame(bad_dir: Path, predictor: OnnxPredictor) -> None:
    image = load_image(bad_dir / "animated.gif")
    assert image.shape == (32, 32, 3)
    assert np.abs(image.astype(int) - RED).max() <= 8
    from_file = predictor.predict_path(bad_dir / "animated.gif")
    from_frame = predictor.predict_image(np.full((32, 32, 3), RED, dtype=np.uint8))
    assert from_file.confidence == pytest.approx(from_frame.confidence, abs=0.02)


def test_cli_reports_bad_files_as_json_errors(capsys, tiny_bundle: Path, bad_dir: Path) -> None:
    status = main(["check", str(bad_dir), "--model", str(tiny_bundle), "--json"])
    captured = capsys.readouterr()
    assert status == 0
    lines = {Path(x["path"]).name: x for x in map(json.loads, captured.out.splitlines())}
    assert set(lines) == READABLE | set(ERRORS)
    for name, expected in ERRORS.items():
        assert lines[name]["verdict"] == "error" and expected in lines[name]["message"]
    assert "Traceback" not in captured.err
    assert "12 images: " in captured.err and "4 error" in captured.err


@pytest.fixture
def tampered_bundles(tiny_bundle: Path, tmp_path: Path) -> dict[str, Path]:
    sha = Path(shutil.copytree(tiny_bundle, tmp_path / "sha"))
    with open(sha / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    version = Path(shutil.copytree(tiny_bundle, tmp_path / "version"))
    meta = json.loads((version / "bundle.json").read_text())
    meta["format_version"] = 7
    (version / "bundle.json").write_text(json.dumps(meta))
    pt = tmp_path / "model.pt"
    pt.write_bytes(pickle.dumps({"state_dict": [1, 2, 3]}))
    return {"sha": sha, "version": version, "pt": pt}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("sha", "error: model.onnx sha256 mismatch: file modified or damaged"),
        ("version", "error: bundle.json says format_version 7; this app reads version 1"),
        ("pt", "error: model.pt looks like a pickled PyTorch model; it is refused"),
    ],
)
def test_cli_refuses_bad_models(capsys, tampered_bundles, bad_dir, kind, message) -> None:
    status = main(["check", str(bad_dir / "cmyk.jpg"), "--model", str(tampered_bundles[kind])])
    captured = capsys.readouterr()
    assert status == 2
    assert message in captured.err
    assert captured.out == ""


def test_html_report_escapes_names_and_lists_errors(
    capsys, tiny_bundle: Path, bad_dir: Path, tmp_path: Path
) -> None:
    hostile = tmp_path / "<img src=x onerror=alert(1)>.png"
    Image.new("RGB", (30, 30), RED).save(hostile)
    report = tmp_path / "report.html"
    status = main(
        ["check", str(bad_dir), str(hostile), "--model", str(tiny_bundle), "--report", str(report)]
    )
    capsys.readouterr()
    assert status == 0
    page = report.read_text(encoding="utf-8")
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "фото ☃ 写真.jpg" in page
    assert page.count("data:image/jpeg;base64,") == 2 * (len(READABLE) + 1)  # + heatmaps
    assert "file is empty" in page and "4 error" in page
