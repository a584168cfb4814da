"""`cardd assess`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option


@dataclass
class AssessOptions:
    """`cardd assess`: the photos of one claim and the models that read them, each option
    declared once (`cardd.core.options`)."""

    inputs: tuple[str, ...] = ()
    claims: Path | None = Option(
        "--claims",
        "A folder with one subfolder of photos per claim, instead of INPUTS: OUT/<claim>/ "
        "each, and OUT/claims.csv.",
        "path",
    ).field()
    damage_model: str | None = Option(
        "--damage-model", "The damage model (an export or checkpoint).", required=True
    ).field()
    parts_model: str | None = options.PARTS_MODEL.field()
    parts_score_thr: float = options.PARTS_SCORE_THR.field()  # part masks below it are not parts
    rules: Path | None = options.RULES.field()
    thresholds: Path | None = options.THRESHOLDS.field()  # best-F1 per class
    out_dir: Path | str | None = Option(
        "--out-dir", "A folder or URL. Default: runs/assess/exp, exp2, ...", "location"
    ).field()
    device: str = options.DEVICE.field()
    score_thr: float = options.SCORE_THR.but(
        default=0.1,
        help="Detections below this score are not assessed at all (statuses use the "
        "thresholds).",
    ).field()
    exist_ok: bool = options.EXIST_OK.field()
    trust_checkpoint: bool = options.TRUST.field()  # the damage model only
    trust_parts_model: bool = options.TRUST_PARTS.field()  # trust is per file
