"""core.explain: in-graph CAM, Grad-CAM, heatmap geometry and overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.bundle import load_bundle
from core.explain import (
    cam_to_heatmap,
    class_map,
    colormap,
    grad_cam,
    heatmap_for_image,
    input_box,
    overlay,
    supports_cam,
)
from core.inference import OnnxPredictor
from core.preprocess import PreprocessSpec

SIZE = 64
PATCH = 16


def patch_images(n: int, rng: np.random.Generator):
    """Grey noise; class 1 ("fake") has a white PATCH x PATCH square at a random place."""
    images = rng.integers(60, 140, (n, SIZE, SIZE, 3)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    boxes = rng.integers(0, SIZE - PATCH, (n, 2))
    for image, label, (y, x) in zip(images, labels, boxes, strict=True):
        if label:
            image[y : y + PATCH, x : x + PATCH] = 255
    return images, labels, boxes


@pytest.fixture(scope="module")
def patch_model():
    """timm test_resnet (output stride 16: 4x4 maps at 64 px), 40 steps of 24 patch_images."""
    import torch

    from core.models import create_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    spec = PreprocessSpec(input_size=SIZE, resize_mode="resize")
    model = create_model("test_resnet", 2, output_stride=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    try:
        for _ in range(40):
            images, labels, _ = patch_images(24, rng)
            x = torch.from_numpy(np.stack([spec(image) for image in images]))
            loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), spec


def test_heatmap_finds_the_planted_patch(patch_model) -> None:
    import torch

    from core.explain import CamModel

    model, spec = patch_model
    images, labels, boxes = patch_images(64, np.random.default_rng(1))
    x = torch.from_numpy(np.stack([spec(image) for image in images]))
    with torch.no_grad():
        logits, cam = CamModel(model, SIZE)(x)
    assert cam.shape == (64, 2, 4, 4)
    assert (logits.argmax(1).numpy() == labels).mean() >= 0.9
    ratios, hits = [], 0
    for i in np.flatnonzero(labels == 1):
        heat = heatmap_for_image(class_map(cam[i].numpy(), 1), (SIZE, SIZE), spec)
        assert heat.shape == images[i].shape[:2]
        inside = np.zeros((SIZE, SIZE), dtype=bool)
        y, x0 = boxes[i]
        inside[y : y + PATCH, x0 : x0 + PATCH] = True
        ratios.append(heat[inside].mean() / heat[~inside].mean())
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        hits += abs(peak[0] - (y + PATCH / 2)) <= PATCH and abs(peak[1] - (x0 + PATCH / 2)) <= PATCH
    assert np.median(ratios) > 2.0
    # The hottest pixel lies within a patch width of the patch centre (chance: about 25%).
    assert hits / len(ratios) >= 0.7


def test_cam_model_is_exact_and_exported_cam_matches(tiny_model, tiny_bundle: Path) -> None:
    import torch

    from core.explain import CamModel

    model, _ = tiny_model
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, cam = CamModel(model).eval()(x)
        direct = model(x)
    torch.testing.assert_close(logits, direct)
    torch.testing.assert_close(cam.mean((2, 3)), logits, atol=1e-5, rtol=1e-5)
    onnx_logits, onnx_cam = OnnxPredictor(load_bundle(tiny_bundle)).predict_batch(x.numpy())
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(onnx_cam, cam.numpy(), atol=1e-4)


def test_supports_cam_tells_architectures_apart() -> None:
    from core.explain import CamModel
    from core.models import create_model

    assert supports_cam(create_model("resnet10t", 2))
    mobile = create_model("mobilenetv3_small_050", 2)
    assert not supports_cam(mobile)
    with pytest.raises(ValueError, match="no 'global average pool \\+ linear' head"):
        CamModel(mobile)


def test_grad_cam_highlights_the_patch_too(patch_model) -> None:
    import torch

    model, spec = patch_model
    images, labels, boxes = patch_images(16, np.random.default_rng(2))
    fakes = np.flatnonzero(labels == 1)
    x = torch.from_numpy(np.stack([spec(images[i]) for i in fakes]))
    logits, cam = grad_cam(model, x)
    assert cam.shape == (len(fakes), 2, 4, 4) and (cam >= 0).all()
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-4)
    ratios = []
    for k, i in enumerate(fakes):
        heat = cam_to_heatmap(cam[k, 1], (SIZE, SIZE))
        y, x0 = boxes[i]
        inside = np.zeros((SIZE, SIZE), dtype=bool)
        inside[y : y + PATCH, x0 : x0 + PATCH] = True
        ratios.append(heat[inside].mean() / max(heat[~inside].mean(), 1e-6))
    assert np.median(ratios) > 1.5


def test_cam_to_heatmap_upsamples_and_scales() -> None:
    cam = np.array([[0.0, 0.0], [0.0, 5.0]])
    heat = cam_to_heatmap(cam, (40, 60))
    assert heat.shape == (40, 60) and heat.dtype == np.float32
    assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    assert heat[30:, 45:].mean() > 0.8 > 0.2 > heat[:10, :15].mean()
    assert not cam_to_heatmap(np.ones((2, 2)), (8, 8)).any()


def test_class_map_contrasts_against_other_classes() -> None:
    cam = np.stack([np.full((2, 2), 3.0), np.array([[3.0, 3.0], [3.0, 7.0]])])
    np.testing.assert_allclose(class_map(cam, 1), [[0.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(class_map(cam, 0), -class_map(cam, 1))


@pytest.mark.parametrize(
    ("spec", "hw"),
    [
        (PreprocessSpec(input_size=64), (100, 200)),
        (PreprocessSpec(input_size=64, resize_size=80), (200, 100)),
        (PreprocessSpec(input_size=64, resize_mode="crop"), (120, 250)),
        (PreprocessSpec(input_size=64, resize_mode="resize"), (90, 30)),
    ],
)
def test_input_box_is_the_region_the_model_sees(spec: PreprocessSpec, hw: tuple) -> None:
    height, width = hw
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([cols % 256, rows % 256, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    top, left, bottom, right = input_box(spec, height, width)
    seen = spec.geometry(image)
    # The model input's mean coordinates equal the box centre (resampling is linear).
    assert seen[..., 0].mean() == pytest.approx((left + right - 1) / 2, abs=1.0)
    assert seen[..., 1].mean() == pytest.approx((top + bottom - 1) / 2, abs=1.0)
    heat = heatmap_for_image(np.ones((2, 2)) + np.eye(2), (height, width), spec)
    assert heat.shape == (height, width)
    assert not heat[:top].any() and not heat[:, right:].any()


def test_overlay_colours_hot_regions_only() -> None:
    rgb = np.full((20, 30, 3), 128, dtype=np.uint8)
    heat = np.zeros((20, 30), dtype=np.float32)
    heat[:10, :10] = 1.0
    out = overlay(rgb, heat, alpha=0.6)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[15:, 15:], rgb[15:, 15:])
    red, green, blue = out[0, 0].tolist()
    assert red >= 120 and green < 60 and blue < 60
    assert tuple(colormap(np.array([[0.0]]))[0, 0]) == (0, 0, 128)
    with pytest.raises(ValueError, match="does not match"):
        overlay(rgb, heat[:5])


def test_a_reduced_copy_gets_the_heatmap_of_the_region_the_model_saw() -> None:
    spec = PreprocessSpec(input_size=64, resize_mode="crop")  # 64 native pixels in the centre
    cam = np.arange(4.0).reshape(2, 2)
    full = heatmap_for_image(cam, (400, 600), spec)
    half = heatmap_for_image(cam, (200, 300), spec, source_hw=(400, 600))
    rows, cols = np.nonzero(full)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (168, 231, 268, 331)
    rows, cols = np.nonzero(half)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (84, 115, 134, 165)
