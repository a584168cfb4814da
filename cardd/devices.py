"""Which device a command runs on: one rule for train, eval and infer."""

from __future__ import annotations

import os
import re

from cardd.errors import CarddError, CarddUsageError


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when PyTorch sees a GPU, else `cpu`; `cuda`/`cuda:N` only with a GPU.

    Raises:
        CarddUsageError: not one of auto, cpu, cuda, cuda:N.
        CarddError: a CUDA device asked for on a machine without one.
    """
    if device == "cpu":
        return "cpu"
    if device != "auto" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise CarddUsageError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise CarddError(f"device {device}: no CUDA GPU is visible to PyTorch")


def runner_device(device: str) -> str:
    """`resolve_device` for commands run by mmengine's Runner, which takes CUDA whenever it
    sees a GPU: there `cpu` hides the GPUs, before CUDA is initialised."""
    resolved = resolve_device(device)
    if resolved == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    return resolved
