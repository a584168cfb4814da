"""Start-up of `cardd infer photo.jpg`: what cardd adds to importing mmdet's models.

Side by side, alternating so that a noisy machine's drift hits all alike, each a fresh
process timed from outside: `python -c 'import torch, mmdet.models'` (the floor no cardd
change can go under), `cardd infer photo.jpg` of the tiny model on one 320x240 photo
(import, config, model build, weights, the first image, the outputs), and, with
`--before TREE`, the same command from another checkout of cardd (a `git worktree` of an
older commit) on the same virtual environment. Prints the medians and the differences.

    git worktree add /tmp/cardd-before <commit>
    python scripts/bench/bench_startup.py --before /tmp/cardd-before --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _random_model(path: Path) -> Path:
    """tiny_DCN_plus with random weights (start-up does not depend on what it learned)."""
    code = (
        "import torch\n"
        "from mmdet.apis import init_detector\n"
        "from cardd.structures.classes import METAINFO\n"
        "from cardd.models.configs import load_config\n"
        "cfg = load_config('tiny_DCN_plus')\n"
        "model = init_detector(cfg, checkpoint=None, device='cpu')\n"
        "torch.save({'state_dict': model.state_dict(),\n"
        "            'meta': {'dataset_meta': dict(METAINFO)}}, "
        f"{str(path)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return path


def _seconds(command: list[str], env: dict, cwd: Path) -> float:
    """Wall seconds of `command`, run in `cwd`: not in a checkout, whose `cardd/` would
    come first on `python -m`'s path, ahead of PYTHONPATH."""
    began = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout of cardd to compare")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory(prefix="cardd-startup-") as tmp:
        tmp = Path(tmp)
        import numpy as np
        from PIL import Image

        photo = tmp / "photo.jpg"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(photo)
        model = _random_model(tmp / "tiny.pth")
        runs = {"import torch, mmdet.models": [sys.executable, "-c", "import torch, mmdet.models"]}
        variants = {"cardd infer photo.jpg (now)": None}
        if args.before is not None:
            variants["cardd infer photo.jpg (before)"] = args.before.resolve()
        times: dict[str, list[float]] = {name: [] for name in [*runs, *variants]}
        for number in range(args.rounds):
            for name, command in runs.items():
                times[name].append(_seconds(command, env, tmp))
            order = list(variants.items())
            for name, tree in order if number % 2 == 0 else order[::-1]:  # neither always first
                out = tmp / f"out-{len(times[name])}-{abs(hash(name))}"
                command = [sys.executable, "-m", "cardd", "infer", str(photo), "--config",
                           "tiny_DCN_plus", "--checkpoint", str(model), "--device", "cpu",
                           "--out-dir", str(out), "-q"]  # fmt: skip
                run_env = {**env, "PYTHONPATH": str(tree)} if tree else env
                times[name].append(_seconds(command, run_env, tmp))
            print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
    floor = statistics.median(times["import torch, mmdet.models"])
    print(f"{os.cpu_count()} cores, {args.rounds} rounds, medians:")
    for name, values in times.items():
        median = statistics.median(values)
        extra = f"  (+{median - floor:.2f} s beyond the import)" if name.startswith("cardd") else ""
        print(f"  {name:<32} {median:6.2f} s  [{min(values):.2f}-{max(values):.2f}]{extra}")
    if args.before is not None:
        now = statistics.median(times["cardd infer photo.jpg (now)"]) - floor
        before = statistics.median(times["cardd infer photo.jpg (before)"]) - floor
        print(f"  cardd's own seconds, now / before: {now:.2f} / {before:.2f} = {now / before:.2f}")


if __name__ == "__main__":
    main()
