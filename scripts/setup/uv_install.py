"""`uv pip install` into this interpreter's venv, from where pip on this machine installs.

setup_env.sh installs with uv because it installs from a cache of unpacked
wheels: a fresh clone's venv gets torch and its CUDA libraries (5 GB) in under
a second once the machine has installed them once, where pip takes minutes
every time. uv does not read pip's configuration, though, and a machine set up
for pip (a company mirror, an offline wheel folder, a constraints file, a CA
bundle) must install the same way with cardd. So this reads pip's effective
configuration (`pip config list`: environment, then [install], then [global])
and passes it on as uv's options, with pip's "best version from any index"
rule instead of uv's "first index that has the package".

Usage (with the venv's python): python uv_install.py [uv pip install arguments...]
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: pip option -> uv option; every value of a multi-valued pip option becomes one uv option.
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
#: Sections by precedence, highest first (pip: environment over [install] over [global]).
SECTIONS = (":env:", "install", "global")


def pip_config(listing: str) -> dict[str, str]:
    """Parse `pip config list` into {option: value}, the highest-precedence section winning."""
    found: dict[tuple[str, str], str] = {}
    for line in listing.splitlines():
        name, sep, raw = line.partition("=")
        section, dot, option = name.rpartition(".")
        if not sep or not dot:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        found[(section, option)] = str(value)
    config = {}
    for option in {option for _, option in found}:
        for section in SECTIONS:
            if (section, option) in found:
                config[option] = found[(section, option)]
                break
    return config


def uv_arguments(config: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's options and environment for a pip configuration."""
    args: list[str] = []
    for option, flag in OPTIONS.items():
        for value in config.get(option, "").split():
            args += [flag, value]
    if config.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        args.append("--no-index")
    if "extra-index-url" in config or "find-links" in config:
        args += ["--index-strategy", "unsafe-best-match"]
    env = {"SSL_CERT_FILE": config["cert"]} if "cert" in config else {}
    return args, env


def find_uv() -> str:
    local = Path(sys.executable).with_name("uv")
    if local.is_file():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("[setup] ERROR: uv is not installed in the venv (pip install uv)")
    return found


def main(argv: list[str]) -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    args, env = uv_arguments(pip_config(listing))
    # Bytecode compiled at install, as pip does: imports are then as fast as pip's
    # installs make them, also where PYTHONDONTWRITEBYTECODE stops Python caching it.
    command = [
        find_uv(),
        "pip",
        "install",
        "--python",
        sys.executable,
        "--compile-bytecode",
        *args,
        *argv,
    ]
    return subprocess.run(command, env={**os.environ, **env}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
