"""Benchmark: a DCN training step with the forward's graph kept for the backward, or run again.

cardd's kernels used to run every deformable convolution twice per training step (the
backward ran the forward again to differentiate it); now the forward's autograd graph
is kept on the scratch buffer mmcv hands to both (`torchvision_ops._forward_for_backward`).
Same process, same tensors, interleaved, for both kernels (`sampled`: the CPU's,
`torchvision`: the GPU's, run here on this device): the step's time either way, and the
memory the kept graph holds until the backward beyond what the layer keeps anyway (the
storages saved for the backward, found with `torch.autograd.graph.saved_tensors_hooks`,
graph kept minus run again), in float32 and in float16 (what mmcv hands DCN under AMP).

    python scripts/bench/bench_dcn_backward.py                  # CPU
    python scripts/bench/bench_dcn_backward.py --device cuda    # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def held_bytes(layer, x) -> int:
    """Bytes of storages saved for the backward that are not the input's or parameters'."""
    known = {x.untyped_storage().data_ptr()} | {
        p.untyped_storage().data_ptr() for p in layer.parameters()
    }
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    del out
    return sum(size for ptr, size in saved.items() if ptr not in known)


def main() -> None:
    from mmcv.ops import ModulatedDeformConv2dPack

    from cardd.openmmlab import kernels as torchvision_ops

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=80)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    layer = ModulatedDeformConv2dPack(args.channels, args.channels, 3, padding=1).to(device)
    x = torch.randn(2, args.channels, args.size, args.size, device=device, requires_grad=True)
    kernels = {"sampled": torchvision_ops.sampled_deform_conv,
               "torchvision": torchvision_ops.torchvision_deform_conv}  # fmt: skip
    keep_default = torchvision_ops.KEEP_GRAPH_BYTES
    modes = {"graph kept": 2**62, "forward run again": -1}

    def step():
        layer.zero_grad()
        layer(x).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    print(f"DCNv2 {args.channels}ch {args.size}x{args.size} x2, {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    for name, kernel in kernels.items():
        torchvision_ops._deform_kernel = lambda d, k=kernel: k
        times = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, limit in modes.items():
                torchvision_ops.KEEP_GRAPH_BYTES = limit
                step()  # warm-up per mode
                began = time.perf_counter()
                step()
                times[mode].append(time.perf_counter() - began)
        kept, again = (statistics.median(times[m]) for m in modes)
        held = {}
        for mode, limit in modes.items():
            torchvision_ops.KEEP_GRAPH_BYTES = limit
            held[mode, "float32"] = held_bytes(layer, x)
            held[mode, "float16"] = held_bytes(layer.half(), x.detach().half().requires_grad_())
            layer.float()
        fp32 = held["graph kept", "float32"] - held["forward run again", "float32"]
        amp = held["graph kept", "float16"] - held["forward run again", "float16"]
        input_mb = x.numel() * 4 / 2**20
        print(f"{name:<12} step: graph kept {kept * 1000:7.1f} ms, forward run again "
              f"{again * 1000:7.1f} ms ({again / kept:.2f}x); the kept graph holds "
              f"{fp32 / 2**20:.1f} MB more in float32, {amp / 2**20:.1f} MB in float16 "
              f"(the layer's input: {input_mb:.1f} MB)")  # fmt: skip
    torchvision_ops.KEEP_GRAPH_BYTES = keep_default


if __name__ == "__main__":
    main()
