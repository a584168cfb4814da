"""The COCO weights cardd's configs start from (`cardd.models.families`): fetch and verify."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from cardd.core.download import download, partial_path, sha256_of
from cardd.core.errors import CarddError
from cardd.models.families import start_point
from cardd.models.options import WEIGHTS_DEST, WEIGHTS_MODEL

DEFAULT_DEST = WEIGHTS_DEST.default

# OpenMMLab names files `<name>-<first 8 hex digits of sha256>.pth`.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|ckpt)$")


def expected_hash_prefix(filename: str) -> str | None:
    """The sha256 prefix an OpenMMLab-style file name carries, if any."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def verify_hash(path: Path, prefix: str) -> None:
    """Raise `CarddError` naming both hashes unless `path`'s sha256 starts with `prefix`."""
    actual = sha256_of(path)
    if not actual.startswith(prefix):
        raise CarddError(
            f"checksum mismatch for {path.name}: expected sha256 {prefix}..., got {actual}; "
            "the download was deleted, try again or check --url"
        )


def download_weights(
    dest: Path = DEFAULT_DEST,
    url: str | None = None,
    force: bool = False,
    progress: bool = True,
    model: str = WEIGHTS_MODEL.default,
) -> Path:
    """Fetch the COCO weights `model` starts from (or the file at `url`) into `dest`,
    verified by the hash in its name.

    An existing file that verifies is kept (unless `force`); a partial download
    is resumed; a file that fails verification never lands in place.

    Returns:
        The checkpoint's path.
    """
    url = url or start_point(model).url
    filename = Path(urlparse(url).path).name
    if not filename:
        raise CarddError(f"cannot tell a file name from the URL {url!r}")
    target = dest / filename
    prefix = expected_hash_prefix(filename)

    def verify(path: Path) -> None:
        if prefix is not None:
            verify_hash(path, prefix)

    if target.exists() and not force:
        try:
            verify(target)
        except CarddError:
            print(f"{target} exists but fails its checksum: downloading it again")
        else:
            print(f"{target} already present" + (" (sha256 ok)" if prefix else ""))
            return target
    if force:
        partial_path(target).unlink(missing_ok=True)
    if prefix is None:
        print(f"warning: {filename} carries no sha256 prefix in its name; it is not verified")
    download(url, target, progress=progress, verify=verify)
    print(f"saved {target}" + (f" (sha256 {prefix}... ok)" if prefix else ""))
    return target
