"""The pure-Java core of the Android app (mobile/core) against Python, on real bundles.

The Java sources are compiled with ``javac`` and run with JUnit 4 (Debian's ``junit4`` package),
no Gradle. The JUnit suite holds hand-computed unit tests plus ``GoldenParityTest``, which this
module points at:

* ``exported_bundle`` (tests/conftest.py): a real resnet10t fine-tune run exported by the export
  job (``training.export``), so the chain Python export -> Java preprocessing and decision is
  proven on what users ship;
* three bundles written here with :func:`core.bundle.write_bundle`, one per ``resize_mode``, from
  real photos in ../shared/data (generated images when it is absent): resize_crop on
  non-square and portrait images, resize (aspect not kept), crop at native resolution with odd
  margins and crop of an image smaller than the input (scaled up first). Their network is a tiny
  hand-built ONNX graph (global average pool + linear), so logits are real onnxruntime outputs;
* the ``cam`` output of ``tiny_bundle``'s resnet10t (64 px, a 2x2 map; the 32 px export's map
  is 1x1, so flat) and the heatmaps ``core.explain`` draws from it;
* RGBA, palette and EXIF-rotated PNGs and what ``core.preprocess.load_image`` made of them, to
  prove that alpha compositing and the EXIF orientation are ported exactly;
* the rule's step 0 (``core.content``, ``ContentCheck.java``) on blank, tiny, near-the-limit,
  large (sampled) and real images: the same luma standard deviation bit for bit, the same sentence.

Java writes the differences it measured to a JSON report that the tests below assert on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.bundle import GoldenVector, load_bundle, write_bundle
from core.content import MIN_LUMA_STD, content_problem, luma_std
from core.preprocess import PreprocessSpec, load_image
from core.rejection import Calibration
from core.verdict import decide, scores_of

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "mobile" / "core"
SHARED = ROOT.parent / "shared" / "data"
JARS = (Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar"))
CLASSES = ["real", "sd14", "sdxl"]
INPUT_TOLERANCE = 1e-4
COLOUR_WEIGHT = np.array([[2, -1, -1], [-1, 2, -1], [-1, -1, 2]], dtype=np.float32) * 3.0
COLOUR_BIAS = np.array([0.5, 0.0, -0.5], dtype=np.float32)


def _require_java() -> None:
    missing = [tool for tool in ("java", "javac") if shutil.which(tool) is None]
    missing += [str(jar) for jar in JARS if not jar.is_file()]
    if missing:
        pytest.skip(
            f"Java parity tests need a JDK and JUnit 4 (apt-get install default-jdk-headless "
            f"junit4); missing: {', '.join(missing)}"
        )


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """Compile mobile/core (main + tests) once; return ``run(classes, **properties)``."""
    _require_java()
    out = tmp_path_factory.mktemp("javac")
    sources = sorted(str(p) for p in (CORE / "src").rglob("*.java"))
    classpath = os.pathsep.join(str(jar) for jar in JARS)
    javac = ["javac", "-Xlint:all", "-Werror", "-encoding", "UTF-8", "-d", str(out)]
    compiled = subprocess.run(
        [*javac, "-cp", classpath, *sources],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert compiled.returncode == 0, compiled.stderr
    test_classes = sorted(
        "studio.deepfake.core." + p.stem for p in (CORE / "src" / "test").rglob("*Test.java")
    )

    def run(classes: list[str] | None = None, **properties: str) -> subprocess.CompletedProcess:
        flags = [f"-D{key.replace('_', '.')}={value}" for key, value in properties.items()]
        java = ["java", "-Djava.awt.headless=true", *flags, "-cp", f"{out}{os.pathsep}{classpath}"]
        return subprocess.run(
            [*java, "org.junit.runner.JUnitCore", *(classes or test_classes)],
            capture_output=True,
            text=True,
            timeout=180,
        )

    run.test_classes = test_classes
    return run


# -- bundles for each geometry ------------------------------------------------------------------
def colour_model() -> bytes:
    """A real ONNX network (opset 17): the mean of each channel, then a fixed linear layer that
    favours real / sd14 / sdxl for red / green / blue images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["features"]),
            helper.make_node("Gemm", ["features", "weight", "bias"], ["logits"], transB=1),
        ],
        "colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            numpy_helper.from_array(COLOUR_WEIGHT, "weight"),
            numpy_helper.from_array(COLOUR_BIAS, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the apps ship
    onnx.checker.check_model(model)
    return model.SerializeToString()


def shared_or_generated(
    relative: str | None, shape: tuple[int, int], seed: int
) -> tuple[np.ndarray, str]:
    """A decoded image from ../shared/data, or a generated one of ``shape`` (h, w) when
    ``relative`` is ``None`` or the file is absent."""
    path = SHARED / (relative or "-")
    if relative and path.is_file():
        return load_image(path), relative
    rng = np.random.default_rng(seed)
    height, width = shape
    # A grey image with a seed-dependent tint: the colour model scores the generated images
    # apart (a threshold can fall between them, the classes differ) as it does the shared ones.
    tint = np.roll(np.array([1.0, 0.0, 0.0]), seed) * (1.0 - 0.3 * seed)
    ramp = 100.0 + 20.0 * tint + np.linspace(-30, 30, width)[None, :, None]
    noise = rng.normal(0, 30, (height, width, 3))
    return (ramp + noise).clip(0, 255).astype(np.uint8), f"generated {width}x{height}"


GEOMETRIES = {
    # name: (spec, score, temperature, [(shared file, fallback shape (h, w)), ...])
    "resize_crop": (
        PreprocessSpec(input_size=48, resize_mode="resize_crop", resize_size=56),
        "max_softmax",
        1.5,
        [
            ("scenes/real/imagenet_00001.jpg", (263, 376)),
            ("scenes/real/imagenet_00004.jpg", (480, 320)),
            ("scenes/midjourney/00001.jpg", (320, 569)),
        ],
    ),
    "resize": (
        PreprocessSpec(
            input_size=40, resize_mode="resize", mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.125)
        ),
        "energy",
        1.0,
        [
            ("scenes/real/imagenet_00000.jpg", (320, 427)),
            ("faces/real/ffhq256_00000.jpg", (256, 256)),
            ("scenes/midjourney/00005.jpg", (344, 320)),
        ],
    ),
    "crop": (
        PreprocessSpec(input_size=48, resize_mode="crop"),
        "max_softmax",
        0.8,
        [
            ("cifake/test/fake/1006.jpg", (32, 32)),  # smaller than the input: scaled up first
            (None, (53, 61)),  # native crop, odd margins (2 and 6)
            (None, (30, 90)),  # 30 < 48: scaled up to 48 x 144
        ],
    ),
}


FLOORED = "crop"
"""The geometry bundle that also has an energy floor, rejecting one vector its threshold accepts
(the rule's step 4 with ``energy_floor``)."""

UNREACHED = "resize"
"""The geometry bundle whose calibration did not reach its error target (``reached: false``):
its sentences say so instead of "chosen for at most 5% errors"."""


def write_geometry_bundle(name: str, out: Path) -> Path:
    """A bundle of :func:`colour_model` for one of :data:`GEOMETRIES`, whose threshold leaves
    one golden vector ``unknown`` and accepts the others (:data:`FLOORED`: its floor rejects one
    of those too)."""
    spec, score, temperature, sources = GEOMETRIES[name]
    images = [shared_or_generated(rel, shape, seed) for seed, (rel, shape) in enumerate(sources)]
    pooled = np.stack([spec(image).mean(axis=(1, 2)) for image, _ in images])
    logits = pooled.astype(np.float64) @ COLOUR_WEIGHT.T + COLOUR_BIAS  # what the model computes
    scores = scores_of(logits, temperature, score)[1]
    values = np.sort(scores)
    assert values[1] - values[0] > 1e-3, "test images too alike to place a threshold between"
    floor = {}
    if name == FLOORED:  # between the energies of the two vectors the threshold accepts
        energies = scores_of(logits, temperature, "energy")[1][scores > values[0]]
        assert abs(energies[0] - energies[1]) > 1e-3, "no room for a floor between them"
        floor = {"energy_floor": float(energies.mean()), "floor_keep": 0.5}
    calibration = Calibration(
        temperature=temperature,
        score=score,
        threshold=float(values[:2].mean()),
        target_risk=0.05,
        n=len(images),
        chosen_on="fixed by tests/test_mobile_jvm.py",
        reached=name != UNREACHED,
        **floor,
    )
    return write_bundle(
        out,
        colour_model(),
        arch="colour-linear",
        class_names=CLASSES,
        real_class="real",
        preprocess=spec,
        calibration=calibration,
        parent_run="tests/test_mobile_jvm.py",
        golden_vectors=[
            GoldenVector(f"{name}{i}", image, source=source)
            for i, (image, source) in enumerate(images)
        ],
    )


@pytest.fixture(scope="module")
def geometry_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("geometry")
    return {name: write_geometry_bundle(name, root / name) for name in GEOMETRIES}


@pytest.fixture(scope="module")
def decode_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``NAME.in.png`` files and ``NAME.expected.png``, what ``core.preprocess.load_image``
    made of them: transparency (RGBA, palette) and the eight EXIF orientations."""
    out = tmp_path_factory.mktemp("decode")
    value, alpha = np.meshgrid(np.arange(256), np.arange(256))  # every (value, alpha) pair
    rgba = np.stack([value, 255 - value, (value * 7) % 256, alpha], axis=-1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(out / "all-alpha.in.png")
    palette = Image.fromarray(rgba[::16, ::16, :3]).quantize(16)
    palette.save(out / "palette.in.png", transparency=3)
    photo = Image.fromarray(rgba[:5, :7, :3])  # 7 x 5: every orientation is distinguishable
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        photo.save(out / f"photo-exif{orientation}.in.png", exif=exif.tobytes())
    for path in out.glob("*.in.png"):
        expected = path.with_name(path.name.replace(".in.png", ".expected.png"))
        Image.fromarray(load_image(path), "RGB").save(expected)
    return out


def content_images() -> dict[str, np.ndarray]:
    """Images for the rule's step 0: each side of both limits, a sampled large image, photos."""
    rng = np.random.default_rng(7)
    near = np.full((64, 64, 3), 128, np.uint8)
    near[::2, ::2] += 3  # luma std 1.30: below MIN_LUMA_STD
    above = near.copy()
    above[::2] += 3  # 2.49: above it
    sparse = np.full((1100, 1500, 3), 40, np.uint8)  # sampled every 3rd pixel
    sparse[::5, ::7] = rng.integers(0, 256, sparse[::5, ::7].shape, dtype=np.uint8)
    images = {
        "gray": np.full((256, 256, 3), 128, np.uint8),
        "black": np.zeros((256, 256, 3), np.uint8),
        "one-pixel": np.full((1, 1, 3), 90, np.uint8),
        "eight": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        "thin": rng.integers(0, 256, (15, 400, 3), dtype=np.uint8),
        "sixteen": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
        "near-below": near,
        "near-above": above,
        "sparse-large": sparse,
    }
    photos = ["cifake/train/real/3228.jpg", "faces/real/ffhq256_01025.jpg"]
    for seed, relative in enumerate(photos):
        images[f"photo{seed}"] = shared_or_generated(relative, (64, 80), seed)[0]
    return images


@pytest.fixture(scope="module")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`content_images` as lossless PNGs (Java reads them with ImageIO)."""
    out = tmp_path_factory.mktemp("content")
    for name, rgb in content_images().items():
        Image.fromarray(rgb).save(out / f"{name}.png")
    return out


@pytest.fixture(scope="module")
def heatmap_dir(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``cam`` output of ``tiny_bundle`` on its golden inputs (Python onnxruntime), and the
    heatmaps ``core.explain`` draws from it for the top class and for another class."""
    import onnxruntime as ort

    from core.explain import cam_to_heatmap, class_map

    out = tmp_path_factory.mktemp("heatmaps")
    golden = json.loads((tiny_bundle / "golden" / "golden.json").read_text())
    session = ort.InferenceSession(str(tiny_bundle / "model.onnx"))
    size = json.loads((tiny_bundle / "bundle.json").read_text())["preprocess"]["input_size"]
    cases = []
    for vector in golden["vectors"]:
        x = np.fromfile(tiny_bundle / "golden" / vector["input"], dtype="<f4")
        logits, cam = session.run(["logits", "cam"], {"image": x.reshape(vector["shape"])})
        top = int(np.argmax(logits[0]))
        for k in (top, (top + 1) % cam.shape[1]):
            name = f"{vector['name']}-{k}"
            cam.astype("<f4").tofile(out / f"{name}.cam.bin")
            heat = cam_to_heatmap(class_map(cam[0], k), (size, size))
            assert heat.min() == 0 and heat.max() == 1 and heat.std() > 0.05  # not a flat map
            heat.astype("<f4").tofile(out / f"{name}.heat.bin")
            cases.append(
                {"shape": list(cam.shape), "class_index": k, "size": size}
                | {"cam": f"{name}.cam.bin", "heat": f"{name}.heat.bin"}
            )
    (out / "heatmaps.json").write_text(json.dumps({"cases": cases}))
    return out


@pytest.fixture(scope="module")
def parity(
    junit, exported_bundle, geometry_bundles, decode_dir, heatmap_dir, content_dir, tmp_path_factory
):
    """Run the whole JUnit suite once on all bundles; its output and the Java reports."""
    reports = tmp_path_factory.mktemp("report")
    bundles = {"exported_bundle": exported_bundle, **geometry_bundles}
    zipped = exported_bundle.with_name(exported_bundle.name + ".zip")
    assert zipped.is_file(), "the export job writes <bundle>.zip with zip=True"
    result = junit(
        bundle_dirs=os.pathsep.join(str(p) for p in bundles.values()),
        bundle_zips=str(zipped),
        parity_required="true",
        decode_dir=str(decode_dir),
        heatmap_dir=str(heatmap_dir),
        parity_report=str(reports / "parity.json"),
        heatmap_report=str(reports / "heatmap.json"),
        content_dir=str(content_dir),
        content_report=str(reports / "content.json"),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = json.loads((reports / "parity.json").read_text())["bundles"]
    return {
        "output": result.stdout,
        "bundles": bundles,
        "rows": dict(zip(bundles, rows, strict=True)),
        "heatmap": json.loads((reports / "heatmap.json").read_text()),
        "content": json.loads((reports / "content.json").read_text(encoding="utf-8")),
    }


# -- the tests ----------------------------------------------------------------------------------
def test_junit_unit_tests_pass(junit, parity) -> None:
    """Every JUnit test class ran and passed (hand-computed softmax, resampling, crops ...)."""
    assert len(junit.test_classes) >= 7
    count = int(parity["output"].split("OK (")[1].split(" test")[0])
    assert count >= 30, parity["output"]


@pytest.mark.parametrize("name", ["exported_bundle", *GEOMETRIES])
def test_java_preprocessing_matches_python(parity, name: str) -> None:
    row = parity["rows"][name]
    print(f"{name}: Java vs Python input max |diff| = {row['max_input_diff']:.3g}")
    assert row["vectors"] >= 2
    assert row["max_input_diff"] <= INPUT_TOLERANCE
    assert row["model_sha256_checked"] is True


@pytest.mark.parametrize("name", ["exported_bundle", *GEOMETRIES])
def test_java_decision_matches_python(parity, name: str) -> None:
    row = parity["rows"][name]
    assert row["verdicts_equal"] == row["vectors"]
    # Both sides compute the rule in double precision from the same float32 logits.
    assert row["max_probs_diff"] <= 1e-9
    assert row["max_score_diff"] <= 1e-9


@pytest.mark.parametrize("name", ["exported_bundle", *GEOMETRIES])
def test_java_explanations_are_the_desktop_checkers(parity, name: str) -> None:
    """The sentence the phone shows is the one ``core.verdict`` writes for the same logits."""
    bundle = load_bundle(parity["bundles"][name])
    golden = json.loads(bundle.golden.read_text())
    logits = np.array([v["logits"] for v in golden["vectors"]])
    expected = [
        v.explanation
        for v in decide(logits, bundle.calibration, bundle.class_names, bundle.real_class)
    ]
    assert parity["rows"][name]["explanations"] == expected
    unfamiliar = [e for e in expected if e.startswith("Unknown: unlike the images")]
    assert bool(unfamiliar) == (name == FLOORED), expected  # the floor's sentence is covered
    out_of_reach = [e for e in expected if "(the 5% error target was out of reach)" in e]
    assert bool(out_of_reach) == (name == UNREACHED), expected  # reached: false is covered


def test_java_heatmap_matches_python(parity) -> None:
    """The CAM heatmap rule (class map, triangle upsampling, min-max) on the real model's cam."""
    heatmap = parity["heatmap"]
    print(f"Java vs Python heatmap max |diff| = {heatmap['max_heatmap_diff']:.3g}")
    assert heatmap["cases"] >= 4
    assert heatmap["max_heatmap_diff"] <= 1e-5


def test_java_content_check_matches_python(parity, content_dir: Path) -> None:
    """Step 0 of the rule: Java's luma standard deviation equals Python's exactly (integer sums,
    one division and square root), and so does the sentence."""
    java = parity["content"]
    assert set(java) == {p.name for p in content_dir.glob("*.png")}
    problems = set()
    for name, row in java.items():
        rgb = load_image(content_dir / name)
        assert row["luma_std"] == luma_std(rgb), name
        assert row["problem"] == content_problem(rgb), name
        problems.add(row["problem"] is not None)
    assert problems == {True, False}  # both outcomes are compared
    assert java["near-below.png"]["luma_std"] < MIN_LUMA_STD < java["near-above.png"]["luma_std"]


def test_decode_cases_are_real(decode_dir: Path) -> None:
    """The decoding fixture holds what it claims: rotated and composited images."""
    assert Image.open(decode_dir / "photo-exif6.expected.png").size == (5, 7)
    assert Image.open(decode_dir / "photo-exif3.expected.png").size == (7, 5)
    composited = np.asarray(Image.open(decode_dir / "all-alpha.expected.png"))
    assert composited[0, 0].tolist() == [255, 255, 255]  # alpha 0 -> white
    assert len(list(decode_dir.glob("*.in.png"))) == 10


def test_geometry_bundles_cover_every_mode_and_verdict(geometry_bundles) -> None:
    """The fixtures exercise what they claim: each mode, unknown and accepted verdicts."""
    verdicts = set()
    for name, path in geometry_bundles.items():
        meta = json.loads((path / "bundle.json").read_text())
        golden = json.loads((path / "golden" / "golden.json").read_text())
        assert meta["preprocess"]["resize_mode"] == name
        kinds = [v["verdict"] for v in golden["vectors"]]
        assert kinds.count("unknown") == (2 if name == FLOORED else 1), name
        assert ("energy_floor" in meta["calibration"]) == (name == FLOORED)
        assert meta["calibration"]["reached"] == (name != UNREACHED)
        verdicts.update(kinds)
    assert {"unknown", "real"} <= verdicts or {"unknown", "fake"} <= verdicts
    crop = geometry_bundles["crop"] / "golden"
    sizes = sorted(Image.open(p).size for p in crop.glob("*.png"))
    assert min(min(s) for s in sizes) < GEOMETRIES["crop"][0].input_size  # scaled-up case


def test_java_catches_a_tampered_golden_vector(junit, geometry_bundles, tmp_path: Path) -> None:
    """Negative control: a 3e-4 change in one input value and a flipped verdict are reported."""
    bundle = shutil.copytree(geometry_bundles["resize_crop"], tmp_path / "tampered")
    golden_file = bundle / "golden" / "golden.json"
    golden = json.loads(golden_file.read_text())
    first, second = golden["vectors"][:2]
    tensor = np.fromfile(bundle / "golden" / first["input"], dtype="<f4")
    tensor[123] += 3e-4
    tensor.tofile(bundle / "golden" / first["input"])
    second["verdict"] = "unknown" if second["verdict"] != "unknown" else "real"
    golden_file.write_text(json.dumps(golden))
    result = junit(["studio.deepfake.core.GoldenParityTest"], bundle_dirs=str(bundle))
    assert result.returncode != 0
    assert f"tampered/{first['name']}: input differs by" in result.stdout
    assert f"tampered/{second['name']}: verdict" in result.stdout
