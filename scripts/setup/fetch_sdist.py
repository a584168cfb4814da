"""Fetch a package's source distribution from PyPI's simple index and verify it.

`pip download` cannot fetch mmcv's sdist: it runs mmcv's setup.py to read the
metadata, which needs torch in an isolated environment. This reads the index
page instead and checks the sha256 that the index publishes.

Usage: python fetch_sdist.py NAME VERSION DEST_DIR
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.request
from pathlib import Path

INDEX = os.environ.get("CARDD_SIMPLE_INDEX", "https://pypi.org/simple")


def fetch_sdist(name: str, version: str, dest: Path) -> Path:
    filename = f"{name}-{version}.tar.gz"
    with urllib.request.urlopen(f"{INDEX}/{name}/", timeout=60) as page:
        html = page.read().decode()
    match = re.search(rf'href="([^"]*/{re.escape(filename)})#sha256=([0-9a-f]{{64}})"', html)
    if match is None:
        raise SystemExit(f"{filename} not found on {INDEX}/{name}/")
    url, expected = match.groups()
    target = dest / filename
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected:
        partial.unlink()
        raise SystemExit(f"{filename}: sha256 {digest.hexdigest()} != index's {expected}")
    partial.rename(target)
    print(f"[setup] fetched {filename} (sha256 ok)")
    return target


if __name__ == "__main__":
    fetch_sdist(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
