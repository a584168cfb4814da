"""`cardd eval`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

SPLITS = ("train", "val", "test")


@dataclass
class EvalOptions:
    """Everything `cardd eval` takes, each option declared once (`cardd.core.options`):
    a model (config, checkpoint, work dir) or any model's COCO results file (`results`),
    scored on a split of a dataset (`data_root`, `data`) or a ground-truth file (`ann`)."""

    config: str | None = options.MODEL_CONFIG.field()
    checkpoint: str = options.CHECKPOINT.field()
    work_dir: Path | None = options.MODEL_WORK_DIR.field()
    split: str = Option("--split", "The split to score.", "choice", "test", choices=SPLITS).field()
    data_root: Path | None = options.DATA_ROOT.field()
    data: Path | None = options.DATA.field()  # a dataset description file (`cardd.data.spec`)
    results: Path | str | None = Option(
        "--results", "Score this COCO results file of any model instead of running a checkpoint.",
        "file_location",
    ).field()  # fmt: skip
    ann: Path | str | None = Option(
        "--ann", "With --results: the ground-truth COCO JSON to score against.", "file_location"
    ).field()
    out: Path | str | None = Option(
        "--out", "Output folder or URL. Default: runs/eval/exp, exp2, ...", "location"
    ).field()
    device: str = options.DEVICE.field()
    save_coco: bool = Option(
        "--save-coco", "Also keep the COCO-format results JSON.", "flag"
    ).field()
    score_thr: float = options.SCORE_THR.but(
        help="Score threshold of the confusion matrix and the report's gallery (AP uses all)."
    ).field()
    iou_thr: float = Option(
        "--iou-thr", "IoU at which the confusion matrix counts a match.", "float", 0.5, 0.05, 0.95
    ).field()
    exist_ok: bool = options.EXIST_OK.field()
    trust_checkpoint: bool = options.TRUST.field()

    def __post_init__(self) -> None:
        # from Python, folders given as text (the command line gives paths)
        for name in ("work_dir", "data_root", "data"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, Path(getattr(self, name)))
