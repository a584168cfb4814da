"""`cardd doctor`: is the stack installed right, and what is missing?"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cardd.core.options import Option
from cardd.models.options import WEIGHTS_DEST

# `cardd doctor`'s options, each declared once.
DATA_ROOT = Option(
    "--data-root", "Where the CarDD dataset is expected.", "path", Path("data/CarDD_COCO")
)
WEIGHTS_DIR = Option(
    "--weights-dir", "Where the pretrained checkpoint is expected.", "path", WEIGHTS_DEST.default
)
OPTIONS = (DATA_ROOT, WEIGHTS_DIR)


@dataclass
class DoctorReport:
    """Versions, capabilities and problems found; `ok` when the stack works."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:
        return None


def _onnxruntime_row() -> str:
    """onnxruntime's version and providers, and whether it runs cardd's ONNX exports."""
    try:
        import onnxruntime
    except ImportError:
        if sys.version_info < (3, 11):
            return ("not available for Python 3.10 (its onnxruntime releases stop at 1.23; "
                    "cardd's models need 1.25's DeformConv): .onnx models need Python 3.11+")
        return "missing: ONNX models need it (pip install cardd installs it)"
    from cardd.detector.onnx_backend import MIN_ONNXRUNTIME

    version = onnxruntime.__version__
    providers = ", ".join(p.replace("ExecutionProvider", "") for p in
                          onnxruntime.get_available_providers())  # fmt: skip
    numbers = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    runs = numbers >= [int(p) for p in MIN_ONNXRUNTIME.split(".")[:2]]
    verdict = "runs cardd's ONNX exports" if runs else f"too old (DeformConv: {MIN_ONNXRUNTIME})"
    return f"{version} ({providers}): {verdict}"


def diagnose(
    data_root: Path = DATA_ROOT.default, weights_dir: Path = WEIGHTS_DIR.default
) -> DoctorReport:
    """Collect what `cardd doctor` prints."""
    from cardd.models.families import START_POINTS

    report = DoctorReport()
    report.rows.append(("python", f"{platform.python_version()} ({sys.executable})"))
    stack = "pip install \"cardd[torch]\" (or `make setup` in a checkout)"
    fixes = {"torch": stack, "torchvision": stack, "mmcv": stack, "mmengine": stack,
             "mmdet": stack}  # fmt: skip
    onnxruntime = _onnxruntime_row()
    if _version("torch") is None and onnxruntime.startswith(tuple("0123456789")):
        # `pip install cardd`: the engine of .onnx models, deliberately without PyTorch
        for module in fixes:
            report.rows.append((module, "not installed (the ONNX runtime: pip install cardd)"))
        report.rows.append(("onnxruntime", onnxruntime))
        report.rows.append(("models", ".onnx exports (cardd export --format onnx) in infer, "
                                      "serve, assess and eval; pip install \"cardd[torch]\" "
                                      "for .pth models, training and export"))
        return report
    for module, fix in fixes.items():
        version = _version(module)
        report.rows.append((module, version or "missing"))
        if version is None:
            report.problems.append(f"{module} is not importable: {fix}")
    report.rows.append(("onnxruntime", onnxruntime))

    ops, kernels, cuda_ops = "no", "missing", "no"
    try:
        import torch
        from mmcv.ops import DeformConv2d, RoIAlign  # noqa: F401
        from mmcv.utils import ext_loader

        from cardd.openmmlab.ext_finder import kernels_in_use

        ext = ext_loader.load_ext("_ext", ["get_compiling_cuda_version"])
        ops = "yes"
        if ext.__file__.endswith(".py"):
            kernels = (
                f"{kernels_in_use()}; `CARDD_OPS=compiled make setup` builds mmcv's own "
                "(~15 min; worth it only for models that need other mmcv ops: DCN_plus runs "
                "faster on CPU with these)"
            )
            cuda_ops = (
                f"yes (torchvision's, CUDA {torch.version.cuda})" if torch.version.cuda else "no"
            )
        else:
            kernels = (
                f"{kernels_in_use()}, patched by cardd; plain `make setup` installs the "
                "mmcv-lite wheel and cardd's kernels instead"
            )
            compiled_cuda = ext.get_compiling_cuda_version()
            cuda_ops = f"yes (CUDA {compiled_cuda})" if compiled_cuda != "not available" else "no"
    except Exception as error:
        report.problems.append(
            f"mmcv's kernels do not load ({type(error).__name__}: {error}): reinstall "
            "with pip install --force-reinstall \"cardd[torch]\" (in a checkout: `make setup`; "
            "for the compiled ones delete ~/.cache/cardd/wheels/mmcv-* first)"
        )
    report.rows.append(("mmcv kernels", kernels))
    report.rows.append(("mmcv CUDA ops", cuda_ops))

    try:
        import torch

        if torch.cuda.is_available():
            names = ", ".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
            report.rows.append(("CUDA", f"{torch.version.cuda}: {names}"))
            if cuda_ops == "no" and ops == "yes":
                report.problems.append(
                    "a GPU is visible but mmcv was built without CUDA ops: run "
                    "`CARDD_OPS=compiled FORCE_CUDA=1 make setup` after deleting the cached CPU "
                    "wheel, or plain `make setup` for torchvision's CUDA kernels"
                )
        else:
            report.rows.append(("CUDA", "not available (CPU only)"))
    except Exception:
        pass

    present = (data_root / "annotations").is_dir()
    fetch = "" if present else " (fetch it with `cardd download-data`)"
    report.rows.append(("dataset", f"{data_root}: {'present' if present else 'missing'}{fetch}"))
    for point in START_POINTS:  # the families, what each is for, and its start weights
        weights = weights_dir / point.filename
        state = "present" if weights.is_file() else (
            f"missing (cardd download-weights --model {point.model})")
        report.rows.append((
            f"{point.config}",
            f"{point.use}; COCO {point.coco}; weights {state}",
        ))  # fmt: skip
    return report
