"""Checkpoint files: which may run code when loaded, how to load them, which is the newest.

A `.pth` file is a pickle, and unpickling calls whatever functions the file
names. cardd therefore loads every file weights-only (tensors, plain
containers, numpy's plain data types) with two exceptions, both about one
exact file and never about where it lies:

* a file that is, byte for byte, a checkpoint this user's own `cardd train`
  wrote: training records each checkpoint's sha256 in the user's cardd state
  folder as it saves it (`trust_registry()`), and loading compares the hash of
  the bytes it reads;
* the file the user vouches for (`--trust-checkpoint`, `trusting(path)`).

A marker or any other file next to a checkpoint grants nothing; an edited or
swapped file has another hash. The exceptions exist because mmengine 0.10.7
pickles its `HistoryBuffer` and `builtins.getattr` into training checkpoints,
which PyTorch >= 2.6 refuses weights-only: without them `--resume` could not
work. Weight files (MMDetection's, `cardd export`'s) never need them.

This module is the one loader: `install_loader` registers it for mmengine's
local files (resume, `load_from`, mmdet's `init_detector`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cardd.core.errors import CarddError

_user_trusted: set[Path] = set()
_trusted_digests: set[str] = set()
_HASH_CHUNK = 1 << 20


def state_dir() -> Path:
    """The user's cardd state folder: `$CARDD_STATE`, else `$XDG_STATE_HOME/cardd`,
    else `~/.local/state/cardd`."""
    if os.environ.get("CARDD_STATE"):
        return Path(os.environ["CARDD_STATE"]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base).expanduser() / "cardd"


def trust_registry() -> Path:
    """One line per checkpoint `cardd train` wrote: `<sha256> <path when written>`."""
    return state_dir() / "trusted_checkpoints.txt"


def _sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return _sha256_of(f)


def record_trusted(path: Path) -> str:
    """Record `path`'s current bytes as written by this user's training; returns the hash."""
    return _record_hash(file_sha256(path), Path(path))


def _record_hash(digest: str, path: Path) -> str:
    """Append `<digest> <path>` to the registry with one `write` (atomic for lines this
    short), so concurrent training processes cannot interleave records."""
    registry = trust_registry()
    registry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{digest} {Path(path).resolve()}\n".encode()
    fd = os.open(registry, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return digest


def save_recorded(data: bytes, path: Path) -> str:
    """Write a checkpoint's bytes so that it lands whole and trusted, or not at all.

    The hash recorded is the hash of these bytes, recorded before the file appears
    (a run killed in between leaves an unused record, never an untrusted
    checkpoint of its own); the bytes go to a temporary file beside `path`, synced,
    then renamed into place, so a reader never sees half a checkpoint.
    """
    from cardd.core.files import write_file

    path = Path(path)
    digest = _record_hash(hashlib.sha256(data).hexdigest(), path)
    write_file(path, data)
    return digest


def _recorded_hashes() -> set[str]:
    registry = trust_registry()
    if not registry.is_file():
        return set()
    with open(registry) as f:
        return {line.split(" ", 1)[0] for line in f if len(line) > 64}


def is_recorded(path: Path) -> bool:
    """Whether `path` is byte for byte a checkpoint this user's `cardd train` wrote."""
    return file_sha256(path) in _recorded_hashes()


@contextlib.contextmanager
def trusting(path: Path | None) -> Iterator[None]:
    """Within the block, unpickle `path` in full (the user's explicit opt-in)."""
    if path is None:
        yield
        return
    resolved = Path(path).expanduser().resolve()
    added = resolved not in _user_trusted
    _user_trusted.add(resolved)
    try:
        yield
    finally:
        if added:
            _user_trusted.discard(resolved)


@contextlib.contextmanager
def trusting_sha256(digest: str) -> Iterator[None]:
    """Within the block, unpickle in full the bytes whose sha256 is `digest`, wherever
    they are read from: trust in content already checked (a Ray worker's copy of the
    file the driver opened), which a file swapped afterwards cannot inherit."""
    added = digest not in _trusted_digests
    _trusted_digests.add(digest)
    try:
        yield
    finally:
        if added:
            _trusted_digests.discard(digest)


def _weights_only_safe_types() -> list:
    """numpy's plain data types, which checkpoint metadata may hold besides tensors.

    mmengine's `HistoryBuffer` is not listed: the message hub that holds it also
    pickles `builtins.getattr`, so allowing it would not make such a file load.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def load_file(filename: str | Path, map_location=None):
    """Load a local checkpoint by the rules in the module docstring (mmengine's loader)."""
    return read_checkpoint(filename, map_location)[0]


def read_checkpoint(filename: str | Path, map_location=None) -> tuple[object, str]:
    """Load a local checkpoint by the rules in the module docstring; and its sha256.

    The file is read once, into memory: the bytes that are hashed are the bytes
    that are unpickled, so a file rewritten or swapped while it loads cannot slip
    through.

    Raises:
        CarddError: the file does not load weights-only and is not trusted, or is
            not a checkpoint at all.
    """
    import io
    import pickle

    import torch

    path = Path(filename).expanduser()
    if not path.is_file():
        raise CarddError(f"{path} is not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CarddError(f"cannot read {path}: {error.strerror or error}") from None
    digest = hashlib.sha256(data).hexdigest()
    if path.resolve() in _user_trusted or digest in _trusted_digests:
        return _torch_load(path, io.BytesIO(data), map_location, weights_only=False), digest
    try:
        with torch.serialization.safe_globals(_weights_only_safe_types()):
            return _torch_load(path, io.BytesIO(data), map_location, weights_only=True), digest
    except pickle.UnpicklingError as error:
        refused_global = _refused_global(str(error))
        detail = _weights_only_detail(str(error))
    if digest in _recorded_hashes():
        return _torch_load(path, io.BytesIO(data), map_location, weights_only=False), digest
    if refused_global is None:
        raise CarddError(f"{path} is not a readable checkpoint ({detail})")
    raise CarddError(
        f"{path} holds more than weights (it names {refused_global}, which loading it would "
        "run) and is not a checkpoint your `cardd train` wrote; pass --trust-checkpoint "
        "only if you trust whoever made it, or ask them for a `cardd export` file"
    )


def _refused_global(message: str) -> str | None:
    """The Python object a weights-only load refused (`GLOBAL module.name`), if any."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else None


def _weights_only_detail(message: str) -> str:
    """PyTorch's reason without its boilerplate paragraphs."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("Weights only load failed", "Check the documentation", "Please"))
    ]
    return (useful[0] if useful else lines[0] if lines else "unknown format")[:200]


def _torch_load(path: Path, stream: BinaryIO, map_location, weights_only: bool):
    import pickle

    import torch

    try:
        return torch.load(stream, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as error:
        if weights_only:
            raise  # load_file decides whether the full unpickler may have it
        first = str(error).strip().splitlines()[0][:200]
        raise CarddError(f"{path} is not a readable checkpoint ({first})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else "no data"
        raise CarddError(f"{path} is not a readable checkpoint ({first})") from None


def install_loader() -> None:
    """Make mmengine (Runner.load_checkpoint, resume, mmdet's init_detector) load
    local files through `load_file`. Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_file, force=True)


_EPOCH_OR_ITER = re.compile(r"(?:epoch|iter)_(\d+)\.pth$")


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The newest checkpoint in `work_dir`: the file mmengine's `last_checkpoint` names
    (looked up in `work_dir`), else the highest `epoch_N.pth`/`iter_N.pth`, else the
    newest `best_*.pth`."""
    pointer = work_dir / "last_checkpoint"
    if pointer.is_file():
        # The pointer holds the absolute path it had when written; only its name is
        # used, inside this work dir, so a moved or shared run finds its own file and
        # a pointer can never lead elsewhere.
        target = work_dir / Path(pointer.read_text().strip()).name
        if target.is_file():
            return target
    numbered = [
        (int(m.group(1)), p) for p in work_dir.glob("*.pth") if (m := _EPOCH_OR_ITER.search(p.name))
    ]
    if numbered:
        return max(numbered)[1]
    return best_checkpoint(work_dir)


def best_checkpoint(work_dir: Path) -> Path | None:
    """The `best_*.pth` that mmengine's CheckpointHook kept (`save_best`), newest first."""
    best = sorted(work_dir.glob("best_*.pth"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else None


def resolve_checkpoint(checkpoint: str | Path, work_dir: Path, config_name: str) -> Path:
    """`latest`/`best` -> that checkpoint of `work_dir`; a path -> itself, checked."""
    name = str(checkpoint)
    if name in ("latest", "best"):
        finder = latest_checkpoint if name == "latest" else best_checkpoint
        found = finder(work_dir) if work_dir.is_dir() else None
        if found is None:
            what = "no checkpoint" if name == "latest" else "no best_*.pth checkpoint"
            raise CarddError(
                f"{what} in {work_dir}: train one with `cardd train --config {config_name}`, "
                "pass --work-dir DIR of the run, or --checkpoint PATH"
            )
        return found
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CarddError(f"checkpoint {path} does not exist")
    return path


def checkpoint_classes(checkpoint: dict) -> tuple[str, ...] | None:
    """The class names a loaded checkpoint was trained for, if it records them.

    Raises:
        CarddError: the metadata is not what mmengine writes (dicts and a list of names).
    """
    meta = checkpoint.get("meta") or {}
    dataset_meta = (meta.get("dataset_meta") or {}) if isinstance(meta, dict) else None
    if not isinstance(dataset_meta, dict):
        raise CarddError("its `meta` is not a dict of metadata with a `dataset_meta` dict")
    classes = dataset_meta.get("classes") or meta.get("CLASSES")
    if classes and not (
        isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)
    ):
        raise CarddError(f"its class names are a {type(classes).__name__}, not a list of names")
    return tuple(classes) if classes else None


def checkpoint_class_set(checkpoint: dict):
    """The `ClassSet` (names, ids, colours) a loaded checkpoint records, else None.

    Raises:
        CarddError: the metadata is not what mmengine and cardd write.
    """
    from cardd.structures.classes import ClassSet

    names = checkpoint_classes(checkpoint)
    if names is None:
        return None
    meta = checkpoint.get("meta") or {}
    dataset_meta = dict(meta.get("dataset_meta") or {})
    dataset_meta["classes"] = names
    return ClassSet.from_meta(dataset_meta, "its dataset_meta")
