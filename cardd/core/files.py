"""The one way cardd writes a local file, and the one check of a name from elsewhere.

Every output (infer's pictures, JSON and CSV, eval's reports, assess's claims,
exports, checkpoints, plots, dataset descriptions, converted datasets, the Ray
actors' files and cache) is written by `write_file`:

* the bytes go to a temporary file *created exclusively* in the target's folder
  (`O_CREAT | O_EXCL`: a name planted there, link or file, makes the creation fail
  instead of being followed), are synced, then renamed onto the target; a rename
  replaces a link at the target instead of writing through it, so a file is whole
  or absent and lands exactly where it was named;
* with `root`, the target's folder must resolve inside `root`: a link planted in an
  output folder cannot carry a write elsewhere.

A relative name that comes from someone else (an object key, an annotation's
`file_name`, a listing, a URL's path) becomes a path only through `safe_relative`,
which accepts plain names below a folder and refuses everything else: absolute
names and any `.`, `..` or empty part, whatever the platform would make of them.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from cardd.core.errors import CarddError

T = TypeVar("T")


class UnsafeNameError(CarddError):
    """A relative name from elsewhere that could leave its folder."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_PART = ".part"
#: Files are created 0600 by `mkstemp`; written outputs get the usual 0666 & ~umask.
_FILE_MODE = 0o666 & ~_umask()


def safe_relative(name: str | os.PathLike) -> PurePosixPath:
    """`name` as a path below a folder, or a one-line refusal.

    Accepted: `a.jpg`, `inbox/2026/a.jpg`. Refused: empty, absolute (`/x`), any part
    that is empty, `.` or `..` (`a//b`, `./a`, `inbox/../../x`), a NUL character.

    Raises:
        UnsafeNameError: the name, and why.
    """
    text = os.fspath(name)
    if not isinstance(text, str) or not text:
        raise UnsafeNameError(f"{name!r} is not a file name")
    if "\0" in text:
        raise UnsafeNameError(f"{text!r} holds a NUL character")
    if text.startswith("/"):
        raise UnsafeNameError(f"{text!r} is absolute, not a name below a folder")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeNameError(f"{text!r} has an empty, '.' or '..' part; refused")
    return PurePosixPath(*parts)


def inside(root: Path, relative: str | os.PathLike) -> Path:
    """`root / relative` for a name from elsewhere (`safe_relative`'s rules)."""
    return Path(root) / safe_relative(relative)


def check_inside(root: Path, folder: Path) -> None:
    """Refuse `folder` unless it resolves inside `root` (links followed).

    Raises:
        UnsafeNameError: it leads elsewhere (a planted link).
    """
    real_root, real = Path(root).resolve(), Path(folder).resolve()
    if real != real_root and real_root not in real.parents:
        raise UnsafeNameError(f"{folder} leads outside {root} (a link?); refused")


def private_dir(name: str) -> Path:
    """`<user cache>/cardd/<name>` (`$XDG_CACHE_HOME`, else `~/.cache`), created 0700;
    refused unless this user owns it and nobody else may write or read it.

    Raises:
        CarddError: the folder is another user's, or open to others.
    """
    import stat

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    folder = base / "cardd" / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.lstat()
    except OSError as error:
        raise CarddError(f"cannot make {folder}: {error.strerror or error}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise CarddError(
            f"{folder} is not a private folder of this user (a link, another owner, or open "
            "to others); remove it or fix its mode with `chmod 700`"
        )
    return folder


def write_file(
    target: str | os.PathLike,
    data: bytes | str | Callable[[Path], T],
    *,
    root: str | os.PathLike | None = None,
) -> T | None:
    """Write `target` whole: `data` (bytes, or text as UTF-8), or what `data(path)`
    writes to the temporary path it is given (a library that wants a file name:
    `torch.save`, `savefig`, onnx); returns what that function returns.

    The parent folders are created; with `root`, they must lie inside it.

    Raises:
        CarddError: the file cannot be written (one line naming it), or `root` is left.
    """
    target = Path(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if root is not None:
            check_inside(Path(root), parent)
        # the suffix is kept: savefig and others pick the format by it
        fd, name = tempfile.mkstemp(
            dir=parent, prefix=f".{target.stem}.", suffix=f"{_PART}{target.suffix}"
        )
    except OSError as error:
        raise CarddError(f"cannot write {target}: {error.strerror or error}") from None
    partial = Path(name)
    try:
        value = None
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), _FILE_MODE)
            if callable(data):  # the library writes the file by its name; synced after
                stream.close()
                value = data(partial)
            else:
                stream.write(data.encode("utf-8") if isinstance(data, str) else data)
                stream.flush()
                os.fsync(stream.fileno())
        if callable(data):
            with open(partial, "rb") as written:
                os.fsync(written.fileno())
        os.replace(partial, target)
        return value
    except OSError as error:
        raise CarddError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)


#: `write_file`'s temporary names: `.<stem>.<8 random characters>.part<suffix>`.
_PARTIAL_NAME = re.compile(r"^\..*\.[a-z0-9_]{8}\.part(\.[^./]*)?$")


def is_partial(path: Path) -> bool:
    """Whether `path` is a temporary file of `write_file` (never a result): one a
    writer killed mid-write (SIGKILL, a lost machine) could leave behind."""
    return _PARTIAL_NAME.match(path.name) is not None


def unsafe_file_name(name: object) -> str | None:
    """Why an annotation file's `file_name` may not be joined to an image folder (it
    would name a file elsewhere: absolute, `.` or `..` parts, a drive or backslashes;
    `safe_relative`'s rules), else None."""
    from pathlib import PureWindowsPath

    if not isinstance(name, str) or not name.strip():
        return "is not a file name"
    if "\\" in name or PureWindowsPath(name).drive or "\0" in name:
        return "is not a plain relative path"
    try:
        safe_relative(name)
    except UnsafeNameError:
        return "leads outside the image folder"
    return None
