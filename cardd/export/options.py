"""`cardd export`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

#: `--format`: PyTorch weights (the default) or an ONNX graph (`cardd.export.onnx`).
FORMATS = ("pth", "onnx")


@dataclass
class ExportOptions:
    """Everything `cardd export` takes, each option declared once (`cardd.core.options`)."""

    out: Path = Option(
        "--out", "The file to write (*.pth or *.onnx).", "path", required=True
    ).field()
    checkpoint: str = options.CHECKPOINT.field()
    config: str | None = options.MODEL_CONFIG.field()
    work_dir: Path | None = options.MODEL_WORK_DIR.field()
    format: str | None = Option(
        "--format",
        "pth: PyTorch weights; onnx: one ONNX graph for onnxruntime (cardd infer/serve run it "
        "without PyTorch). Default: from --out's suffix.",
        "choice",
        choices=FORMATS,
    ).field()
    half: bool = Option("--half", "Store the weights in fp16: half the size (pth).", "flag").field()
    trust_checkpoint: bool = options.TRUST.field()
    force: bool = options.FORCE.but(help="Replace an existing --out file.").field()
