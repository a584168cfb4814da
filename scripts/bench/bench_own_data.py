"""How long a user's own small dataset takes on a CPU: train, evaluate and infer with
`tiny_DCN_plus` on 60 photos of 1024x768, one class, no test split.

The photos are `cardd synth-data` ones at phone-photo size (decoding and resizing
cost what a real photo's do; their content is not real damage), relabelled to one
class "damage" with id 0, described by a data file as a user would write it.
Every step is the `cardd` command a user runs, timed from outside (process start
included).

    python scripts/bench/bench_own_data.py [--images 60] [--epochs 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _relabel(root: Path, dest: Path) -> Path:
    """One class, id 0; train and val only; the description file beside it."""
    (dest / "annotations").mkdir(parents=True)
    lines = []
    for split in ("train", "val"):
        coco = json.loads((root / f"annotations/instances_{split}2017.json").read_text())
        coco["categories"] = [{"id": 0, "name": "damage"}]
        for annotation in coco["annotations"]:
            annotation["category_id"] = 0
        (dest / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        images = os.path.relpath(root / f"{split}2017", dest)
        lines += [f"{split}:", f"  annotations: annotations/{split}.json", f"  images: {images}"]
    data = dest / "data.yaml"
    data.write_text("\n".join(lines) + "\n")
    return data


def _timed(*args: str, env: dict) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cardd", *args], env=env, text=True,
                            capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"cardd {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="cardd-own-data-") as tmp:
        tmp = Path(tmp)
        _timed("synth-data", "--dest", str(tmp / "photos"), "--images", str(args.images),
               "--size", "1024x768", env=env)  # fmt: skip
        data = _relabel(tmp / "photos/CarDD_COCO", tmp / "mine")
        train_images = len(json.loads((tmp / "mine/annotations/train.json").read_text())["images"])
        val_images = len(json.loads((tmp / "mine/annotations/val.json").read_text())["images"])
        work_dir = tmp / "run"
        train = _timed("train", "--config", "tiny_DCN_plus", "--data", str(data), "--device",
                       "cpu", "--max-epochs", str(args.epochs), "--work-dir", str(work_dir),
                       "--seed", "0", "-q", env=env)  # fmt: skip
        checkpoint = str(work_dir / f"epoch_{args.epochs}.pth")
        evaluate = _timed("eval", "--checkpoint", checkpoint, "--data", str(data), "--split",
                          "val", "--device", "cpu", "--out", str(tmp / "eval"), "-q",
                          env=env)  # fmt: skip
        infer = _timed("infer", str(tmp / "photos/CarDD_COCO/val2017"), "--checkpoint",
                       checkpoint, "--device", "cpu", "--out-dir", str(tmp / "infer"), "-q",
                       env=env)  # fmt: skip
        metrics = json.loads((tmp / "eval/metrics.json").read_text())
    print(f"{args.images} photos 1024x768, 1 class (id 0), train {train_images} / val "
          f"{val_images}, no test split; tiny_DCN_plus on CPU, {args.threads} threads")  # fmt: skip
    print(f"cardd train, {args.epochs} epochs : {train:7.1f} s ({train / args.epochs:.1f} s/epoch)")
    print(f"cardd eval --split val    : {evaluate:7.1f} s  (box AP {metrics['bbox']['AP']}, "
          f"mask AP {metrics['segm']['AP']})")  # fmt: skip
    print(f"cardd infer ({val_images} photos)    : {infer:7.1f} s")


if __name__ == "__main__":
    main()
