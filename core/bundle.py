"""Read and write model bundles (docs/bundle-format.md): ONNX model + metadata + golden vectors.

:func:`load_bundle` accepts a bundle folder or a ``.zip`` of it. A zip is extracted safely (no
absolute paths, ``..``, links or oversized members) into a cache folder named after its sha256,
so opening it again is instant. Loading checks the format, its version, file presence and the
model's sha256 before anything runs, and refuses pickled PyTorch files without reading them.

:func:`write_bundle` is what the export job calls; :func:`verify_golden` proves that a runtime
reproduces the golden vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.errors import UserError
from core.preprocess import PreprocessSpec, load_image
from core.rejection import Calibration
from core.verdict import decide, scores_of

if TYPE_CHECKING:
    from core.inference import Predictor

BUNDLE_FORMAT = "deepfake-studio/bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
MODEL_FILE = "model.onnx"
GOLDEN_DIR = "golden"
GOLDEN_FILE = f"{GOLDEN_DIR}/golden.json"
GOLDEN_TOLERANCE = {"input": 1e-4, "logits": 1e-3, "probs": 1e-4}
MAX_MEMBER_BYTES = 1 << 30
MAX_ZIP_BYTES = 2 << 30
CACHE_ENV = "DEEPFAKE_STUDIO_CACHE"
CACHE_KEEP = 8
"""Extracted bundle zips kept in the cache (least recently used ones are deleted)."""
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


@dataclass
class GoldenVector:
    """One golden vector for :func:`write_bundle`.

    Only ``name`` and ``image`` (the decoded ``HxWx3`` uint8 RGB image, before geometry) are
    required: ``input`` defaults to the bundle's preprocessing of ``image`` and ``logits`` to
    onnxruntime's output of the written model on ``input``.
    """

    name: str
    image: np.ndarray
    source: str = ""
    input: np.ndarray | None = None
    logits: np.ndarray | None = None


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    root: Path
    meta: dict[str, Any]
    class_names: list[str]
    real_class: str
    preprocess: PreprocessSpec
    calibration: Calibration
    model_path: Path
    golden: Path | None = None
    source: Path | None = None
    """What the user opened (the zip for zipped bundles); ``root`` is where the files are."""

    @property
    def arch(self) -> str:
        return str(self.meta.get("arch", "?"))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})

    @property
    def has_cam(self) -> bool:
        return "cam" in self.meta["model"].get("outputs", [])

    def describe(self) -> str:
        """One line, e.g. ``resnet10t fp32, real vs 2 fake classes (sd14, sdxl)``."""
        precision = self.meta["model"].get("precision", "fp32")
        return f"{self.arch} {precision}, {describe_classes(self.class_names, self.real_class)}"


@dataclass
class GoldenCheck:
    """:func:`verify_golden`'s result: the largest differences and whether they are tolerated."""

    input_diff: float
    logits_diff: float
    probs_diff: float
    verdicts_match: bool
    tolerance: dict[str, float]
    vectors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.verdicts_match
            and self.input_diff <= self.tolerance["input"]
            and self.logits_diff <= self.tolerance["logits"]
            and self.probs_diff <= self.tolerance["probs"]
        )

    def summary(self) -> str:
        state = "OK" if self.ok else "MISMATCH"
        return (
            f"golden vectors {state}: {len(self.vectors)} vector(s), max |diff| input "
            f"{self.input_diff:.2e}, logits {self.logits_diff:.2e}, probs {self.probs_diff:.2e}"
        )


# -- reading ----------------------------------------------------------------------------------
def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_classes(class_names: Sequence[str], real_class: str = "real") -> str:
    """A one-line human summary: ``real vs 3 fake classes (sd14, sdxl, mj)``."""
    fakes = [c for c in class_names if c != real_class]
    noun = "fake class" if len(fakes) == 1 else "fake classes"
    return f"{real_class} vs {len(fakes)} {noun} ({', '.join(fakes)})"


def load_bundle(path: str | os.PathLike, cache_dir: Path | None = None) -> Bundle:
    """Open and verify a bundle folder (or its ``bundle.json``) or ``.zip`` (UserError with a
    clear reason otherwise)."""
    source = Path(path).expanduser()
    if source.name == BUNDLE_FILE and source.is_file():
        source = source.parent
    if not source.exists():
        raise UserError(f"model bundle {source} does not exist")
    refuse_pickle(source)
    if source.is_file():
        if source.suffix.lower() == ".onnx":
            raise UserError(
                f"{source.name} is a bare ONNX file; the checker needs its bundle (the folder or "
                ".zip with bundle.json that `deepfake-studio export` writes)"
            )
        if not zipfile.is_zipfile(source):
            if looks_like_zip(source):
                raise UserError(
                    f"{source.name} is a damaged zip (truncated or an incomplete download?)"
                )
            raise UserError(f"{source.name} is neither a bundle folder nor a bundle .zip")
        root = extract_zip(source, cache_dir)
    else:
        root = source
    bundle = read_bundle_dir(root)
    bundle.source = source
    return bundle


def looks_like_zip(path: Path) -> bool:
    """Whether ``path`` starts like a zip archive (even one too damaged to open)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def default_bundle_path() -> Path:
    """``assets/bundles/default`` beside the packages (or inside the PyInstaller bundle)."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    root = Path(frozen_root) if frozen_root else Path(__file__).resolve().parents[1]
    return root / "assets" / "bundles" / "default"


def load_default_bundle() -> Bundle:
    """The bundle shipped with the app, or a UserError saying how to make one."""
    path = default_bundle_path()
    if not (path / BUNDLE_FILE).is_file():
        raise UserError(
            f"no default model bundle at {path}. Pass --model BUNDLE (a bundle folder or .zip), "
            "or train and export one: `deepfake-studio train ...`, then "
            f"`deepfake-studio export RUN_DIR --out {path}`"
        )
    return load_bundle(path)


def refuse_pickle(path: Path) -> None:
    """Refuse pickled PyTorch files by name or content (without unpickling them)."""
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        head = handle.read(2)
    is_pickle = len(head) == 2 and head[0] == 0x80 and head[1] <= 5
    is_torch_zip = False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            is_torch_zip = any(name.endswith("data.pkl") for name in archive.namelist())
    if is_pickle or is_torch_zip or path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(
            f"{path.name} looks like a pickled PyTorch model; it is refused because unpickling "
            "can run arbitrary code. Export it to a bundle instead (deepfake-studio export)"
        )


def read_bundle_dir(root: Path) -> Bundle:
    """Verify and load an extracted bundle folder."""
    meta_path = root / BUNDLE_FILE
    if not meta_path.is_file():
        is_run = (root / "model.json").exists()
        hint = " (it is a training run folder: export it first)" if is_run else ""
        raise UserError(f"{root} is not a model bundle: it has no {BUNDLE_FILE}{hint}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path} is damaged: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise UserError(f"{meta_path} is not a Deepfake Studio bundle description")
    version = meta.get("format_version")
    if type(version) is not int or version != BUNDLE_VERSION:  # true == 1 in Python, not in JSON
        raise UserError(
            f"bundle.json says format_version {version}; this app reads version {BUNDLE_VERSION}"
        )
    try:
        model = meta["model"]
        model_path = root / _member(model["file"])
        class_names = [str(c) for c in meta["class_names"]]
        real_class = str(meta["real_class"])
        preprocess = PreprocessSpec.from_dict(meta["preprocess"])
        calibration = Calibration.from_dict(meta["calibration"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{meta_path} lacks a required field ({exc})") from None
    if len(class_names) < 2 or real_class not in class_names:
        raise UserError(f"{meta_path}: real class {real_class!r} is not among {class_names}")
    if not model_path.is_file():
        raise UserError(f"bundle {root} is incomplete: {model['file']} is missing")
    if sha256_of(model_path) != str(model.get("sha256")).lower():  # hex digits, either case
        raise UserError(f"{model['file']} sha256 mismatch: file modified or damaged")
    golden = root / _member(meta["golden"]) if meta.get("golden") else None
    if golden is not None and not golden.is_file():
        raise UserError(f"bundle {root} is incomplete: {meta['golden']} is missing")
    return Bundle(
        root=root,
        meta=meta,
        class_names=class_names,
        real_class=real_class,
        preprocess=preprocess,
        calibration=calibration,
        model_path=model_path,
        golden=golden,
    )


def _member(name: str) -> PurePosixPath:
    """A relative path inside the bundle, refusing absolute paths and ``..``."""
    member = PurePosixPath(str(name).replace("\\", "/"))
    if member.is_absolute() or ".." in member.parts or ":" in str(member):
        raise UserError(f"bundle refers to {name!r}, outside the bundle")
    return member


# -- zips -------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("deepfake-studio", appauthor=False))


def extract_zip(zip_path: Path, cache_dir: Path | None = None) -> Path:
    """Safely extract a bundle zip into ``<cache>/bundles/<sha256[:16]>``; return the bundle root.

    A zip holding the bundle inside one top-level folder is accepted too.
    """
    digest = sha256_of(zip_path)
    target = (cache_dir or default_cache_dir()) / "bundles" / digest[:16]
    if (target / ".complete").is_file():
        (target / ".complete").touch()  # most recently used: kept by _prune_cache
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        try:
            _extract_members(zip_path, staging)
            (staging / ".complete").write_text(digest, encoding="utf-8")
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _prune_cache(target.parent, keep=target)
    if (target / BUNDLE_FILE).is_file():
        return target
    children = [p for p in target.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / BUNDLE_FILE).is_file():
        return children[0]
    raise UserError(f"{zip_path.name} holds no {BUNDLE_FILE}: not a model bundle")


def _prune_cache(folder: Path, keep: Path) -> None:
    """Delete all but the :data:`CACHE_KEEP` most recently used extractions (and ``keep``)."""
    done = [p for p in folder.iterdir() if (p / ".complete").is_file() and p != keep]
    done.sort(key=lambda p: (p / ".complete").stat().st_mtime, reverse=True)
    for old in done[CACHE_KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _publish(staging: Path, target: Path) -> None:
    """Move a finished extraction into place, unless another process just did the same."""
    try:
        staging.rename(target)
    except OSError:
        if (target / ".complete").is_file():
            return
        shutil.rmtree(target, ignore_errors=True)  # a partial leftover of a killed process
        staging.rename(target)


def _extract_members(zip_path: Path, dest: Path) -> None:
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{zip_path.name} is a damaged zip ({exc})") from None
    with archive:
        members = archive.infolist()
        total = 0
        for info in members:
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UserError(f"{zip_path.name}: member {info.filename!r} is a link (refused)")
            _member(info.filename)
            total += info.file_size
            if info.file_size > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                raise UserError(f"{zip_path.name}: member {info.filename!r} is too large")
        for info in members:
            out = dest / _member(info.filename)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            _copy_limited(archive, info, out)


def _copy_limited(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path) -> None:
    """Copy one member, stopping if it inflates beyond its declared size (a zip bomb)."""
    written = 0
    with archive.open(info) as src, open(out, "wb") as dst:
        while block := src.read(1 << 20):
            written += len(block)
            if written > info.file_size or written > MAX_MEMBER_BYTES:
                raise UserError(f"member {info.filename!r} inflates beyond its declared size")
            dst.write(block)


def zip_bundle(directory: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Zip a bundle folder's contents (relative members; no links, no hidden files)."""
    directory, zip_path = Path(directory), Path(zip_path)
    read_bundle_dir(directory)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            hidden = any(part.startswith(".") for part in file.relative_to(directory).parts)
            itself = file.resolve() in (tmp.resolve(), zip_path.resolve())
            if file.is_file() and not file.is_symlink() and not hidden and not itself:
                archive.write(file, file.relative_to(directory).as_posix())
    tmp.replace(zip_path)
    return zip_path


# -- writing ----------------------------------------------------------------------------------
def write_bundle(
    out_dir: str | os.PathLike,
    onnx_model: str | os.PathLike | bytes,
    *,
    arch: str,
    class_names: Sequence[str],
    real_class: str,
    preprocess: PreprocessSpec,
    calibration: Calibration,
    metrics: dict[str, Any] | None = None,
    parent_run: str | None = None,
    golden_vectors: Sequence[GoldenVector] = (),
    precision: str = "fp32",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a complete bundle folder and return it (verified by :func:`load_bundle`).

    Args:
        out_dir: the bundle folder (created; an existing ``bundle.json`` there is replaced).
        onnx_model: path to the exported ``.onnx`` file, or its bytes. Its input must be named
            ``image``; its outputs ``logits`` and optionally ``cam``.
        golden_vectors: images the runtimes must reproduce (see :class:`GoldenVector`).
        precision: ``fp32`` or ``int8``.
        extra: more top-level ``bundle.json`` fields (never overriding the standard ones).
    """
    import onnx

    out = Path(out_dir)
    (out / GOLDEN_DIR).mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    if isinstance(onnx_model, bytes):
        model_path.write_bytes(onnx_model)
    elif Path(onnx_model).resolve() != model_path.resolve():
        shutil.copyfile(onnx_model, model_path)
    graph = onnx.load(str(model_path), load_external_data=False)
    outputs = [o.name for o in graph.graph.output]
    inputs = [i.name for i in graph.graph.input]
    if outputs[:1] != ["logits"] or inputs[:1] != ["image"]:
        raise UserError(f"the ONNX model must map 'image' to 'logits', not {inputs} to {outputs}")
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
    meta: dict[str, Any] = dict(extra or {})
    meta.update(
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arch": arch,
            "model": {
                "file": MODEL_FILE,
                "sha256": sha256_of(model_path),
                "bytes": model_path.stat().st_size,
                "precision": precision,
                "opset": opset,
                "input": "image",
                "outputs": outputs,
            },
            "class_names": list(class_names),
            "real_class": real_class,
            "preprocess": preprocess.to_dict(),
            "calibration": calibration.to_dict(),
            "metrics": metrics or {},
            "parent_run": parent_run,
            "golden": GOLDEN_FILE,
        }
    )
    golden = _write_golden(out, model_path, golden_vectors, meta, preprocess, calibration)
    (out / GOLDEN_FILE).write_text(json.dumps(golden, indent=2), encoding="utf-8")
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return read_bundle_dir(out).root


def _write_golden(
    out: Path,
    model_path: Path,
    vectors: Sequence[GoldenVector],
    meta: dict[str, Any],
    preprocess: PreprocessSpec,
    calibration: Calibration,
) -> dict[str, Any]:
    entries = []
    session = None
    for vector in vectors:
        image = np.ascontiguousarray(vector.image, dtype=np.uint8)
        tensor = vector.input if vector.input is not None else preprocess(image)[None]
        tensor = np.ascontiguousarray(tensor, dtype="<f4").reshape(1, 3, *tensor.shape[-2:])
        logits = vector.logits
        if logits is None:
            session = session or _onnx_session(model_path)
            logits = session.run(["logits"], {"image": tensor})[0]
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        probs, values = scores_of(logits, calibration.temperature, calibration.score)
        verdict = decide(logits, calibration, meta["class_names"], meta["real_class"])[0]
        Image.fromarray(image, "RGB").save(out / GOLDEN_DIR / f"{vector.name}.png")
        tensor.tofile(out / GOLDEN_DIR / f"{vector.name}.input.bin")
        entries.append(
            {
                "name": vector.name,
                "image": f"{vector.name}.png",
                "input": f"{vector.name}.input.bin",
                "shape": list(tensor.shape),
                "logits": logits.tolist(),
                "probs": probs[0].tolist(),
                "score": float(values[0]),
                "verdict": verdict.verdict,
                "label": verdict.label,
                "source": vector.source,
            }
        )
    return {"tolerance": dict(GOLDEN_TOLERANCE), "vectors": entries}


def _onnx_session(model_path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


# -- golden check -----------------------------------------------------------------------------
def read_golden(bundle: Bundle) -> dict[str, Any]:
    if bundle.golden is None:
        raise UserError(f"bundle {bundle.root} has no golden vectors")
    return json.loads(bundle.golden.read_text(encoding="utf-8"))


def verify_golden(bundle: Bundle, predictor: Predictor) -> GoldenCheck:
    """Recompute every golden vector: preprocessing from the PNG, logits via ``predictor``."""
    golden = read_golden(bundle)
    tolerance = {**GOLDEN_TOLERANCE, **golden.get("tolerance", {})}
    folder = bundle.golden.parent
    diffs = {"input": 0.0, "logits": 0.0, "probs": 0.0}
    all_match = True
    rows = []
    for entry in golden["vectors"]:
        stored = np.fromfile(folder / _member(entry["input"]), dtype="<f4")
        stored = stored.reshape(entry["shape"])
        recomputed = bundle.preprocess(load_image(folder / _member(entry["image"])))[None]
        logits, _ = predictor.predict_batch(stored)
        probs, _ = scores_of(logits, bundle.calibration.temperature, bundle.calibration.score)
        verdict = decide(logits, bundle.calibration, bundle.class_names, bundle.real_class)[0]
        row = {
            "name": entry["name"],
            "input": float(np.abs(recomputed - stored).max()),
            "logits": float(np.abs(logits[0] - np.asarray(entry["logits"])).max()),
            "probs": float(np.abs(probs[0] - np.asarray(entry["probs"])).max()),
            "verdict": verdict.verdict,
            "expected_verdict": entry["verdict"],
        }
        for key in diffs:
            diffs[key] = max(diffs[key], row[key])
        all_match = all_match and verdict.verdict == entry["verdict"]
        rows.append(row)
    return GoldenCheck(
        input_diff=diffs["input"],
        logits_diff=diffs["logits"],
        probs_diff=diffs["probs"],
        verdicts_match=all_match,
        tolerance=tolerance,
        vectors=rows,
    )
