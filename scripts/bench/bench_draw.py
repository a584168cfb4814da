"""Benchmark: drawing detections, mmdet's visualizer against cardd's OpenCV routine,
and what pictures add to `cardd infer`.

Same machine, same model outputs, in one run:
1. per image, drawing the same detections with mmdet's `DetLocalVisualizer`
   (matplotlib, what `cardd infer` used before) and with `cardd.visualize.draw.draw_detections`,
   interleaved; the ratio is old / new;
2. `cardd infer` on the same images with pictures and with `--no-vis` (the ratio
   is the cost of pictures; target <= 1.3 on CPU at `--score-thr 0`).

Without --checkpoint the model has random weights: at `--score-thr 0` it keeps its
maximum number of detections per image (tiny_DCN_plus: 50, DCN_plus: 100), each
with a full-size mask, which is what makes drawing expensive.

    python scripts/bench/bench_draw.py                                   # tiny_DCN_plus
    python scripts/bench/bench_draw.py --sizes 1024x1024,2016x1512 --images 3
    python scripts/bench/bench_draw.py --max-per-img 100      # 100 detections, as DCN_plus keeps
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402


def mmdet_drawing(detector):
    """mmdet's visualizer as `cardd infer` built it before (the config's visualizer)."""
    from mmdet.registry import VISUALIZERS

    cfg = dict(detector.model.cfg.visualizer)
    cfg["name"] = "bench-draw"
    cfg["vis_backends"] = None
    visualizer = VISUALIZERS.build(cfg)
    visualizer.dataset_meta = detector.model.dataset_meta

    def draw(image_bgr, sample, score_thr):
        visualizer.add_datasample(
            "bench", image_bgr[:, :, ::-1], sample, draw_gt=False, show=False,
            pred_score_thr=score_thr,
        )  # fmt: skip
        return visualizer.get_image()

    return draw


def time_infer(images, config, checkpoint, out: Path, visualize: bool, score_thr: float) -> float:
    from cardd.infer.local import run_inference
    from cardd.infer.options import InferOptions

    summary = run_inference(
        InferOptions(
            inputs=tuple(str(p) for p in images),
            config=config,
            checkpoint=str(checkpoint),
            out_dir=out,
            device="cpu",
            score_thr=score_thr,
            visualize=visualize,
        )
    )
    return summary.seconds / summary.processed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny_DCN_plus")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--sizes", default="1024x1024,2016x1512", help="WxH,WxH of the images")
    parser.add_argument("--images", type=int, default=2, help="per size")
    parser.add_argument("--score-thr", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--max-per-img", type=int, help="detections kept per image (DCN_plus: 100, tiny: 50)"
    )
    args = parser.parse_args()

    from cardd import DamageDetector
    from cardd.detector.torch_backend import _SampleDetections
    from cardd.structures.images import load_image
    from cardd.visualize.draw import draw_detections

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = []
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            folder = tmp / size
            folder.mkdir()
            images += make_images(folder, args.images, width, height)
        if args.max_per_img:  # the same model keeping more (or fewer) detections
            from cardd.models.configs import resolve_config

            derived = tmp / f"{Path(args.config).stem}_max{args.max_per_img}.py"
            derived.write_text(
                f"_base_ = {str(resolve_config(args.config))!r}\n"
                f"model = dict(test_cfg=dict(rcnn=dict(max_per_img={args.max_per_img})))\n"
            )
            args.config = str(derived)
        checkpoint = args.checkpoint or random_checkpoint(args.config, tmp / "random.pth")
        detector = DamageDetector(args.config, checkpoint, device="cpu", score_thr=args.score_thr)
        old_draw = mmdet_drawing(detector)

        old, new, counts = [], [], []
        for path in images:
            array = load_image(path)
            sample = detector.backend.forward([array])[0]
            detections = detector._detections(_SampleDetections(sample), args.score_thr)
            counts.append(len(detections))
            for _ in range(args.repeats):
                started = time.perf_counter()
                old_draw(array, sample, args.score_thr)
                old.append(time.perf_counter() - started)
                started = time.perf_counter()
                draw_detections(array, detections, detector.classes)
                new.append(time.perf_counter() - started)

        with_vis = time_infer(images, args.config, checkpoint, tmp / "vis", True, args.score_thr)
        no_vis = time_infer(images, args.config, checkpoint, tmp / "novis", False, args.score_thr)

    print(
        f"{Path(args.config).stem}, sizes {args.sizes}, {len(images)} images, detections {counts}"
    )
    print(f"mmdet DetLocalVisualizer : {statistics.median(old):.3f} s per image (median)")
    print(f"cardd draw_detections    : {statistics.median(new):.3f} s per image (median)")
    print(f"drawing speed-up         : {statistics.median(old) / statistics.median(new):.1f}x")
    print(f"cardd infer with pictures: {with_vis:.3f} s per image")
    print(f"cardd infer --no-vis     : {no_vis:.3f} s per image")
    print(f"pictures cost            : {with_vis / no_vis:.2f}x --no-vis (target <= 1.3)")


if __name__ == "__main__":
    main()
