"""Where photos and results live: local paths, or fsspec URLs (`s3://`, `gs://`, `az://`,
`https://`, `file://`), behind one small interface so every command lists, reads and
writes them the same way.

Credentials come from each backend's own environment (AWS profiles and variables,
`AWS_ENDPOINT_URL`, GCP application credentials, Azure's variables); cardd never
prints or stores them. The backends are optional extras: a URL whose backend is not
installed is refused in one line naming the extra.

Writes are whole or absent: a local file is written next to its place and renamed
into it; an object is one PUT (s3fs, gcsfs and adlfs make an object visible only once
its upload completed, multipart uploads included), so no reader sees half a file and
an interrupted upload leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cardd.core.errors import CarddError, CarddUsageError, one_line
from cardd.core.files import inside, is_partial, safe_relative, write_file

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

#: URL scheme -> the extra that installs its fsspec backend (`pip install 'cardd[s3]'`).
EXTRAS = {
    "s3": "s3", "s3a": "s3",
    "gs": "gcs", "gcs": "gcs",
    "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure",
    "http": "http", "https": "http",
}  # fmt: skip

#: A photo larger than this is not read from object storage (a photo is a few MB).
MAX_OBJECT_BYTES = 200 * 1024 * 1024


def is_url(text: str | os.PathLike) -> bool:
    """`s3://b/k`, `https://h/p`, `file:///p`: a URL; `photos/a.jpg`, `C:\\x`: a path."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def local_path(location: str | os.PathLike) -> Path | None:
    """The local path a location names (`file://` URLs included), None for a remote URL."""
    if not is_url(location):
        return Path(location).expanduser()
    if scheme(str(location)) in ("file", "local"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(str(location))  # a URL: `file://localhost/a%20b.jpg` is `/a b.jpg`
        if parts.netloc not in ("", "localhost"):
            raise CarddUsageError(
                f"{location}: a file URL names a path on this machine (file:///path or "
                f"file://localhost/path), not on {parts.netloc!r}"
            )
        return Path(unquote(parts.path))
    return None


def join(location: str | os.PathLike, name: str) -> str:
    """`name` inside a folder path or URL, as text to show."""
    if local_path(location) is not None and not is_url(location):
        return str(Path(location) / name)
    return str(location).rstrip("/") + "/" + name


def shown(asked: str | os.PathLike | None, local: Path) -> Path | str:
    """What to call an output folder: the URL asked for, or the local folder written."""
    return asked if asked is not None and local_path(asked) is None else local


def filesystem(url: str):
    """(fsspec filesystem, path within it) of a remote URL; one line when its backend
    is missing or the scheme is unknown."""
    import fsspec

    protocol = scheme(url)
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        extra = EXTRAS.get(protocol)
        hint = f"pip install 'cardd[{extra}]'" if extra else "install its fsspec backend"
        raise CarddError(f"{protocol}:// paths need an optional backend: {hint}") from None
    except ValueError as error:
        raise CarddUsageError(f"{url}: {one_line(error)}") from None


@contextlib.contextmanager
def storage_errors(where: str) -> Iterator[None]:
    """Errors of a backend as one line naming the location, never a traceback: a
    missing bucket or key, refused credentials, a network failure."""
    try:
        yield
    except CarddError:
        raise
    except FileNotFoundError as error:
        raise CarddError(f"{where}: not found{_reason(error, where)}") from None
    except PermissionError as error:
        raise CarddError(
            f"{where}: permission denied{_reason(error, where)}; check the credentials "
            "in your environment"
        ) from None
    except (OSError, TimeoutError) as error:
        raise CarddError(f"{where}: {one_line(error)}") from None
    except Exception as error:  # botocore's and aiohttp's own errors
        if type(error).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp",
                                                     "google", "azure", "fsspec", "s3fs"):
            raise CarddError(f"{where}: {one_line(error)}") from None
        raise


def _reason(error: BaseException, where: str) -> str:
    """` (what the backend said)`, unless it only repeats the location."""
    text = " ".join(str(error).split())
    inner = where.split("://", 1)[-1]
    if not text or text.strip("'\"") in (where, inner) or text.endswith(inner):
        return ""
    return f" ({text[:200]})"


def read_bytes(location: str | os.PathLike, limit: int = MAX_OBJECT_BYTES) -> bytes:
    """A whole file or object, refused past `limit` bytes before it is read."""
    path = local_path(location)
    if path is not None:
        return path.read_bytes()
    fs, inner = filesystem(str(location))
    with storage_errors(str(location)):
        size = fs.size(inner)
        if size is not None and size > limit:
            raise CarddError(f"{location} is {size / 2**20:.0f} MB: more than a photo can be")
        return fs.cat_file(inner)


def fetch(location: str | os.PathLike, folder: Path) -> Path:
    """A local path to read `location` from: itself if local, else a copy in `folder`."""
    path = local_path(location)
    if path is not None:
        return path
    target = inside(folder, url_name(str(location)))
    write_file(target, read_bytes(location, limit=2**40), root=folder)
    return target


def list_files(location: str, recursive: bool) -> list[tuple[str, str]] | None:
    """(URL, name below `location`) of every file in a remote folder, sorted; None when
    `location` is not a folder. Names are the keys' text, unchecked and unnormalised:
    `cardd.core.files.safe_relative` decides whether one may name an output."""
    fs, inner = filesystem(location)
    if scheme(location) in ("http", "https"):
        return None  # a web server has files, not folders to list
    with storage_errors(location):
        if not fs.isdir(inner):
            return None
        found = fs.find(inner) if recursive else [
            entry["name"] for entry in fs.ls(inner, detail=True) if entry["type"] == "file"
        ]
    root = inner.rstrip("/")
    prefix = location.split("://", 1)[0] + "://"
    out = []
    for name in sorted(found):
        out.append((prefix + name, name[len(root) :].lstrip("/")))
    return out


def is_file(location: str) -> bool:
    fs, inner = filesystem(location)
    with storage_errors(location):
        return fs.isfile(inner)


def glob(pattern: str) -> list[str]:
    fs, inner = filesystem(pattern)
    prefix = pattern.split("://", 1)[0] + "://"
    with storage_errors(pattern):
        return sorted(prefix + name for name in fs.glob(inner) if fs.isfile(name))


def url_name(url: str) -> str:
    """The last part of a URL's path: for `http(s)://` parsed as a URL and decoded
    (`https://h/a%20b.jpg?x=1` -> `a b.jpg`), for object stores the key's own text.
    Unchecked (`..` stays `..`, for `cardd.core.files.safe_relative` to refuse)."""
    from urllib.parse import unquote, urlsplit

    if scheme(url) in ("http", "https"):
        path = unquote(urlsplit(url).path)
    else:
        path = url.split("://", 1)[1]
    return path.rstrip("/").rsplit("/", 1)[-1]


def folder_name(location: str) -> str:
    """The last component of a folder URL (`s3://b/claims/2026-12/` -> `2026-12`)."""
    inner = location.split("://", 1)[1].rstrip("/")
    return PurePosixPath(inner).name or inner


class Folder:
    """An output folder, local or remote: whole-file writes, reads, listing, removal.

    Local folders are written with a rename (a hidden `.name.<id>.part` first), so a
    file is whole or absent; remote ones with one PUT per file.
    """

    def __init__(self, location: str | os.PathLike) -> None:
        self.url = str(location)
        self.local = local_path(location)
        if self.local is None:
            self.fs, self.root = filesystem(self.url)
            self.root = self.root.rstrip("/")

    def __str__(self) -> str:
        return str(self.local) if self.local is not None else self.url

    def __reduce__(self):  # to Ray workers: the location only (absolute: their cwd differs)
        return (Folder, (str(self.local.resolve()) if self.local is not None else self.url,))

    def _remote(self, relative: str) -> str:
        return f"{self.root}/{safe_relative(relative)}"

    def _local(self, relative: str) -> Path:
        return inside(self.local, relative)

    def location(self, relative: str) -> str:
        """Where `relative` is, as a path or URL to show."""
        if self.local is not None:
            return str(self.local / relative)
        return self.url.rstrip("/") + "/" + relative

    def write_bytes(self, relative: str, data: bytes) -> None:
        """A whole file at `relative`, which must name a place inside the folder
        (`cardd.core.files`: no `..`, no absolute name, no link leading out)."""
        if self.local is not None:
            write_file(self._local(relative), data, root=self.local)
            return
        with storage_errors(self.location(relative)):
            self.fs.pipe_file(self._remote(relative), data)

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode("utf-8"))

    def read_bytes(self, relative: str) -> bytes:
        if self.local is not None:
            return self._local(relative).read_bytes()
        with storage_errors(self.location(relative)):
            return self.fs.cat_file(self._remote(relative))

    def read_many(self, relatives: list[str]) -> dict[str, bytes]:
        """Several files at once: a remote backend fetches them concurrently (s3fs and
        gcsfs batch their requests), so reading back thousands of small JSON files on
        `--resume` takes seconds, not one round trip each."""
        if self.local is not None:
            return {name: self._local(name).read_bytes() for name in relatives}
        if not relatives:
            return {}
        paths = {self._remote(name): name for name in relatives}
        with storage_errors(self.url):
            fetched = self.fs.cat(list(paths), on_error="raise")
        return {paths[path]: data for path, data in fetched.items()}

    def files(self) -> set[str]:
        """Every whole file below the folder, as POSIX paths relative to it."""
        if self.local is not None:
            if not self.local.is_dir():
                return set()
            return {
                p.relative_to(self.local).as_posix()
                for p in self.local.rglob("*")
                if p.is_file() and not is_partial(p)
            }
        with storage_errors(self.url):
            try:
                found = self.fs.find(self.root)
            except FileNotFoundError:
                return set()
        return {name[len(self.root) :].lstrip("/") for name in found}

    def remove_partials(self) -> None:
        """Remove the temporary files of writers killed mid-write (`cardd.core.files`): once a
        run's writes are all done, none is anyone's (remote writes leave none)."""
        if self.local is None or not self.local.is_dir():
            return
        for path in self.local.rglob(".*"):
            if path.is_file() and not path.is_symlink() and is_partial(path):
                path.unlink(missing_ok=True)

    def is_empty(self) -> bool:
        if self.local is not None:
            return not self.local.is_dir() or not any(self.local.iterdir())
        with storage_errors(self.url):
            try:
                return not self.fs.ls(self.root)
            except FileNotFoundError:
                return True

    def is_file(self) -> bool:
        """Whether the folder's own location is a file."""
        if self.local is not None:
            return self.local.exists() and not self.local.is_dir()
        with storage_errors(self.url):
            return self.fs.isfile(self.root)

    def remove(self, relative: str) -> None:
        """A file or a whole sub-folder, if there."""
        import shutil

        if self.local is not None:
            target = self._local(relative)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            return
        with storage_errors(self.location(relative)):
            path = self._remote(relative)
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def probe(self) -> None:
        """Write and remove an empty object in a remote folder: a missing bucket or
        refused credentials are found before minutes of model loading, not after."""
        if self.local is None:
            name = f".cardd-probe-{uuid.uuid4().hex[:8]}"
            self.write_bytes(name, b"")
            self.remove(name)

    def make(self) -> None:
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)

    def upload(self, relative: str, source: Path) -> None:
        """Copy a local file in (a remote folder's log, written locally while running)."""
        self.write_bytes(relative, source.read_bytes())

    def upload_tree(self, source: Path) -> None:
        """Every file under a local folder, to the same relative names."""
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            self.write_bytes(path.relative_to(source).as_posix(), path.read_bytes())


@contextlib.contextmanager
def staged_output(location: str | os.PathLike | None) -> Iterator[Path | None]:
    """A local folder to write a command's outputs in: the location itself when local
    (or None), else a temporary folder uploaded file by file once the command
    succeeded (a failed command uploads nothing)."""
    import tempfile

    if location is None or local_path(location) is not None:
        yield None if location is None else local_path(location)
        return
    target = Folder(location)
    with tempfile.TemporaryDirectory(prefix="cardd-out-") as staging:
        yield Path(staging) / "out"
        target.upload_tree(Path(staging) / "out")
