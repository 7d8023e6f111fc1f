"""Step 0 of the decision rule (core.content): too small or too uniform to judge is ``unknown``.

The audit's cases with the shipped bundles: the default bundle called a uniform gray image
"real 99.4 %", black and white ones and a 1x1 pixel "real"; the cifake bundle called gray fake.
Real photos from ../shared/data (the lowest luma standard deviation among its 26,112 real images
is 5.94, the shortest side 32 px) keep the verdicts of the rule's steps 1-5.
"""

from __future__ import annotations

import csv
import json
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.__main__ import main
from core.bundle import load_bundle
from core.content import MIN_LUMA_STD, MIN_SIDE, content_problem, luma_std, sample_stride
from core.inference import OnnxPredictor
from core.preprocess import load_image

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "assets" / "bundles"
SHARED = ROOT.parent / "shared" / "data"
UNIFORM = "Unknown: the image is almost uniform (no detail to judge)"
LOWEST_REAL = {  # the real images of ../shared/data with the least luma detail, as measured
    "cifake/train/real/3228.jpg": 5.94,
    "cifake/train/real/1271.jpg": 6.16,
    "cifake/test/real/4909_5.jpg": 6.70,
    "scenes/real/imagenet_00277.jpg": 16.32,
    "faces/real/ffhq256_01025.jpg": 23.31,
}
REAL_SAMPLES = [
    "cifake/test/real/0006.jpg",
    "cifake/test/fake/1006.jpg",
    "faces/real/ffhq256_00000.jpg",
    "faces/stylegan2/00001.jpg",
    "scenes/real/imagenet_00001.jpg",
    "scenes/midjourney/00001.jpg",
]


def too_small(width: int, height: int) -> str:
    return f"Unknown: {width}×{height} pixels is too small to judge (at least 16 px per side)"


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


BLANKS = {  # name: (image, the explanation step 0 gives)
    "gray.png": (np.full((256, 256, 3), 128, np.uint8), UNIFORM),
    "black.png": (np.zeros((256, 256, 3), np.uint8), UNIFORM),
    "white.png": (np.full((256, 256, 3), 255, np.uint8), UNIFORM),
    "one-pixel.png": (np.full((1, 1, 3), 90, np.uint8), too_small(1, 1)),
    "eight.png": (noise(8, 8), too_small(8, 8)),
}


@pytest.fixture(scope="module")
def blank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("blank")
    for name, (rgb, _) in BLANKS.items():
        Image.fromarray(rgb).save(out / name)
    return out


@pytest.fixture(scope="module")
def default_predictor() -> OnnxPredictor:
    return OnnxPredictor(load_bundle(BUNDLES / "default"), threads=1)


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"needs the shared data set ({path} is absent)")
    return path


def model_rule(predictor: OnnxPredictor, rgb: np.ndarray):
    """The rule's steps 1-5 alone (what the checker said before step 0)."""
    logits, _ = predictor.predict_batch(predictor.preprocess(rgb)[None])
    return predictor.decide(logits)[0]


# -- the measurement ----------------------------------------------------------------------------
def test_luma_is_pillows_l_and_its_population_std() -> None:
    rgb = noise(40, 50, seed=1)
    luma = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    assert luma_std(rgb) == pytest.approx(luma.std(), abs=1e-12)
    half = np.zeros((20, 20, 3), np.uint8)
    half[:10] = 255
    assert luma_std(half) == 127.5


def test_large_images_are_sampled_on_a_strided_grid() -> None:
    assert [sample_stride(32, 32), sample_stride(300, 512), sample_stride(513, 10)] == [1, 1, 2]
    rgb = noise(3000, 4000, seed=2)
    assert sample_stride(3000, 4000) == 8
    luma = np.asarray(Image.fromarray(rgb[::8, ::8]).convert("L"), dtype=np.float64)
    assert luma_std(rgb) == pytest.approx(luma.std(), abs=1e-12)


@pytest.mark.parametrize(("name", "expected"), [(n, e) for n, (_, e) in BLANKS.items()])
def test_blank_and_tiny_images_have_a_problem(name: str, expected: str) -> None:
    assert content_problem(BLANKS[name][0]) == expected


def test_limits_sit_where_the_rule_says() -> None:
    assert content_problem(noise(15, 400)) == too_small(400, 15)
    assert content_problem(noise(MIN_SIDE, MIN_SIDE)) is None
    dithered = np.full((64, 64, 3), 128, np.uint8)
    dithered[::2, ::2] += 3  # a quarter of the pixels 3 levels up: std 1.30, below the limit
    assert luma_std(dithered) < MIN_LUMA_STD
    assert content_problem(dithered) == UNIFORM
    dithered[::2] += 3  # half of the pixels 3 levels up or more: above it
    assert luma_std(dithered) > MIN_LUMA_STD
    assert content_problem(dithered) is None


@pytest.mark.parametrize(("relative", "measured"), LOWEST_REAL.items())
def test_the_least_detailed_real_images_pass_with_room(relative: str, measured: float) -> None:
    rgb = load_image(shared(relative))
    assert luma_std(rgb) == pytest.approx(measured, abs=0.01)
    assert luma_std(rgb) > 2.5 * MIN_LUMA_STD
    assert content_problem(rgb) is None


# -- the checker with the shipped bundles --------------------------------------------------------
@pytest.mark.parametrize("name", BLANKS)
def test_default_bundle_says_unknown_with_the_reason(
    default_predictor: OnnxPredictor, blank_dir: Path, name: str
) -> None:
    rgb, expected = BLANKS[name]
    before = model_rule(default_predictor, rgb)
    result = default_predictor.predict_path(blank_dir / name)
    assert before.verdict == "real"  # the audit's finding: a confident verdict without step 0
    assert result.verdict == "unknown"
    assert result.explanation == expected
    # The model's best guess is still reported, as for any unknown.
    assert (result.label, result.probs, result.score) == (before.label, before.probs, before.score)
    assert default_predictor.predict_image(rgb).explanation == expected


def test_cifake_bundle_no_longer_calls_gray_fake(blank_dir: Path) -> None:
    predictor = OnnxPredictor(load_bundle(BUNDLES / "cifake"), threads=1)
    assert model_rule(predictor, BLANKS["gray.png"][0]).verdict == "fake"
    result = predictor.predict_path(blank_dir / "gray.png")
    assert (result.verdict, result.explanation) == ("unknown", UNIFORM)


def test_real_images_keep_their_verdicts_in_a_batch_with_blanks(
    default_predictor: OnnxPredictor, blank_dir: Path
) -> None:
    photos = [shared(relative) for relative in REAL_SAMPLES]
    blanks = sorted(blank_dir.iterdir())
    mixed = [p for pair in zip_longest(photos, blanks) for p in pair if p is not None]
    results = {Path(r.path): r for r in default_predictor.predict_paths(mixed, batch_size=4)}
    for photo in photos:
        expected = model_rule(default_predictor, load_image(photo))
        got = results[photo]
        assert (got.verdict, got.label, got.explanation) == (
            expected.verdict,
            expected.label,
            expected.explanation,
        )
        assert got.confidence == pytest.approx(expected.confidence, abs=1e-9)
    for blank in blanks:
        assert results[blank].verdict == "unknown"
        assert results[blank].explanation == BLANKS[blank.name][1]


def test_cli_json_and_reports_carry_the_reason(
    capsys: pytest.CaptureFixture, blank_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "out.csv"
    model = BUNDLES / "default"
    args = ["check", str(blank_dir), "--model", str(model), "--json", "--report", str(report)]
    assert main(args) == 0
    out = capsys.readouterr()
    lines = {Path(d["path"]).name: d for d in map(json.loads, out.out.splitlines())}
    assert {name: d["verdict"] for name, d in lines.items()} == dict.fromkeys(BLANKS, "unknown")
    assert {name: d["explanation"] for name, d in lines.items()} == {
        name: expected for name, (_, expected) in BLANKS.items()
    }
    assert "5 unknown" in out.err
    with report.open(encoding="utf-8", newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert rows["eight.png"]["explanation"] == too_small(8, 8)
    html = tmp_path / "out.html"
    gray = str(blank_dir / "gray.png")
    assert main(["check", gray, "--model", str(model), "--report", str(html)]) == 0
    assert UNIFORM in html.read_text(encoding="utf-8")
