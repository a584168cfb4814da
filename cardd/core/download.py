"""Resumable, verified file downloads.

Every download goes to `<target>.part` first; a rerun resumes it with an HTTP
Range request, and the file is renamed into place only when it is complete
(and, where a hash is known, verified). A dropped connection is retried with
exponential backoff.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from cardd.core.errors import CarddError

CHUNK = 1 << 20
# Small stream reads: what arrived before a dropped connection is on disk for the resume.
STREAM_CHUNK = 1 << 16


def partial_path(target: Path) -> Path:
    """Where the download of `target` accumulates until it is complete."""
    return target.with_name(target.name + ".part")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_connection_error(url: str, error: Exception) -> str:
    text = str(error)
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return f"cannot resolve the host of {url}: are you offline?"
    if "Connection refused" in text:
        return f"connection to {url} refused"
    return f"download of {url} failed: {type(error).__name__}: {text.splitlines()[0][:200]}"


def download(
    url: str,
    target: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download `url` to `target`, resuming `<target>.part` if it exists.

    Args:
        url: http(s) address.
        target: final path; written only once the whole file is there.
        retries: attempts after the first failure (connection drops, 5xx).
        backoff: seconds before the first retry, doubled each time.
        timeout: seconds without data before an attempt is abandoned.
        progress: show a tqdm progress bar.
        verify: called on the complete partial file; raises to reject it
            (the partial file is then deleted).

    Returns:
        `target`.
    """
    import requests
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(target)
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
                if response.status_code == 416 and offset:
                    # Nothing left to fetch: the partial file is already whole.
                    break
                if response.status_code == 404:
                    raise CarddError(f"{url} not found (HTTP 404)")
                response.raise_for_status()
                if offset and response.status_code != 206:
                    offset = 0  # the server ignored Range: start over
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                mode = "ab" if offset else "wb"
                with (
                    open(part, mode) as out,
                    tqdm(
                        total=total,
                        initial=offset,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=target.name,
                        disable=not progress,
                    ) as bar,
                ):
                    for chunk in response.iter_content(STREAM_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                if total is not None and part.stat().st_size < total:
                    raise requests.ConnectionError(
                        f"connection closed after {part.stat().st_size} of {total} bytes"
                    )
            break
        except CarddError:
            raise
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ) as error:
            raise CarddError(f"invalid URL {url!r}: {error}") from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.HTTPError,
            requests.exceptions.ChunkedEncodingError,  # connection dropped mid-body
        ) as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status is not None and 400 <= status < 500:
                raise CarddError(f"{url}: HTTP {status}") from None
            if attempt >= retries:
                raise CarddError(_describe_connection_error(url, error)) from None
            wait = backoff * 2**attempt
            attempt += 1
            print(f"download interrupted ({error}); retry {attempt}/{retries} in {wait:.0f} s")
            time.sleep(wait)
    if verify is not None:
        try:
            verify(part)
        except Exception:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, target)
    return target
