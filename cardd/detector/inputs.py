"""Where photos come from: files, folders, glob patterns and URLs (any fsspec
location) expanded into `InputImage`s with unique, safe output names, and each
read into pixels or the one-line reason it cannot be.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cardd.core import storage
from cardd.core.errors import CarddUsageError, one_line
from cardd.structures.images import (
    UnreadableImage,
    decode_image_bytes,
    is_image_name,
    load_image,
)


@dataclass
class InputImage:
    """An image to process (a local path, or a URL as text) and where its outputs go,
    relative to the output folder."""

    path: Path | str
    relative: PurePosixPath
    #: why its name is refused (`cardd.core.files.safe_relative`): reported as failed, never read
    refused: str | None = None


def _found_at(item: str, recursive: bool, accept) -> list[tuple[Path | str, str]]:
    """The images one input names, each with its output name as found (before it is
    checked and de-duplicated): an object key's text is kept as it is, never normalised."""
    if storage.is_url(item) and storage.local_path(item) is None:
        listed = storage.list_files(item, recursive)
        if listed is not None:
            name = storage.folder_name(item)
            return [(url, f"{name}/{rel}") for url, rel in listed if accept(rel)]
        if glob.has_magic(item.split("://", 1)[1]):
            return [(url, storage.url_name(url)) for url in storage.glob(item)]
        if storage.is_file(item):
            return [(item, storage.url_name(item))]
        raise CarddUsageError(f"input {item} does not exist")
    path = storage.local_path(item)
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        return [
            (file, "/".join((path.resolve().name, *file.relative_to(path).parts)))
            for file in sorted(p for p in path.glob(pattern) if p.is_file() and accept(p))
        ]
    if path.is_file():
        return [(path, path.name)]
    if glob.has_magic(item):
        matches = sorted(Path(m) for m in glob.glob(item, recursive=recursive))
        return [(m, m.name) for m in matches if m.is_file()]
    raise CarddUsageError(f"input {item} does not exist")


def collect_inputs(
    inputs: tuple[str, ...], recursive: bool = False, accept: Callable[[str], bool] = is_image_name
) -> list[InputImage]:
    """Expand files, folders and glob patterns (local or URLs) into images with unique
    relative outputs (`accept`: which names in a folder count; `cardd assess` takes
    videos too).

    A folder's images keep their path under the folder, prefixed with the
    folder's name; a file keeps its name. Where two inputs would still map to
    the same output (same name in two places), the later one gets `_2`, `_3`...
    A name that could leave the output folder (an object key `inbox/../../x.png`,
    see `cardd.core.files.safe_relative`) is kept as a refused input: reported as failed,
    never read or written.
    """
    from cardd.core.files import UnsafeNameError, safe_relative

    found: list[tuple[Path | str, str]] = []
    for item in inputs:
        found.extend(_found_at(item, recursive, accept))
    if not found:
        kind = "images" if accept is is_image_name else "photos or videos"
        raise CarddUsageError(f"no {kind} found in {', '.join(inputs)}")
    taken: set[PurePosixPath] = set()
    images = []
    seen: set[Path | str] = set()
    for path, name in found:
        key = path.resolve() if isinstance(path, Path) else path
        if key in seen:
            continue
        seen.add(key)
        try:
            relative = safe_relative(name)
        except UnsafeNameError as error:
            images.append(InputImage(path, PurePosixPath(f"<refused {len(images)}>"),
                                     refused=f"{path}: its name {error}"))  # fmt: skip
            continue
        unique, n = relative, 1
        while unique in taken:
            n += 1
            unique = relative.with_name(f"{relative.stem}_{n}{relative.suffix}")
        taken.add(unique)
        images.append(InputImage(path, unique))
    return images


def load_input(path: Path | str):
    """The decoded image, or the `UnreadableImage` saying why not (raised in the caller)."""
    try:
        if isinstance(path, str):
            try:
                data = storage.read_bytes(path)
            except Exception as error:  # a missing object, a lost connection: this image
                raise UnreadableImage(f"{path}: {one_line(error)}") from None
            return decode_image_bytes(data, name=path)
        return load_image(path)
    except UnreadableImage as error:
        return error
