"""Checkpoint files: which to trust, how to load them, which is the newest.

PyTorch >= 2.6 loads with `weights_only=True` by default, and mmengine 0.10.7
(which calls plain `torch.load`) then cannot resume from the checkpoints it
wrote itself: they carry its `HistoryBuffer` and numpy arrays. This module is
the one place that decides, by registering the loader mmengine uses for local
files:

* checkpoints written by `cardd train` (their folder holds the marker file
  `TRUST_MARKER`) and files the user vouches for (`--trust-checkpoint`) are
  unpickled in full;
* anything else loads weights-only, with only numpy's plain data types
  allowed, and only while that one file is read. That takes weight files
  (state dict and metadata) from anywhere, but not a full mmengine checkpoint
  moved out of its work dir: its message hub pickles `builtins.getattr`, which
  stays forbidden. No process-wide environment switch either.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from cardd.errors import CarddError

#: Written by `cardd train` into every work dir it creates.
TRUST_MARKER = ".cardd-work-dir"

_user_trusted: set[Path] = set()


def mark_trusted_work_dir(work_dir: Path) -> None:
    """Record that the checkpoints in `work_dir` are written by cardd's own training."""
    work_dir.mkdir(parents=True, exist_ok=True)
    marker = work_dir / TRUST_MARKER
    if not marker.exists():
        marker.write_text("checkpoints in this folder were written by `cardd train`\n")


def is_trusted(path: Path) -> bool:
    """Whether `path` may be unpickled in full."""
    path = Path(path).expanduser().resolve()
    return path in _user_trusted or (path.parent / TRUST_MARKER).is_file()


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
    """Load a local checkpoint by the rules in the module docstring."""
    import pickle

    import torch

    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint file")
    if is_trusted(path):
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(_weights_only_safe_types()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0][:300]
        raise CarddError(
            f"{path} was not written by `cardd train` and does not load weights-only "
            f"({reason}); if you trust this file, pass --trust-checkpoint"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise CarddError(f"{path} is not a readable checkpoint: {error}") from None


def install_loader() -> None:
    """Make mmengine (Runner.load_checkpoint, resume, mmdet's init_detector) load
    local files through `load_file`. Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_file, force=True)


_EPOCH_OR_ITER = re.compile(r"(?:epoch|iter)_(\d+)\.pth$")


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The newest checkpoint in `work_dir`: mmengine's `last_checkpoint` pointer if
    valid, else the highest `epoch_N.pth`/`iter_N.pth`, else the newest `best_*.pth`."""
    pointer = work_dir / "last_checkpoint"
    if pointer.is_file():
        target = Path(pointer.read_text().strip())
        if not target.is_absolute():
            target = work_dir / target.name
        if target.is_file():
            return target
        if (work_dir / target.name).is_file():  # the work dir was moved
            return work_dir / target.name
    numbered = [
        (int(m.group(1)), p) for p in work_dir.glob("*.pth") if (m := _EPOCH_OR_ITER.search(p.name))
    ]
    if numbered:
        return max(numbered)[1]
    best = sorted(work_dir.glob("best_*.pth"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else None


def resolve_checkpoint(checkpoint: str | Path, work_dir: Path, config_name: str) -> Path:
    """`latest` -> the newest checkpoint in `work_dir`; a path -> itself, checked."""
    if str(checkpoint) == "latest":
        found = latest_checkpoint(work_dir) if work_dir.is_dir() else None
        if found is None:
            raise CarddError(
                f"no checkpoint in {work_dir}: train one with `cardd train --config "
                f"{config_name}` or pass --checkpoint PATH"
            )
        return found
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CarddError(f"checkpoint {path} does not exist")
    return path


def checkpoint_classes(checkpoint: dict) -> tuple[str, ...] | None:
    """The class names a loaded checkpoint was trained for, if it records them."""
    meta = checkpoint.get("meta") or {}
    dataset_meta = meta.get("dataset_meta") or {}
    classes = dataset_meta.get("classes") or meta.get("CLASSES")
    return tuple(classes) if classes else None
