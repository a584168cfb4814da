"""Which device a command runs on: one rule for train, eval and infer."""

from __future__ import annotations

import os
import re

from cardd.core.errors import CarddError, CarddUsageError


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when PyTorch sees a GPU, else `cpu`; `cuda`/`cuda:N` only with a GPU
    (and N among the visible ones).

    Raises:
        CarddUsageError: not one of auto, cpu, cuda, cuda:N.
        CarddError: a CUDA device asked for that this machine does not have.
    """
    if device == "cpu":
        return "cpu"
    if device != "auto" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise CarddUsageError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    import torch

    if not torch.cuda.is_available():
        if device == "auto":
            return "cpu"
        raise CarddError(f"device {device}: no CUDA GPU is visible to PyTorch")
    if device == "auto":
        return "cuda"
    count = torch.cuda.device_count()
    if device.startswith("cuda:") and int(device.split(":")[1]) >= count:
        visible = ", ".join(f"cuda:{i}" for i in range(count))
        raise CarddError(f"device {device}: PyTorch sees {count} GPU(s) ({visible})")
    return device


def runner_device(device: str, distributed: bool = False) -> str:
    """`resolve_device` for commands run by mmengine's Runner, which takes CUDA whenever it
    sees a GPU, and the current one: there `cpu` hides the GPUs (before CUDA is
    initialised) and `cuda:N` makes GPU N the current one.

    Raises:
        CarddUsageError: `cuda:N` for a distributed run (one GPU per process).
    """
    resolved = resolve_device(device)
    if resolved == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif resolved.startswith("cuda:"):
        if distributed:
            raise CarddUsageError(
                f"--device {resolved} picks one GPU, and a distributed run uses one per "
                "process: choose them with CUDA_VISIBLE_DEVICES and pass --device cuda"
            )
        import torch

        torch.cuda.set_device(int(resolved.split(":")[1]))
    return resolved
