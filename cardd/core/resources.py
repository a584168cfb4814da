"""Where the project's own files are, installed or in a checkout: the configs.

A module of its own, below everything that reads them: `cardd.structures.classes` reads CarDD's
classes from the base config, and `cardd.models.configs` loads configs by name, without
either importing the other.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """The project's `configs/`: inside the package when installed from a wheel,
    beside it in a checkout (editable install)."""
    packaged = _PACKAGE_DIR / "configs"
    return packaged if packaged.is_dir() else _PACKAGE_DIR.parent / "configs"
