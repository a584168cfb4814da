"""Benchmark: mmcv's deformable convolution (DCN v1) forward on CPU.

Times `mmcv.ops.DeformConv2dPack` on the feature maps DCN+'s ResNet-101 stages
see for a 1333x800 input, then DCN_plus's whole backbone and FPN (where all its
DCN layers are), and says which mmcv build ran (stock, or patched by
scripts/setup/patch_mmcv.py to use all cores). For a before/after comparison, run it
with two interpreters in one go on the same machine, e.g.

    OLD/.venv/bin/python scripts/bench/bench_dcn.py; NEW/.venv/bin/python scripts/bench/bench_dcn.py
"""

from __future__ import annotations

import argparse
import statistics
import time

# (channels, height, width) at strides 4, 8, 16, 32 of a 1333x800 input (the 3x3 conv of each
# ResNet bottleneck works on the stage's mid width: 64, 128, 256, 512).
STAGES = {"c2": (64, 200, 336), "c3": (128, 100, 168), "c4": (256, 50, 84), "c5": (512, 25, 42)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import mmcv
    import mmcv.version
    import torch
    from mmcv.ops import DeformConv2dPack

    torch.manual_seed(0)
    patch = getattr(mmcv.version, "cardd_patch", 0)
    print(
        f"mmcv {mmcv.__version__} (cardd patch level {patch}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    total = 0.0
    with torch.inference_mode():
        for name, (channels, height, width) in STAGES.items():
            conv = DeformConv2dPack(channels, channels, 3, padding=1).eval()
            torch.nn.init.normal_(conv.conv_offset.weight, std=0.01)  # non-trivial offsets
            x = torch.randn(1, channels, height, width)
            conv(x)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                conv(x)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            total += median
            print(f"{name}: {channels}x{height}x{width}  {median * 1000:8.1f} ms")
    print(f"one 3x3 DCN per stage, total: {total * 1000:.1f} ms")

    # The whole DCN+ backbone and FPN (all 33 DCN layers) on one 1333x800 image.
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from cardd.models.configs import load_config

    cfg = load_config("DCN_plus")
    cfg.model.backbone.init_cfg = None
    init_default_scope("mmdet")
    model = MODELS.build(cfg.model).eval()
    image = torch.randn(1, 3, 800, 1344)
    with torch.inference_mode():
        model.extract_feat(image)
        times = []
        for _ in range(max(2, args.repeats // 2)):
            start = time.perf_counter()
            model.extract_feat(image)
            times.append(time.perf_counter() - start)
    print(f"DCN_plus backbone + FPN, 1344x800: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
