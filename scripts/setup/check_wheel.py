"""The wheel is the product: build it, look inside, install it as a user would, run it.

For each Python asked for (default: the one of `.python-version`):

1. `uv build` makes the wheel and the sdist of this checkout; their contents are
   checked (configs, the web page, the claim rules in; tests, docs, caches out) and
   their sizes printed.
2. A fresh venv outside the checkout, with every compiler on PATH replaced by one that
   fails, gets `pip install "cardd[torch]"` from that wheel, from wheels only (uv's
   `--no-build`: an sdist anywhere in the resolution is an error, not a build).
3. From an empty folder: `cardd doctor`, `cardd synth-data`, one epoch of
   `tiny_DCN_plus`, `cardd infer`, `cardd export --format onnx`; `pip check`.
4. A second venv gets `pip install cardd` (no PyTorch) from the same wheel and runs
   `cardd doctor` and `cardd infer` of that ONNX file; `pip check`; no torch in it.

Prints one line per Python (pass or fail, install seconds, venv sizes) and a Markdown
table at the end (docs/explanation/install.md keeps the latest).

    python scripts/setup/check_wheel.py                          # .python-version
    python scripts/setup/check_wheel.py --python 3.10 3.11 3.12 3.13
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.14.1 torchvision==0.29.1").split()
COMPILERS = ("gcc", "g++", "cc", "c++", "clang", "clang++", "nvcc", "ld")
MUST_HAVE = ("cardd/configs/DCN_plus.py", "cardd/serve/web/index.html",
             "cardd/assess/claim_rules.yaml", "cardd/cli/main.py")  # fmt: skip
MUST_NOT = ("tests/", "docs/", "__pycache__", ".pyc", "scripts/", "site/")


def run(command: list, cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    """Run a command; its output on failure, then raise."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")  # fmt: skip
    return done


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        raise SystemExit("uv is needed: pip install uv (make setup installs it into .venv)")
    return found


def build(out: Path) -> tuple[Path, Path]:
    """The wheel and the sdist of this checkout, their contents checked."""
    run([uv(), "build", "--out-dir", out, ROOT], cwd=ROOT)
    wheel, sdist = next(out.glob("cardd-*.whl")), next(out.glob("cardd-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    missing = [n for n in MUST_HAVE if n not in names]
    stray = [n for n in names if any(bad in n for bad in MUST_NOT)]
    if missing or stray:
        raise RuntimeError(f"wheel contents: missing {missing}, should not hold {stray[:10]}")
    import tarfile

    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    stray = [n for n in members if any(f"/{bad}" in n for bad in ("site/", ".venv", "__pycache__"))]
    if stray:
        raise RuntimeError(f"sdist holds {stray[:10]}")
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, {len(names)} files; "
          f"sdist {sdist.stat().st_size / 1e6:.2f} MB, {len(members)} files")  # fmt: skip
    return wheel, sdist


def no_compilers(folder: Path) -> str:
    """A PATH whose compilers fail: a build from source during the install shows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COMPILERS:
        fake = folder / name
        fake.write_text(f"#!/bin/sh\necho 'check_wheel: {name} called: a build from source' >&2\n"
                        "exit 97\n")  # fmt: skip
        fake.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def interpreter(version: str) -> str:
    """A Python of `version` (3.10...) on this machine: on PATH, else pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob(
        f"{version}.*/bin/python{version}"))  # fmt: skip
    for candidate in filter(None, candidates):
        works = subprocess.run([candidate, "-c", "import sys; print(sys.version)"],
                               capture_output=True, text=True)  # fmt: skip
        if works.returncode == 0 and works.stdout.startswith(version):
            return candidate
    raise RuntimeError(f"no Python {version} on this machine")


def venv(python: str, where: Path) -> Path:
    run([uv(), "venv", "-q", "--python", interpreter(python), where])
    return where / "bin"


def pip_settings() -> tuple[list[str], dict]:
    """uv's options for where pip on this machine installs from (uv_install.py's reading
    of `pip config list`: mirrors, wheel folders, constraints, CA bundle)."""
    import runpy

    helper = runpy.run_path(str(ROOT / "scripts" / "setup" / "uv_install.py"))
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                             capture_output=True, text=True).stdout  # fmt: skip
    return helper["uv_arguments"](helper["pip_config"](listing))


def install(bin_dir: Path, requirements: list[str], env: dict) -> float:
    """Install from wheels only (`--no-build`: an sdist is an error); seconds taken."""
    args, extra_env = pip_settings()
    began = time.perf_counter()
    run([uv(), "pip", "install", "-q", "--no-build", "--compile-bytecode",
         "--python", bin_dir / "python", *args, *requirements],
        env={**env, **extra_env}, timeout=1800)  # fmt: skip
    return time.perf_counter() - began


def size_mb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 2**20


def check(python: str, wheel: Path, work: Path) -> dict:
    env = {**os.environ, "PATH": no_compilers(work / "fake-compilers"), "OMP_NUM_THREADS": "2"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    full = venv(python, work / "full")
    seconds = install(full, [f"cardd[torch] @ {wheel.as_uri()}", *TORCH_SPEC], env)
    cardd = full / "cardd"
    empty = work / "user"
    empty.mkdir()
    run([cardd, "doctor"], cwd=empty, env=env)
    run([cardd, "synth-data", "--dest", "data", "--images", "6"], cwd=empty, env=env)
    run([cardd, "train", "--config", "tiny_DCN_plus", "--data-root", "data/CarDD_COCO",
         "--device", "cpu", "--max-epochs", "1", "--work-dir", "run"],
        cwd=empty, env=env)  # fmt: skip
    run([cardd, "infer", "data/CarDD_COCO/test2017", "--checkpoint", "run/epoch_1.pth",
         "--device", "cpu", "--out-dir", "out"], cwd=empty, env=env)  # fmt: skip
    run([uv(), "pip", "check", "--python", full / "python"], env=env)
    result = {"install_s": seconds, "size_mb": size_mb(work / "full")}
    if python == "3.10":  # onnxruntime's releases for 3.10 stop at 1.23, before DeformConv
        refused = subprocess.run(
            [cardd, "export", "--checkpoint", "run/epoch_1.pth", "--out", "model.onnx"],
            cwd=empty, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if refused.returncode != 1 or "Python 3.11+" not in refused.stderr:
            raise RuntimeError(f"the ONNX export on 3.10 should say why not: {refused.stderr}")
        return result
    run([cardd, "export", "--checkpoint", "run/epoch_1.pth", "--out", "model.onnx"],
        cwd=empty, env=env)  # fmt: skip
    light = venv(python, work / "onnx")
    light_seconds = install(light, [f"cardd @ {wheel.as_uri()}"], env)
    code = ("import importlib.util as u; "
            "print([m for m in ('torch', 'mmcv', 'mmdet', 'mmengine') if u.find_spec(m)])")
    present = run([light / "python", "-c", code], env=env)
    if present.stdout.strip() != "[]":
        raise RuntimeError(f"the ONNX install holds {present.stdout.strip()}")
    run([light / "cardd", "doctor"], cwd=empty, env=env)
    run([light / "cardd", "infer", "data/CarDD_COCO/test2017", "--checkpoint", "model.onnx",
         "--out-dir", "out-onnx"], cwd=empty, env=env)  # fmt: skip
    run([uv(), "pip", "check", "--python", light / "python"], env=env)
    return {**result, "onnx_install_s": light_seconds, "onnx_size_mb": size_mb(work / "onnx")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = (ROOT / ".python-version").read_text().strip()
    parser.add_argument("--python", nargs="+", default=[default])
    args = parser.parse_args()
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="cardd-wheel-") as scratch:
        wheel, _ = build(Path(scratch) / "dist")
        for python in args.python:
            work = Path(scratch) / f"py{python}"
            work.mkdir()
            try:
                result = check(python, wheel, work)
            except Exception as error:  # one Python's failure: say it, go on to the next
                failed = True
                print(f"Python {python}: FAIL: {error}")
                rows.append(f"| {python} | fail | | | | |")
                continue
            onnx = (f"{result['onnx_install_s']:.0f} s | {result['onnx_size_mb']} MB"
                    if "onnx_install_s" in result else
                    "n/a: no onnxruntime >= 1.25 for 3.10 | ")  # fmt: skip
            print(f"Python {python}: pass: cardd[torch] installed in {result['install_s']:.0f} s "
                  f"({result['size_mb']} MB); cardd (ONNX): {onnx.replace(' |', ',')}")  # fmt: skip
            rows.append(f"| {python} | pass | {result['install_s']:.0f} s | "
                        f"{result['size_mb']} MB | {onnx} |")  # fmt: skip
    print("\n| Python | result | `cardd[torch]` install | venv | `cardd` (ONNX) install | venv |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
