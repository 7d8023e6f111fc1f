"""core.models: the timm factory, local pretrained weights, refusing pickles, save/load, model.json."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from core.errors import UserError
from core.models import (
    DESCRIPTION_FILE,
    ModelDescription,
    count_params,
    create_model,
    load_model,
    read_safetensors,
    save_weights,
)
from core.preprocess import PreprocessSpec

torch = pytest.importorskip("torch")

ARCH = "resnet10t"
SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logits_of(model, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, SIZE, SIZE, generator=generator))


class Booby:
    """Unpickling this object creates ``marker``: proof that a file was (not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": Booby(marker)}))
    return path


@pytest.mark.parametrize(
    ("arch", "head"),
    [
        ("resnet10t", "fc"),
        ("mobilenetv3_small_050", "classifier"),
        ("efficientnet_b0", "classifier"),
    ],
)
def test_create_model_gives_a_fresh_head(arch, head):
    model = create_model(arch, num_classes=3, drop_rate=None)  # None kwargs are dropped
    assert getattr(model, head).out_features == 3
    assert model.get_classifier() is getattr(model, head)
    assert logits_of(model).shape == (2, 3)


def test_create_model_passes_kwargs():
    model = create_model("mobilenetv3_small_050", num_classes=2, drop_rate=0.3)
    assert model.drop_rate == 0.3


@pytest.mark.parametrize(
    ("typo", "expected"), [("resnet10x", "resnet10t"), ("resnt18", "resnet18")]
)
def test_unknown_arch_lists_similar_names(typo, expected):
    with pytest.raises(UserError, match=f"unknown architecture '{typo}'") as info:
        create_model(typo, num_classes=2)
    similar = str(info.value).split("Similar: ")[1].rstrip(".").split(", ")
    assert expected in similar and len(similar) <= 8


def test_unknown_arch_without_neighbours():
    with pytest.raises(UserError, match=r"^unknown architecture 'zzzz'\.$"):
        create_model("zzzz", num_classes=2)


def test_pretrained_from_local_safetensors_same_head(tmp_path: Path):
    torch.manual_seed(1)
    source = create_model(ARCH, num_classes=5)
    path = save_weights(source, tmp_path / "imagenet.safetensors")
    torch.manual_seed(2)
    model = create_model(ARCH, num_classes=5, pretrained=str(path))
    for name, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert torch.equal(logits_of(model), logits_of(source))


def test_pretrained_head_replaced_when_classes_differ(tmp_path: Path):
    torch.manual_seed(1)
    source = create_model(ARCH, num_classes=1000)
    path = save_weights(source, tmp_path / "imagenet.safetensors")
    model = create_model(ARCH, num_classes=3, pretrained=str(path))
    own, theirs = model.state_dict(), source.state_dict()
    body = [k for k in own if not k.startswith("fc.")]
    assert len(body) > 50
    assert all(torch.equal(own[k], theirs[k]) for k in body)
    assert own["fc.weight"].shape == (3, 512) and theirs["fc.weight"].shape == (1000, 512)
    scratch = create_model(ARCH, num_classes=3)
    assert not torch.equal(
        own["layer1.0.conv1.weight"], scratch.state_dict()["layer1.0.conv1.weight"]
    )


def test_pickle_refused_without_unpickling(tmp_path: Path):
    marker = tmp_path / "unpickled"
    weights = write_pickle(tmp_path / "weights.pt", marker)
    pickle.loads(weights.read_bytes())  # the booby trap works...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError, match=r"weights\.pt: pretrained weights must be a \.safetensors"):
        create_model(ARCH, num_classes=2, pretrained=str(weights))
    with pytest.raises(UserError, match=r"pickled \.pt/\.pth files are refused"):
        load_model(weights)
    disguised = write_pickle(tmp_path / "disguised.safetensors", marker)
    with pytest.raises(UserError, match="is not a valid safetensors weights file"):
        create_model(ARCH, num_classes=2, pretrained=str(disguised))
    assert not marker.exists()  # ...and was never sprung by the app


def test_safetensors_of_another_arch_refused(tmp_path: Path):
    other = save_weights(create_model("mobilenetv3_small_050", 2), tmp_path / "mnv3.safetensors")
    with pytest.raises(UserError) as info:
        create_model(ARCH, num_classes=2, pretrained=str(other))
    message = str(info.value)
    assert message.startswith("mnv3.safetensors does not hold weights for resnet10t: only ")
    assert "tensors match by name and shape" in message


def test_missing_pretrained_file(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        create_model(ARCH, num_classes=2, pretrained=str(tmp_path / "nope.safetensors"))


def test_hub_download_failure_is_a_clear_user_error(monkeypatch: pytest.MonkeyPatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise ConnectionError("Failed to resolve 'huggingface.co'")
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(UserError) as info:
        create_model(ARCH, num_classes=2, pretrained="hub")
    message = str(info.value)
    assert message.startswith(
        "could not download pretrained weights for resnet10t (ConnectionError"
    )
    assert "Offline? Pass a local .safetensors file instead." in message


def saved_model(directory: Path, num_classes: int = 3) -> tuple[torch.nn.Module, ModelDescription]:
    torch.manual_seed(3)
    model = create_model(ARCH, num_classes)
    names = ["real", "sd14", "sdxl"][:num_classes]
    description = ModelDescription(ARCH, names, PreprocessSpec(input_size=SIZE))
    description.save(directory)
    save_weights(model, directory / "best.safetensors")
    return model, description


def test_save_and_load_round_trip_gives_identical_logits(tmp_path: Path):
    model, description = saved_model(tmp_path / "run")
    loaded, loaded_description = load_model(tmp_path / "run")
    assert not loaded.training
    assert loaded_description == description
    assert torch.equal(logits_of(loaded), logits_of(model))
    from_file, _ = load_model(tmp_path / "run" / "best.safetensors")
    assert torch.equal(logits_of(from_file), logits_of(model))
    assert count_params(loaded) == count_params(model)
    assert not list((tmp_path / "run").glob("*.tmp"))  # written atomically


def test_load_model_errors(tmp_path: Path):
    saved_model(tmp_path / "run")
    with pytest.raises(UserError, match=r"has no last\.safetensors \(it has best\.safetensors\)"):
        load_model(tmp_path / "run", weights="last")
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "bare").mkdir()
    save_weights(create_model(ARCH, 3), tmp_path / "bare" / "best.safetensors")
    with pytest.raises(UserError, match=r"has no model\.json: not a model or run folder"):
        load_model(tmp_path / "bare")


def test_weights_of_another_shape_refused(tmp_path: Path):
    saved_model(tmp_path / "run")
    save_weights(create_model(ARCH, 2), tmp_path / "run" / "best.safetensors")
    with pytest.raises(UserError, match=r"does not match the resnet10t described in model\.json"):
        load_model(tmp_path / "run")


def test_read_safetensors_refuses_garbage(tmp_path: Path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(UserError, match=r"junk\.safetensors is not a valid safetensors"):
        read_safetensors(path)


def test_model_description_json_round_trip(tmp_path: Path):
    description = ModelDescription(
        "mobilenetv3_small_050",
        ["real", "mj"],
        PreprocessSpec(input_size=48, resize_mode="crop"),
        real_class="real",
        model_kwargs={"drop_rate": 0.1},
        pruning_history="pruning.json",
    )
    body = json.loads(json.dumps(description.to_dict()))
    assert body["format"] == "deepfake-studio/model" and body["version"] == 1
    assert body["num_classes"] == 2
    assert ModelDescription.from_dict(body) == description
    description.save(tmp_path)
    assert ModelDescription.load(tmp_path) == description


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"format": "something/else"}, "not a Deepfake Studio model description"),
        ({"version": 2}, "model description version 2 is not supported"),
        ({"preprocess": {"input_size": 2}}, "between 8 and 4096"),
    ],
)
def test_wrong_format_or_version_refused(tmp_path: Path, change, needle):
    body = {**ModelDescription(ARCH, ["real", "fake"], PreprocessSpec()).to_dict(), **change}
    (tmp_path / DESCRIPTION_FILE).write_text(json.dumps(body))
    with pytest.raises(UserError, match=needle):
        ModelDescription.load(tmp_path)


def test_damaged_description(tmp_path: Path):
    (tmp_path / DESCRIPTION_FILE).write_text("{ not json")
    with pytest.raises(UserError, match=r"model\.json is damaged"):
        ModelDescription.load(tmp_path)


def test_describe_classes():
    from core.bundle import describe_classes

    assert describe_classes(["real", "sd14", "mj"]) == "real vs 2 fake classes (sd14, mj)"
    assert describe_classes(["fake", "real"]) == "real vs 1 fake class (fake)"


def test_weights_files_follow_the_umask_like_every_other_run_file(tmp_path: Path) -> None:
    import os
    import stat

    from core.models import create_model, save_weights

    model = create_model("resnet10t", 2)
    old = os.umask(0o027)
    try:
        path = save_weights(model, tmp_path / "best.safetensors")
        (tmp_path / "run.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o640  # not 0600
