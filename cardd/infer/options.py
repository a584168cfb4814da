"""`cardd infer`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

ENGINES = ("local", "ray")




@dataclass
class InferOptions:
    """Everything `cardd infer` takes: its inputs, then each option declared once
    (`cardd.core.options`): the Click option, this field and its default."""

    inputs: tuple[str, ...]
    config: str | None = options.MODEL_CONFIG.field()
    checkpoint: str = options.CHECKPOINT.field()
    work_dir: Path | None = options.MODEL_WORK_DIR.field()
    out_dir: Path | str | None = Option(
        "--out-dir", "A folder or a URL (s3://bucket/run/). Default: runs/infer/exp, exp2, ...",
        "location",
    ).field()  # fmt: skip
    score_thr: float = options.SCORE_THR.field()
    device: str = options.DEVICE.field()
    batch_size: int = Option(
        "--batch-size", "Images per model call (on a GPU, 4-8 keep it busy).", "int", 1, low=1
    ).field()
    half: bool = options.HALF.field()
    workers: int | None = Option(
        "--workers",
        "Local engine: threads decoding ahead of the model and writing behind it (default: "
        "cores, at most 4; 0: none). Ray engine: model actors (default: one per "
        "--gpus-per-worker GPUs, or per CPU but one).",
        "int",
        low=0,
    ).field()
    recursive: bool = Option(
        "--recursive", "Descend into sub-folders of folder inputs.", "flag"
    ).field()
    visualize: bool = Option(
        "--no-vis", "Skip the annotated images.", "flag", True, dest="visualize"
    ).field()
    exist_ok: bool = options.EXIST_OK.field()
    resume: bool = Option(
        "--resume",
        "Finish an interrupted run into --out-dir: keep every image whose JSON is whole "
        "(same model and threshold), run the rest.",
        "flag",
    ).field()
    engine: str = Option(
        "--engine", "local: this process; ray: a Ray cluster (pip install 'cardd[ray]').",
        "choice", "local", choices=ENGINES,
    ).field()  # fmt: skip
    address: str | None = Option(
        "--address",
        "Ray engine: the cluster (auto, or ray://HOST:10001). Default: a private local one.",
    ).field()
    gpus_per_worker: float = Option(
        "--gpus-per-worker",
        "Ray engine: GPUs per model actor (0: the model on CPU; 0.5: two per GPU).",
        "float",
        0.0,
        low=0.0,
    ).field()
    trust_checkpoint: bool = options.TRUST.field()
