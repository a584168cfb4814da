# ruff: noqa: E501  (the mutations are lines of code, kept whole to be found)
"""Mutation check of the kernel convention tests: each convention broken on purpose in
`cardd/openmmlab/kernels.py`, the reference and golden tests run, the file restored.

Every mutation must make tests fail (a test module that passes a broken kernel proves
nothing). Run with the default kernels installed, on a clean working tree:

    python scripts/dev/check_kernel_mutations.py
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[2]
dst = root / "cardd" / "torchvision_ops.py"
src = Path(tempfile.mkdtemp()) / "torchvision_ops.py"
shutil.copy(dst, src)
text = src.read_text()
mutations = {
    "dx/dy swapped (sampled DCN)": ("offsets[:, :, :, 0]\n    x = tap_x.view(taps, 1, 1) + cols.view(1, 1, out_w) + offsets[:, :, :, 1]",
                                    "offsets[:, :, :, 1]\n    x = tap_x.view(taps, 1, 1) + cols.view(1, 1, out_w) + offsets[:, :, :, 0]"),
    "half-pixel shift dropped (RoIAlign forward)": ("sampling_ratio, aligned))  # fmt: skip", "sampling_ratio, False))  # fmt: skip"),
    "half-pixel shift inverted (RoIAlign forward and backward)": ("int(sampling_ratio), bool(aligned),", "int(sampling_ratio), not aligned,"),
    "mask ignored (DCNv2)": ("    if mask is not None:\n        samples = samples * mask", "    if mask is None:\n        samples = samples * mask"),
    "mask squared (DCNv2)": ("samples = samples * mask.to(wide).view(batch, deform_groups, 1, taps, out_h, out_w)",
                             "samples = samples * mask.to(wide).view(batch, deform_groups, 1, taps, out_h, out_w) ** 2"),
    "tap order transposed (DCN)": ("tap_y = (torch.arange(kernel_h, **on) * dilation[0]).repeat_interleave(kernel_w)\n    tap_x = (torch.arange(kernel_w, **on) * dilation[1]).repeat(kernel_h)",
                                   "tap_y = (torch.arange(kernel_h, **on) * dilation[0]).repeat(kernel_w)\n    tap_x = (torch.arange(kernel_w, **on) * dilation[1]).repeat_interleave(kernel_h)"),
    "NMS offset ignored": ("    if offset:\n        boxes = boxes.clone()", "    if False:\n        boxes = boxes.clone()"),
    "focal alpha swapped": ("loss = -positive * alpha * (1 - p)", "loss = -positive * (1 - alpha) * (1 - p)"),
}
caught = True
try:
    for name, (old, new) in mutations.items():
        assert text.count(old) >= 1, name
        dst.write_text(text.replace(old, new))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/openmmlab/test_kernel_reference.py",
             "tests/openmmlab/test_kernel_golden.py"], capture_output=True, text=True, cwd=root)  # fmt: skip
        last = r.stdout.strip().splitlines()[-1]
        print(f"{name}: {last}")
        caught = caught and r.returncode != 0
finally:
    shutil.copy(src, dst)

sys.exit(0 if caught else 1)
