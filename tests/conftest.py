"""Shared pytest fixtures: tiny generated images and a tiny real model + ONNX bundle.

Keep fixtures generic and cheap; add new ones below with a docstring.

* ``tiny_model``: a timm ``resnet10t`` (64 px, classes real/sd14/sdxl) trained for a few steps to
  tell plain noise (real) from red-tinted (sd14) and blue-tinted (sdxl) noise;
* ``tiny_bundle`` / ``tiny_bundle_zip``: that model exported with an in-graph CAM output and
  written by :func:`core.bundle.write_bundle` with a fitted calibration and golden vectors;
* ``tiny_image_dir``: a folder of such images (``real/``, ``sd14/``, ``sdxl/``, PNG and JPEG);
* ``bundle_cache`` (automatic): bundle zips extract into a temporary cache, never the user's.

:func:`export_reference_bundle` is the reference ONNX export for tests until
``training/export.py`` exists; replace its body with a call to that job then.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_CLASSES = ("real", "sd14", "sdxl")
TINY_SIZE = 64
TINT = {"real": (0, 0, 0), "sd14": (8, -4, -4), "sdxl": (-4, -4, 8)}


def tinted_images(n: int, seed: int = 0, size: int = 80) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` noise images (``size`` x ``size`` RGB uint8) and their class indices (cycling)."""
    rng = np.random.default_rng(seed)
    images, labels = [], np.arange(n) % len(TINY_CLASSES)
    for label in labels:
        base = rng.integers(40, 215, (size, size, 3)).astype(np.int16)
        images.append((base + TINT[TINY_CLASSES[label]]).clip(0, 255).astype(np.uint8))
    return images, labels


def train_tiny_model(steps: int = 15, seed: int = 0):
    """A resnet10t trained for ``steps`` batches on :func:`tinted_images`; in eval mode."""
    import torch

    from core.models import ModelDescription, create_model
    from core.preprocess import PreprocessSpec

    torch.manual_seed(seed)
    spec = PreprocessSpec(input_size=TINY_SIZE)
    model = create_model("resnet10t", len(TINY_CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(steps):
        images, labels = tinted_images(12, seed=1000 + step)
        x = torch.from_numpy(np.stack([spec(image) for image in images]))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    description = ModelDescription("resnet10t", list(TINY_CLASSES), spec, real_class="real")
    return model.eval(), description


def export_reference_bundle(model, description, out_dir: Path, target_risk: float = 0.1) -> Path:
    """Export ``model`` to a bundle: ONNX (opset 17, dynamic batch, in-graph CAM), calibration
    fitted on fresh tinted images, two golden vectors. Reference for ``training/export.py``."""
    import torch

    from core.bundle import GoldenVector, write_bundle
    from core.explain import CamModel
    from core.rejection import choose_threshold, fit_temperature

    spec = description.preprocess
    wrapper = CamModel(model, spec.input_size).eval()
    onnx_path = out_dir.parent / f"{out_dir.name}.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, spec.input_size, spec.input_size)
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(
            wrapper,
            (example,),
            str(onnx_path),
            input_names=["image"],
            output_names=["logits", "cam"],
            dynamic_axes={"image": batch, "logits": batch, "cam": batch},
            opset_version=17,
            dynamo=False,
        )
    images, labels = tinted_images(60, seed=99)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack([spec(image) for image in images]))).numpy()
    temperature = fit_temperature(logits, labels)
    calibration = choose_threshold(
        logits, labels, temperature, "max_softmax", target_risk, chosen_on="tinted noise"
    )
    golden = [GoldenVector(f"g{i}", images[i], source=f"tinted noise {i}") for i in range(2)]
    return write_bundle(
        out_dir,
        onnx_path,
        arch=description.arch,
        class_names=description.class_names,
        real_class=description.real_class,
        preprocess=spec,
        calibration=calibration,
        metrics={"accuracy": float((logits.argmax(1) == labels).mean())},
        parent_run="tests/conftest.py",
        golden_vectors=golden,
    )


@pytest.fixture(scope="session", autouse=True)
def bundle_cache(tmp_path_factory: pytest.TempPathFactory):
    """Bundle zips extract into a temporary cache, not the user's (``DEEPFAKE_STUDIO_CACHE``)."""
    previous = os.environ.get("DEEPFAKE_STUDIO_CACHE")
    os.environ["DEEPFAKE_STUDIO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ["DEEPFAKE_STUDIO_CACHE"])
    if previous is None:
        os.environ.pop("DEEPFAKE_STUDIO_CACHE", None)
    else:
        os.environ["DEEPFAKE_STUDIO_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_model():
    """``(model, ModelDescription)``: see the module docstring. Do not train it further."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_tiny_model()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle folder of ``tiny_model`` (read-only for tests: copy it before changing it)."""
    model, description = tiny_model
    return export_reference_bundle(model, description, tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def tiny_bundle_zip(tiny_bundle: Path) -> Path:
    """``tiny_bundle`` zipped (members relative to the bundle folder)."""
    from core.bundle import zip_bundle

    return zip_bundle(tiny_bundle, tiny_bundle.parent / "tiny.zip")


@pytest.fixture(scope="session")
def tiny_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``real/``, ``sd14/``, ``sdxl/`` with 4 tinted images each (PNG and JPEG, 80 x 80)."""
    root = tmp_path_factory.mktemp("images")
    images, labels = tinted_images(12, seed=7)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / TINY_CLASSES[label]
        folder.mkdir(exist_ok=True)
        suffix = "png" if i % 2 else "jpg"
        Image.fromarray(image).save(folder / f"img_{i:02d}.{suffix}", quality=95)
    return root


# ---------------------------------------------------------------------------------------------
# Qt fixtures (GUI shell, job runner, Jobs and Models pages). napari-style leak checks: a test
# that uses ``qtbot`` fails when it leaves a running QThread, pool task, child process or an
# active QTimer behind after its windows are closed.
# ---------------------------------------------------------------------------------------------


def _child_pids() -> set[int]:
    """Live (non-zombie) child processes of this test process (Linux /proc; empty elsewhere)."""
    import os

    pids: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == me:
            pids.add(int(entry.name))
    return pids


@pytest.fixture(autouse=True)
def _fresh_compute_slot():
    """Each test starts with the app's compute slot free (a page a test left behind keeps no
    turn that would hold up the next test's jobs)."""
    yield
    from app.compute_slot import SHARED

    SHARED.reset()


@pytest.fixture(autouse=True)
def _qt_leak_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Track QTimer/QThread/QProcess starts of Qt tests; fail on what is still running at the end."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    from PySide6.QtCore import QProcess, QThread, QTimer
    from PySide6.QtWidgets import QApplication

    started: dict[str, list] = {"timer": [], "thread": [], "process": []}

    def tracking(cls, kind: str):
        original = cls.start

        def start(self, *args, **kwargs):
            started[kind].append(self)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "start", start)

    tracking(QTimer, "timer")
    tracking(QThread, "thread")
    tracking(QProcess, "process")
    children_before = _child_pids()
    yield
    from shiboken6 import isValid

    from app.widgets.background import pool

    for widget in QApplication.topLevelWidgets():
        widget.close()
    QApplication.processEvents()
    problems = []
    if not pool().waitForDone(5000):
        problems.append("background tasks still running")
    QApplication.processEvents()
    live = [o for o in started["process"] if isValid(o) and o.state() != QProcess.NotRunning]
    for process in live:
        process.kill()
        process.waitForFinished(2000)
    if live:
        problems.append(f"{len(live)} QProcess(es) still running")
    threads = [t for t in started["thread"] if isValid(t) and t.isRunning()]
    if threads:
        problems.append(f"{len(threads)} QThread(s) still running")
    timers = [t for t in started["timer"] if isValid(t) and t.isActive()]
    if timers:
        problems.append(f"{len(timers)} QTimer(s) still active after the windows closed")
    leftover = _child_pids() - children_before
    if leftover:
        problems.append(f"child processes left behind: {sorted(leftover)}")
    if problems:
        pytest.fail("Qt leak check: " + "; ".join(problems))


@pytest.fixture
def studio_workspace(tmp_path: Path):
    """A fresh :class:`core.workspace.Workspace` in ``tmp_path/workspace``."""
    from core.workspace import Workspace

    return Workspace.resolve(tmp_path / "workspace")


@pytest.fixture
def fake_job_program() -> list[str]:
    """argv prefix that runs ``tests/fake_job.py`` (torch-free scripted events) as a job."""
    import sys

    return [sys.executable, str(Path(__file__).resolve().parent / "fake_job.py")]


# ---- end of Qt fixtures ----------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Export fixtures (owner: training/export.py). A real fine-tune run (training.finetune.run) of a
# timm resnet10t at 32 px, trained for 3 epochs on generated images of three classes, and its
# bundle written by the export job. Both are read-only for tests: copy before changing them.
# ---------------------------------------------------------------------------------------------
EXPORT_CLASSES = {"real": 30, "sd14": 30, "sdxl": 30}
EXPORT_TRAIN = {"arch": "resnet10t", "img_size": 32, "batch_size": 16, "threads": 1, "lr": 1e-2}


def run_export_job(config: dict, events: list | None = None, cancel=None) -> dict:
    """Run the export job in-process; parsed events are appended to ``events`` when given."""
    import json

    from core.events import EventWriter
    from training.export import run

    class _Sink:
        def write(self, line: str) -> None:
            if events is not None:
                events.append(json.loads(line))

        def flush(self) -> None:
            pass

    emit = EventWriter("test-export", [_Sink()], max_progress_per_s=0)
    return run({"threads": 1, "latency_repeats": 5, **config}, emit, cancel)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished fine-tune run folder (model.json, best.safetensors, split.json, run.json) of a
    resnet10t telling ``real`` noise from ``sd14``/``sdxl`` stripe patterns (40x48 PNG files)."""
    from core.events import EventWriter
    from tests.synthetic import make_image_set
    from training.finetune import run

    root = tmp_path_factory.mktemp("export-run")
    data = make_image_set(root / "data", EXPORT_CLASSES)
    config = {"data": str(data), "out": str(root / "run"), "epochs": 3, **EXPORT_TRAIN}
    run({**config, "workspace": str(root / "ws")}, EventWriter("fixture", []))
    return root / "run"


@pytest.fixture(scope="session")
def exported_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_run`` exported by ``training.export`` to an FP32 bundle folder: ``model.onnx``
    with ``logits`` and ``cam`` outputs, calibration on the val split, 6 golden vectors of the
    three classes, ``verification.json``; a zip of it is at ``<bundle>.zip``."""
    out = tmp_path_factory.mktemp("export-bundle") / "tiny-fp32"
    run_export_job({"run": str(trained_run), "out": str(out), "zip": True})
    return out


@pytest.fixture(scope="session")
def exported_int8_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_run`` exported with ``int8`` (static U8S8 QDQ, calibrated on 24 training
    images): ``model.onnx`` is the INT8 model; the job's events are in ``<bundle>.events.json``."""
    import json

    out = tmp_path_factory.mktemp("export-int8") / "tiny-int8"
    events: list[dict] = []
    run_export_job(
        {"run": str(trained_run), "out": str(out), "int8": True, "calib_images": 24}, events
    )
    out.with_name(out.name + ".events.json").write_text(json.dumps(events), encoding="utf-8")
    return out


# ---- end of export fixtures ------------------------------------------------------------------
