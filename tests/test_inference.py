"""core.inference: ONNX and torch predictors, batching, cancel, file expansion."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.bundle import load_bundle
from core.inference import (
    CheckResult,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    describe_skipped,
    iter_image_files,
    open_predictor,
)
from core.models import save_weights
from core.preprocess import load_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_predictor(tiny_bundle: Path) -> OnnxPredictor:
    return OnnxPredictor(load_bundle(tiny_bundle))


@pytest.fixture(scope="module")
def image_files(tiny_image_dir: Path) -> list[Path]:
    return list(iter_image_files([tiny_image_dir]))


def test_onnx_predictor_never_imports_torch(tiny_bundle: Path, tiny_image_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "from core.bundle import load_bundle\n"
        "from core.inference import OnnxPredictor, iter_image_files\n"
        f"p = OnnxPredictor(load_bundle({str(tiny_bundle)!r}))\n"
        f"results = list(p.predict_paths(iter_image_files([{str(tiny_image_dir)!r}])))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'n': len(results),\n"
        "                  'verdicts': sorted({r.verdict for r in results})}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    assert report["n"] == 12
    assert set(report["verdicts"]) <= {"real", "fake", "unknown"}


def test_onnx_uses_every_core(onnx_predictor: OnnxPredictor) -> None:
    options = onnx_predictor.session.get_session_options()
    assert options.intra_op_num_threads == os.cpu_count()
    assert isinstance(onnx_predictor, Predictor)
    assert onnx_predictor.outputs == ["logits", "cam"]


def test_onnx_and_torch_back_ends_agree(
    onnx_predictor: OnnxPredictor, tiny_model, image_files: list[Path]
) -> None:
    model, description = tiny_model
    torch_predictor = TorchPredictor(model, description, onnx_predictor.calibration)
    assert torch_predictor.cam_model is not None
    onnx_results = list(onnx_predictor.predict_paths(image_files, batch_size=5))
    torch_results = list(torch_predictor.predict_paths(image_files, batch_size=5))
    assert [r.path for r in onnx_results] == [str(p) for p in image_files]
    for a, b in zip(onnx_results, torch_results, strict=True):
        assert (a.verdict, a.label) == (b.verdict, b.label)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-4)
    # The tiny model learnt something: its top label is right far more often than chance (4).
    right = sum(Path(r.path).parent.name == r.label for r in onnx_results)
    assert right >= 7


def test_results_do_not_depend_on_the_batch_size(
    onnx_predictor: OnnxPredictor, image_files: list[Path]
) -> None:
    single = [r.to_dict() for r in onnx_predictor.predict_paths(image_files, batch_size=1)]
    for batch_size in (4, 32):
        batched = [r.to_dict() for r in onnx_predictor.predict_paths(image_files, batch_size)]
        assert [r["verdict"] for r in batched] == [r["verdict"] for r in single]
        for a, b in zip(batched, single, strict=True):
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)


def test_result_fields_follow_the_decision_rule(
    onnx_predictor: OnnxPredictor, image_files: list[Path]
) -> None:
    result = onnx_predictor.predict_path(image_files[0])
    assert result.ok and result.image_size == (80, 80)
    assert result.cam.shape == (3, 2, 2)
    assert result.threshold == onnx_predictor.calibration.threshold
    assert result.margin == pytest.approx(result.score - result.threshold)
    assert result.label == max(result.probs, key=result.probs.get)
    body = result.to_dict()
    assert set(body) == {
        "path",
        "verdict",
        "label",
        "confidence",
        "probs",
        "threshold",
        "score",
        "margin",
        "explanation",
    }
    json.dumps(body)
    same = onnx_predictor.predict_image(load_image(image_files[0]), path="x")
    assert same.confidence == pytest.approx(result.confidence, abs=1e-6)


def test_unreadable_files_give_error_results_in_place(
    onnx_predictor: OnnxPredictor, image_files: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    paths = [image_files[0], tmp_path / "missing.jpg", broken, image_files[1]]
    results = list(onnx_predictor.predict_paths(paths, batch_size=3))
    assert [r.verdict == "error" for r in results] == [False, True, True, False]
    assert "file not found" in results[1].message
    assert results[2].to_dict() == {
        "path": str(broken),
        "verdict": "error",
        "message": results[2].message,
    }


def test_on_result_and_cancel(onnx_predictor: OnnxPredictor, image_files: list[Path]) -> None:
    seen: list[CheckResult] = []
    results = list(onnx_predictor.predict_paths(image_files, batch_size=4, on_result=seen.append))
    assert [r.path for r in seen] == [r.path for r in results]
    seen.clear()
    stopped = list(
        onnx_predictor.predict_paths(
            image_files, batch_size=4, on_result=seen.append, cancel=lambda: len(seen) >= 4
        )
    )
    assert len(stopped) == 4  # cancel is checked between batches
    assert list(onnx_predictor.predict_paths(image_files, cancel=lambda: True)) == []


def test_open_predictor_picks_the_back_end(
    tiny_bundle: Path,
    tiny_bundle_zip: Path,
    tiny_model,
    tmp_path: Path,
    image_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(open_predictor(tiny_bundle), OnnxPredictor)
    monkeypatch.setenv("DEEPFAKE_STUDIO_CACHE", str(tmp_path / "cache"))
    assert isinstance(open_predictor(tiny_bundle_zip), OnnxPredictor)
    model, description = tiny_model
    run = tmp_path / "run"
    description.save(run)
    save_weights(model, run / "best.safetensors")
    predictor = open_predictor(run)
    assert isinstance(predictor, TorchPredictor)
    expected = OnnxPredictor(load_bundle(tiny_bundle)).predict_batch(
        predictor.preprocess(load_image(image_files[0]))[None]
    )[0]
    got = predictor.predict_batch(predictor.preprocess(load_image(image_files[0]))[None])[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_torch_predictor_falls_back_to_grad_cam(tiny_model) -> None:
    from core.models import ModelDescription, create_model

    _, description = tiny_model
    model = create_model("mobilenetv3_small_050", 3).eval()
    desc = ModelDescription(
        "mobilenetv3_small_050", description.class_names, description.preprocess
    )
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    plain = TorchPredictor(model, desc)
    assert plain.cam_model is None and plain.predict_batch(x)[1] is None
    logits, cam = TorchPredictor(model, desc, gradcam=True).predict_batch(x)
    np.testing.assert_allclose(logits, plain.predict_batch(x)[0], atol=1e-5)
    assert cam.shape == (2, 3, 2, 2) and (cam >= 0).all()
    vit = create_model("test_vit", 3, img_size=64).eval()
    no_maps = TorchPredictor(vit, desc, gradcam=True)
    assert not no_maps.gradcam and no_maps.predict_batch(x)[1] is None


def test_iter_image_files_expands_sorts_and_filters(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["b/deep/z.PNG", "b/a.jpg", "c.webp", "notes.txt", ".x.jpg", ".hidden/h.jpg"]:
        (tmp_path / name).write_bytes(b"")
    explicit = tmp_path / "notes.txt"
    found = list(iter_image_files([tmp_path, explicit, tmp_path / "gone.jpg"]))
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["b/a.jpg", "b/deep/z.PNG", "c.webp", "notes.txt", "gone.jpg"]
    shallow = list(iter_image_files([tmp_path], recursive=False))
    assert [p.name for p in shallow] == ["c.webp"]


def test_unreadable_entries_in_a_folder_are_skipped_and_named(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ["a.jpg", "sub/b.png"]:
        (tmp_path / name).write_bytes(b"")
    # entries whose stat fails (as in /proc/1: PermissionError); root can read anything else
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "sub" / "cycle").symlink_to("cycle")
    skipped: list[tuple[str, str]] = []
    found = list(iter_image_files([tmp_path], skipped=skipped))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "sub/b.png"]
    assert sorted(Path(path).name for path, _ in skipped) == ["loop.jpg"]
    assert "symbolic links" in skipped[0][1]
    assert describe_skipped(skipped) == (
        f"1 unreadable entry was skipped (e.g. {tmp_path / 'loop.jpg'}: {skipped[0][1]})"
    )
    assert list(iter_image_files([tmp_path])) == found  # without a list to fill, the same files


def test_a_folder_of_10000_files_lists_fast_and_streams_results(
    tmp_path: Path, onnx_predictor: OnnxPredictor
) -> None:
    import time

    png = tmp_path / "seed.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(png)
    data = png.read_bytes()
    png.unlink()
    seed = tmp_path / "seed.bin"
    seed.write_bytes(data)
    for folder in range(10):
        sub = tmp_path / f"f{folder}"
        sub.mkdir()
        for i in range(1000):
            os.link(seed, sub / f"{i:04d}.png")  # hard links: 10,000 files in a second
    seed.unlink()
    start = time.perf_counter()
    files = list(iter_image_files([tmp_path]))
    elapsed = time.perf_counter() - start
    assert len(files) == 10_000
    assert files[0].name == "0000.png" and files[-1].parent.name == "f9"
    assert files == sorted(files)
    assert elapsed < 2.0
    start = time.perf_counter()
    stream = onnx_predictor.predict_paths(iter_image_files([tmp_path]), batch_size=32)
    first = [next(stream) for _ in range(64)]
    stream.close()
    assert time.perf_counter() - start < 5.0  # results stream: no waiting for all 10,000
    assert [r.verdict for r in first] == [first[0].verdict] * 64  # identical files
    assert first[0].ok and first[0].image_size == (4, 4)


def test_an_unexpected_decoder_failure_is_one_error_result(
    onnx_predictor: OnnxPredictor, image_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.inference as inference

    real_load = inference.load_image

    def flaky(path):
        if str(path).endswith("img_01.png"):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real_load(path)

    monkeypatch.setattr(inference, "load_image", flaky)
    results = list(onnx_predictor.predict_paths(image_files))
    failed = [r for r in results if not r.ok]
    assert len(results) == 12 and len(failed) == 1
    assert failed[0].message.endswith("cannot decode (error: unpack requires a buffer of 4 bytes)")
