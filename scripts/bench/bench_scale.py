"""Images per second of `cardd infer --engine local` against `--engine ray` on this
machine: the same model, the same photos, the command a user runs, timed from outside.

Each engine runs over N and 2N photos; the rate is N / (time(2N) - time(N)), so
what does not grow with the photos (process start, model loads, Ray's start) cancels
out and is reported on its own. The photos are `cardd synth-data` ones at CarDD's
photo size (1024x768: decoding, resizing and drawing cost what a real photo's do).
The model is a `cardd export` of `tiny_DCN_plus` trained for one epoch on them (its
speed, not its accuracy, matters here). The engines run one after the other,
alternating, best of `--rounds`.

    python scripts/bench/bench_scale.py [--images 40] [--rounds 2] [--workers 2]

The Ray engine starts a private local cluster each run (no --address), with
`--workers` model actors of one CPU thread each; the local engine is one process
with PyTorch's default threads (one per core) and decoding threads, and again with
OMP_NUM_THREADS=1 (`local-1`: PyTorch on one thread, as in each actor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cardd(*args: str, env=None) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cardd", *map(str, args)], text=True,
                            capture_output=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"cardd {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def _photos(source: Path, dest: Path, count: int) -> Path:
    """`count` photos (the synthetic ones over and over, under new names)."""
    dest.mkdir(parents=True)
    images = sorted(source.rglob("*.jpg"))
    for n in range(count):
        shutil.copy(images[n % len(images)], dest / f"{n:05d}.jpg")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="N (and 2N) photos per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="Ray model actors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cardd-bench-scale-") as tmp:
        tmp = Path(tmp)
        print("preparing: synthetic photos at 1024x768, a tiny model trained 1 epoch")
        _cardd("synth-data", "--dest", tmp / "data", "--images", "24", "--size", "1024x768", "-q")
        root = tmp / "data" / "CarDD_COCO"
        _cardd("train", "--config", "tiny_DCN_plus", "--data-root", root, "--work-dir",
               tmp / "run", "--max-epochs", "1", "--device", "cpu", "-q")  # fmt: skip
        model = tmp / "tiny.pth"
        _cardd("export", "--checkpoint", tmp / "run" / "epoch_1.pth", "--out", model, "-q")
        sets = {n: _photos(root, tmp / f"photos_{n}", n) for n in (args.images, 2 * args.images)}
        engines = {
            "local": ([], {}),
            "local-1": ([], {"OMP_NUM_THREADS": "1"}),  # PyTorch on one thread, as in an actor
            "ray": (["--engine", "ray", "--workers", str(args.workers)], {}),
        }
        times: dict[tuple[str, int], list[float]] = {}
        run = 0
        for _ in range(args.rounds):
            for name, (extra, env) in engines.items():
                for n, photos in sets.items():
                    run += 1
                    out = tmp / f"out_{run}"
                    seconds = _cardd("infer", photos, "--checkpoint", model, "--device", "cpu",
                                     "--out-dir", out, "-q", *extra,
                                     env={**os.environ, **env})  # fmt: skip
                    times.setdefault((name, n), []).append(seconds)
                    processed = json.loads((out / "summary.json").read_text())["images_processed"]
                    assert processed == n, (name, n, processed)
                    print(f"  {name:7s} {n:4d} photos: {seconds:6.1f} s")
    n = args.images
    print(f"\n{'engine':8s} {'img/s':>7s} {'fixed s':>8s}   ({n} vs {2 * n} photos, best of "
          f"{args.rounds})")  # fmt: skip
    rates = {}
    for name in engines:
        small, large = min(times[(name, n)]), min(times[(name, 2 * n)])
        rates[name] = n / (large - small)
        fixed = small - n / rates[name]
        print(f"{name:8s} {rates[name]:7.2f} {fixed:8.1f}")
    print(f"\nray / local time per photo: {rates['local'] / rates['ray']:.2f}x")


if __name__ == "__main__":
    main()
