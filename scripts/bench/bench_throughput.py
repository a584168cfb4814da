"""Benchmark: `cardd infer` end to end in images/s, by batch size, precision and pictures,
with the decode-ahead/write-behind threads against without them; and --half's agreement.

Same machine, same images, one run:
1. for each batch size and precision: images/s of `cardd infer` (decoding, model,
   JSON/CSV, and pictures unless --no-vis) with `--workers 0` (everything on the main
   thread, as before the threads) and with the default workers; the ratio is
   after / before. Issue 10's targets (DCN_plus on an H100/H200, CarDD-sized photos):
   >= 20 images/s with --no-vis and >= 12 with pictures.
2. with --half: float16 detections against float32's on the same images: the share of
   float32 detections above --agree-thr found again (same class, box IoU >= 0.9), the
   largest score difference and box shift among them, and their median mask IoU.

Without --checkpoint the model has random weights (speed does not depend on what it
learned; agreement does, so pass the real model for part 2).

    python scripts/bench/bench_throughput.py                                   # CPU, tiny_DCN_plus
    python scripts/bench/bench_throughput.py --config DCN_plus --device cuda --batches 1,4,8 \\
        --half --images 64 --checkpoint checkpoints/cardd_dcn_plus.pth
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402


def images_per_second(images, args, checkpoint, out: Path, **options) -> float:
    from cardd.infer.local import run_inference
    from cardd.infer.options import InferOptions

    summary = run_inference(
        InferOptions(
            inputs=tuple(str(p) for p in images),
            config=args.config,
            checkpoint=str(checkpoint),
            out_dir=out,
            device=args.device,
            score_thr=args.score_thr,
            trust_checkpoint=args.checkpoint is None,
            **options,
        )
    )
    return summary.processed / summary.seconds


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def half_agreement(images, args, checkpoint) -> str:
    import numpy as np

    from cardd import DamageDetector
    from cardd.structures.images import load_image

    arrays = [load_image(p) for p in images]
    common = dict(device=args.device, score_thr=0.0, trust_checkpoint=args.checkpoint is None)
    full = DamageDetector(args.config, checkpoint, **common)
    half = DamageDetector(args.config, checkpoint, half=True, **common)
    found, total, score_diff, box_shift, mask_ious = 0, 0, 0.0, 0.0, []
    for array in arrays:
        (a,), (b,) = full.detect([array]), half.detect([array])
        for d in (d for d in a.detections if d.score >= args.agree_thr):
            total += 1
            same = [e for e in b.detections if e.label == d.label]
            best = max(same, key=lambda e: box_iou(e.bbox_xyxy, d.bbox_xyxy), default=None)
            if best is None or box_iou(best.bbox_xyxy, d.bbox_xyxy) < 0.9:
                continue
            found += 1
            score_diff = max(score_diff, abs(best.score - d.score))
            box_shift = max(
                box_shift, float(np.abs(np.subtract(best.bbox_xyxy, d.bbox_xyxy)).max())
            )
            if d.mask is not None:
                union = (best.mask | d.mask).sum()
                mask_ious.append((best.mask & d.mask).sum() / union if union else 1.0)
    if not total:
        return f"no float32 detection scores >= {args.agree_thr}: nothing to compare"
    median_iou = f"{np.median(mask_ious):.3f}" if mask_ious else "-"
    return (
        f"{found}/{total} float32 detections >= {args.agree_thr} found in float16; among them "
        f"score diff <= {score_diff:.4f}, box shift <= {box_shift:.2f} px, "
        f"median mask IoU {median_iou}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny_DCN_plus")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT (CarDD: ~684k pixels)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batches", default="1,4", help="batch sizes, comma-separated")
    parser.add_argument("--half", action="store_true", help="also float16, and its agreement")
    parser.add_argument("--score-thr", type=float, default=0.3)
    parser.add_argument("--agree-thr", type=float, default=0.3)
    args = parser.parse_args()

    import torch

    from cardd.infer.local import default_workers

    width, height = (int(v) for v in args.size.split("x"))
    precisions = [False, True] if args.half else [False]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        images = make_images(tmp / "images", args.images, width, height)
        checkpoint = args.checkpoint or random_checkpoint(args.config, tmp / "random.pth")
        images_per_second(images[:2], args, checkpoint, tmp / "warm-up")  # caches, kernels
        for batch in (int(b) for b in args.batches.split(",")):
            for half in precisions:
                measured = {}
                for visualize in (False, True):
                    for workers in (0, None):
                        out = tmp / f"b{batch}-h{half}-v{visualize}-w{workers}"
                        measured[visualize, workers] = images_per_second(
                            images, args, checkpoint, out, batch_size=batch, half=half,
                            visualize=visualize, workers=workers,
                        )  # fmt: skip
                rows.append((batch, half, measured))
        agreement = half_agreement(images, args, checkpoint) if args.half else None

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"{args.config} on {device} ({os.cpu_count()} cores, torch {torch.__version__}), "
        f"{args.images} images {args.size}, --score-thr {args.score_thr}, "
        f"default workers {default_workers()}"
    )
    print("batch  precision  --no-vis img/s (workers 0 -> default)   pictures img/s (0 -> default)")
    for batch, half, m in rows:
        print(
            f"{batch:>5}  {'float16' if half else 'float32':>9}  "
            f"{m[False, 0]:7.2f} -> {m[False, None]:7.2f} ({m[False, None] / m[False, 0]:.2f}x)"
            f"          {m[True, 0]:7.2f} -> {m[True, None]:7.2f}"
            f" ({m[True, None] / m[True, 0]:.2f}x)"
        )
    if agreement:
        print(f"--half agreement: {agreement}")


if __name__ == "__main__":
    main()
