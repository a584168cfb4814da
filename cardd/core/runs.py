"""Output folders of runs: a new one each time, never an earlier run's."""

from __future__ import annotations

from pathlib import Path


def next_run_dir(parent: Path, stem: str = "exp") -> Path:
    """`parent/exp`, else `parent/exp2`, `exp3`, ...: the first that does not exist
    or is empty (an empty folder holds no earlier results)."""
    index = 1
    while True:
        candidate = parent / (stem if index == 1 else f"{stem}{index}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
        index += 1
