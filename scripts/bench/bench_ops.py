"""Benchmark: mmcv's compiled kernels against cardd's torchvision kernels, on this machine.

Same process, same tensors, interleaved: each kernel DCN_plus reaches (deformable
convolution at the c3-c5 map sizes of a 1333x800 input, RoIAlign of 1000 boxes,
NMS of 5000 boxes), forward only as in inference; one deformable-convolution
training step (forward and backward); and the whole DCN_plus
inference (random weights, 1024x768 photos) with each backend swapped into
mmcv.ops' modules. Three backends: `compiled` (mmcv's, as patched by cardd),
`torchvision` (cardd's kernels with torchvision's deformable convolution
everywhere, as before CPU sampling) and `cardd` (cardd's kernels: on the CPU the
deformable convolution samples with grid_sample). Needs the compiled mmcv
installed (`CARDD_OPS=compiled make setup`).

    python scripts/bench/bench_ops.py                 # CPU
    python scripts/bench/bench_ops.py --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402

OP_MODULES = ("mmcv.ops.deform_conv", "mmcv.ops.roi_align", "mmcv.ops.nms",
              "mmcv.ops.modulated_deform_conv", "mmcv.ops.focal_loss")  # fmt: skip


def use(backend: str) -> None:
    """Point every mmcv.ops module cardd's models use at `backend`'s kernels."""
    from cardd.openmmlab import kernels as torchvision_ops

    if not hasattr(use, "compiled"):
        use.compiled = importlib.import_module("mmcv.ops.deform_conv").ext_module
        use.cardd_kernel = torchvision_ops._deform_kernel
    kernels = use.compiled if backend == "compiled" else torchvision_ops
    torchvision_ops._deform_kernel = (
        (lambda device: torchvision_ops.torchvision_deform_conv)
        if backend == "torchvision"
        else use.cardd_kernel
    )
    for name in OP_MODULES:
        importlib.import_module(name).ext_module = kernels


BACKENDS = ("compiled", "torchvision", "cardd")


def row(name: str, seconds: dict, unit: str = "ms") -> str:
    scale, width = (1000, 8) if unit == "ms" else (1, 9)
    cells = " ".join(f"{seconds[b] * scale:>{width}.{1 if unit == 'ms' else 2}f}{unit}"
                     for b in BACKENDS)  # fmt: skip
    before = seconds["torchvision"] / seconds["cardd"]
    versus_compiled = seconds["compiled"] / seconds["cardd"]
    return f"{name:<32} {cells} {before:>8.2f}x {versus_compiled:>8.2f}x"


def timed(function, device: str, repeats: int) -> float:
    import torch

    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()

    import mmcv.ops  # noqa: F401
    import torch
    from mmcv.ops import DeformConv2d, batched_nms
    from mmcv.ops.roi_align import roi_align

    kernels = importlib.import_module("mmcv.ops.deform_conv").ext_module
    if kernels.__file__.endswith(".py"):  # mmcv/_ext.py: cardd's kernels stand in
        sys.exit("mmcv's compiled kernels are not installed: CARDD_OPS=compiled make setup")
    device = args.device
    torch.manual_seed(0)
    cases = {}
    for channels, height, width in {"c3": (512, 100, 168), "c4": (1024, 50, 84),
                                             "c5": (2048, 25, 42)}.values():  # fmt: skip
        conv = DeformConv2d(channels // 4, channels // 4, 3, padding=1).to(device).eval()
        x = torch.randn(1, channels // 4, height, width, device=device)
        offset = torch.randn(1, 18, height, width, device=device)
        cases[f"DCN 3x3 {channels // 4}ch {height}x{width}"] = lambda c=conv, a=x, o=offset: c(a, o)
    features = torch.randn(1, 256, 200, 336, device=device)
    xy = torch.rand(1000, 2, device=device) * 300
    rois = torch.cat([torch.zeros(1000, 1, device=device), xy, xy + 40], dim=1)
    cases["RoIAlign 1000 rois 7x7"] = lambda: roi_align(
        features, rois, (7, 7), 0.25, 0, "avg", True
    )
    boxes = torch.cat([xy.repeat(5, 1), xy.repeat(5, 1) + 30], dim=1)
    scores, labels = torch.rand(5000, device=device), torch.randint(0, 6, (5000,), device=device)
    cases["batched NMS 5000 boxes"] = lambda: batched_nms(
        boxes, scores, labels, dict(iou_threshold=0.5)
    )

    training = torch.randn(2, 64, 80, 80, device=device, requires_grad=True)
    training_offset = torch.randn(2, 18, 80, 80, device=device, requires_grad=True)
    training_conv = DeformConv2d(64, 64, 3, padding=1).to(device)

    def dcn_training_step():
        with torch.enable_grad():
            training_conv(training, training_offset).sum().backward()

    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'kernel':<32} {'compiled':>10} {'torchvision':>10} {'cardd':>10} "
          f"{'tv/cardd':>9} {'compiled/cardd':>9}")  # fmt: skip
    with torch.inference_mode():
        for name, run in cases.items():
            seconds = {}
            for backend in BACKENDS:
                use(backend)
                run()  # warm-up
                seconds[backend] = timed(run, device, args.repeats)
            print(row(name, seconds))
        # cardd's patches split mmcv's serial CPU loops over torch's threads; at one thread
        # the patched kernels run the loop exactly as stock mmcv does: before and after.
        if device == "cpu" and torch.get_num_threads() > 1:
            use("compiled")
            threads = torch.get_num_threads()
            for name in ("RoIAlign 1000 rois 7x7", next(iter(cases))):
                torch.set_num_threads(1)
                serial = timed(cases[name], device, args.repeats)
                torch.set_num_threads(threads)
                parallel = timed(cases[name], device, args.repeats)
                print(
                    f"compiled {name}: 1 thread (stock mmcv's loop) {serial * 1000:.1f}ms, "
                    f"{threads} threads {parallel * 1000:.1f}ms: {serial / parallel:.2f}x"
                )
    seconds = {}
    for backend in BACKENDS:  # training: outside inference mode
        use(backend)
        dcn_training_step()
        seconds[backend] = timed(dcn_training_step, device, args.repeats)
    print(row("DCN train step 64ch 80x80 x2", seconds))

    from cardd import DamageDetector
    from cardd.structures.images import load_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = [load_image(p) for p in make_images(tmp, args.images, 1024, 768)]
        checkpoint = random_checkpoint("DCN_plus", tmp / "random.pth")
        detector = DamageDetector("DCN_plus", checkpoint, device=device, score_thr=0.3)
        per_backend = {name: [] for name in BACKENDS}
        for backend in BACKENDS:
            use(backend)
            detector.detect(images[:1])  # warm-up
        for _ in range(args.repeats):
            for backend in BACKENDS:
                use(backend)
                for image in images:
                    per_backend[backend].append(
                        timed(lambda i=image: detector.detect([i]), device, 1)
                    )
    use("cardd")
    full = {name: statistics.median(values) for name, values in per_backend.items()}
    print(row("DCN_plus inference 1024x768", full, unit="s"))


if __name__ == "__main__":
    main()
