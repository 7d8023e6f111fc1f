"""core.bundle: writing, loading, verifying and safely unzipping model bundles."""

from __future__ import annotations

import json
import pickle
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import bundle as bundle_module
from core.bundle import load_bundle, read_golden, verify_golden, write_bundle, zip_bundle
from core.errors import UserError
from core.inference import OnnxPredictor
from core.preprocess import PreprocessSpec
from core.rejection import Calibration
from core.verdict import decide


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "copy"))


def edit_meta(root: Path, **changes) -> None:
    meta = json.loads((root / "bundle.json").read_text())
    meta.update(changes)
    (root / "bundle.json").write_text(json.dumps(meta))


class Boom:
    """Unpickling this would create ``marker``: proof that a file was (not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_tiny_bundle_loads_with_its_contract(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.class_names == ["real", "sd14", "sdxl"]
    assert bundle.real_class == "real"
    assert bundle.preprocess == PreprocessSpec(input_size=64)
    assert bundle.calibration.reached and bundle.calibration.temperature > 0
    assert bundle.has_cam and bundle.meta["model"]["outputs"] == ["logits", "cam"]
    assert bundle.meta["model"]["opset"] == 17
    assert bundle.model_path == tiny_bundle / "model.onnx"
    assert bundle.describe() == "resnet10t fp32, real vs 2 fake classes (sd14, sdxl)"
    assert "accuracy" in bundle.metrics


def test_golden_vectors_hold_onnxruntime_outputs_and_verify(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    predictor = OnnxPredictor(bundle)
    golden = read_golden(bundle)
    assert [v["name"] for v in golden["vectors"]] == ["g0", "g1"]
    for entry in golden["vectors"]:
        tensor = np.fromfile(tiny_bundle / "golden" / entry["input"], dtype="<f4")
        tensor = tensor.reshape(entry["shape"])
        assert entry["shape"] == [1, 3, 64, 64]
        logits, _ = predictor.predict_batch(tensor)
        np.testing.assert_allclose(entry["logits"], logits[0], atol=1e-5)
        assert sum(entry["probs"]) == pytest.approx(1.0)
        verdict = decide(logits, bundle.calibration, bundle.class_names, "real")[0]
        assert (entry["verdict"], entry["label"]) == (verdict.verdict, verdict.label)
    check = verify_golden(bundle, predictor)
    assert check.ok, check.summary()
    assert check.input_diff <= 1e-4 and check.logits_diff <= 1e-4
    assert "OK: 2 vector(s)" in check.summary()


def test_verify_golden_catches_a_different_preprocessing(bundle_copy: Path) -> None:
    bin_path = bundle_copy / "golden" / "g0.input.bin"
    tensor = np.fromfile(bin_path, dtype="<f4")
    (tensor + 0.01).astype("<f4").tofile(bin_path)
    bundle = load_bundle(bundle_copy)
    check = verify_golden(bundle, OnnxPredictor(bundle))
    assert not check.ok
    assert check.input_diff == pytest.approx(0.01, abs=1e-4)
    assert "MISMATCH" in check.summary()


def test_zip_is_extracted_once_into_a_cache(tiny_bundle_zip: Path, tmp_path: Path) -> None:
    first = load_bundle(tiny_bundle_zip, cache_dir=tmp_path)
    assert first.root.parent == tmp_path / "bundles"
    assert first.source == tiny_bundle_zip
    stamp = (first.root / "model.onnx").stat().st_mtime_ns
    second = load_bundle(tiny_bundle_zip, cache_dir=tmp_path)
    assert second.root == first.root
    assert (second.root / "model.onnx").stat().st_mtime_ns == stamp
    assert second.meta == load_bundle(tiny_bundle_zip.parent / "tiny").meta


def test_zip_with_one_top_folder_is_accepted(tiny_bundle: Path, tmp_path: Path) -> None:
    zip_path = tmp_path / "nested.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for file in tiny_bundle.rglob("*"):
            archive.write(file, "mybundle/" + file.relative_to(tiny_bundle).as_posix())
    bundle = load_bundle(zip_path, cache_dir=tmp_path / "cache")
    assert bundle.root.name == "mybundle"
    assert bundle.class_names == ["real", "sd14", "sdxl"]


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/x"])
def test_zip_members_outside_the_bundle_are_refused(tmp_path: Path, member: str) -> None:
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("bundle.json", "{}")
        archive.writestr(member, "pwned")
    with pytest.raises(UserError, match="outside the bundle"):
        load_bundle(zip_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil.txt").exists()
    assert not list((tmp_path / "cache" / "bundles").glob("*/*"))


def test_zip_links_are_refused(tmp_path: Path) -> None:
    zip_path = tmp_path / "link.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        info = zipfile.ZipInfo("model.onnx")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(UserError, match="is a link"):
        load_bundle(zip_path, cache_dir=tmp_path / "cache")


def test_zip_oversized_members_are_refused(
    tiny_bundle_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_module, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(UserError, match="too large"):
        load_bundle(tiny_bundle_zip, cache_dir=tmp_path)


def test_modified_model_fails_the_sha256_check(bundle_copy: Path) -> None:
    with open(bundle_copy / "model.onnx", "r+b") as handle:
        handle.seek(-5, 2)
        handle.write(b"XXXXX")
    with pytest.raises(UserError, match=r"model\.onnx sha256 mismatch: file modified or damaged"):
        load_bundle(bundle_copy)


def test_unknown_format_version_is_refused(bundle_copy: Path) -> None:
    edit_meta(bundle_copy, format_version=7)
    with pytest.raises(UserError, match="format_version 7; this app reads version 1"):
        load_bundle(bundle_copy)
    edit_meta(bundle_copy, format_version=True)  # JSON true is not 1 (the Java and Node readers)
    with pytest.raises(UserError, match="format_version True; this app reads version 1"):
        load_bundle(bundle_copy)


def test_sha256_in_upper_case_hex_is_the_same_digest(bundle_copy: Path) -> None:
    digest = json.loads((bundle_copy / "bundle.json").read_text())["model"]["sha256"]
    meta = json.loads((bundle_copy / "bundle.json").read_text())
    edit_meta(bundle_copy, model={**meta["model"], "sha256": digest.upper()})
    assert load_bundle(bundle_copy).model_path.is_file()  # as Java and Node accept it


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something/else"}, "not a Deepfake Studio bundle"),
        ({"real_class": "photo"}, "real class 'photo' is not among"),
        ({"calibration": {"temperature": 1, "score": "entropy", "threshold": 0}}, "score must"),
        ({"preprocess": {"input_size": 64, "resize_mode": "squash"}}, "resize_mode must be"),
        ({"golden": "golden/missing.json"}, "golden/missing.json is missing"),
        ({"model": None}, "lacks a required field"),
    ],
)
def test_inconsistent_metadata_is_refused(bundle_copy: Path, change: dict, message: str) -> None:
    edit_meta(bundle_copy, **change)
    with pytest.raises(UserError, match=message):
        load_bundle(bundle_copy)


def test_missing_or_damaged_files_are_reported(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(UserError, match=r"incomplete: model\.onnx is missing"):
        load_bundle(bundle_copy)
    (bundle_copy / "bundle.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bundle\.json is damaged"):
        load_bundle(bundle_copy)
    with pytest.raises(UserError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text("{}")
    with pytest.raises(UserError, match="training run folder: export it first"):
        load_bundle(run)


def test_a_bare_onnx_file_asks_for_its_bundle(tiny_bundle: Path) -> None:
    with pytest.raises(UserError, match="bare ONNX file"):
        load_bundle(tiny_bundle / "model.onnx")


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "model.zip", "model.onnx.data"])
def test_pickled_models_are_refused_without_unpickling(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / name
    if name.endswith(".zip"):  # torch.save's format: a zip holding data.pkl
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(Boom(marker)))
    else:
        path.write_bytes(pickle.dumps(Boom(marker), protocol=2))
    with pytest.raises(UserError, match="pickled PyTorch model; it is refused"):
        load_bundle(path)
    assert not marker.exists()


def test_torch_save_output_is_refused(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "checkpoint.bin"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="pickled"):
        load_bundle(path)


def test_write_bundle_requires_the_documented_io_names(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UserError, match="must map 'image' to 'logits'"):
        write_bundle(
            tmp_path / "b",
            model.SerializeToString(),
            arch="identity",
            class_names=["real", "fake"],
            real_class="real",
            preprocess=PreprocessSpec(),
            calibration=Calibration(),
        )
    assert onnx.load_from_string(model.SerializeToString()).graph.output[0].name == "y"


def test_zip_bundle_round_trips(tiny_bundle: Path, tmp_path: Path) -> None:
    zip_path = zip_bundle(tiny_bundle, tmp_path / "out" / "b.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    assert {"bundle.json", "model.onnx", "golden/golden.json", "golden/g0.png"} <= names
    assert all(not n.startswith(("/", "..")) for n in names)
    assert load_bundle(zip_path, cache_dir=tmp_path / "c").meta == load_bundle(tiny_bundle).meta


def test_default_bundle_missing_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert bundle_module.default_bundle_path() == tmp_path / "assets" / "bundles" / "default"
    with pytest.raises(UserError, match=r"no default model bundle .* --model BUNDLE .* export"):
        bundle_module.load_default_bundle()


def test_the_zip_cache_keeps_the_most_recently_used(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_module, "CACHE_KEEP", 2)
    zips = []
    for i in range(3):
        copy = Path(shutil.copytree(tiny_bundle, tmp_path / f"b{i}"))
        edit_meta(copy, parent_run=f"run {i}")  # a different zip each time
        zips.append(zip_bundle(copy, tmp_path / f"b{i}.zip"))
    roots = [load_bundle(z, cache_dir=tmp_path / "cache").root for z in zips[:2]]
    load_bundle(zips[0], cache_dir=tmp_path / "cache")  # b0 used again: b1 is now the oldest
    third = load_bundle(zips[2], cache_dir=tmp_path / "cache").root
    assert roots[0].is_dir() and third.is_dir()
    assert not roots[1].exists()


def test_zip_bundle_skips_hidden_files_and_itself(bundle_copy: Path) -> None:
    (bundle_copy / ".complete").write_text("cache marker")
    zip_path = zip_bundle(bundle_copy, bundle_copy / "self.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    assert ".complete" not in names
    assert not any(name.endswith((".zip", ".tmp")) for name in names)


@pytest.mark.skipif(
    not (bundle_module.default_bundle_path() / "bundle.json").is_file(),
    reason="no default bundle in assets/bundles/default yet",
)
def test_the_shipped_default_bundle_is_intact_and_reproduces_its_golden_vectors() -> None:
    bundle = bundle_module.load_default_bundle()
    assert bundle.real_class in bundle.class_names
    check = verify_golden(bundle, OnnxPredictor(bundle))
    assert check.ok, check.summary()
