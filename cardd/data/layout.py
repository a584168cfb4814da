"""Where datasets live and how they are put in place without half-written states."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import unsafe_file_name

#: The folder every dataset command writes inside its destination.
DATASET_DIR = "CarDD_COCO"


def image_path(image_dir: Path, file_name: object, where: str) -> Path:
    """`image_dir / file_name` for a `file_name` from an annotation file, checked.

    Raises:
        CarddError: the name could lead outside `image_dir` (one line).
    """
    problem = unsafe_file_name(file_name)
    if problem:
        raise CarddError(f"{where}: file_name {file_name!r} {problem}")
    return Path(image_dir) / str(file_name)


def _overlaps(one: Path, other: Path) -> bool:
    """Whether two folders are the same or one holds the other (links followed)."""
    a, b = one.resolve(), other.resolve()
    return a == b or a in b.parents or b in a.parents


@contextmanager
def staged_folder(target: Path, force: bool = False, source: Path | None = None) -> Iterator[Path]:
    """Yield an empty staging folder next to `target`; move it into place on success.

    The staging folder is on the same filesystem, so the final move is one
    rename: `target` is either the old version or the complete new one, never
    half of either. On any error the staging folder is removed and `target`
    (and its parent, if this created it) is left as it was. The result gets the
    usual folder mode (0777 & ~umask), not the staging folder's private 0700.

    Raises:
        CarddError: `target` exists (without `force`), or it is, holds or lies in
            `source`: replacing it would delete what is being read.
    """
    if source is not None and _overlaps(target, source):
        raise CarddError(
            f"the output {target} is, holds or lies in the source {source}: replacing it would "
            "delete the source; choose another output folder"
        )
    if target.exists() and not force:
        raise CarddError(f"{target} already exists; pass --force to replace it")
    parent = target.parent
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        yield staging
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, old / target.name)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_parent:
            try:
                parent.rmdir()
            except OSError:
                pass
        raise
