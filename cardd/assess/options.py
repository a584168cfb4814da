"""`cardd assess`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

#: Frames per second of a video the models may look at: at a slow walk (a car in 30-60
#: s) the view turns a few degrees between samples, so each damage is seen in several
#: frames (what following it needs), and a minute is 120 model calls, the default cap.
VIDEO_FPS = Option(
    "--fps", "Frames per second sampled from a video (before the photo checks).", "float", 2.0,
    low=0.05, high=30,
)  # fmt: skip
#: Frames of one claim the models may see: a longer video is sampled more sparsely so
#: that the cap covers all of it (2 minutes at the default rate).
MAX_FRAMES = Option(
    "--max-frames", "Video frames one claim may give the models (all its videos together).",
    "int", 120, low=1,
)  # fmt: skip


@dataclass
class AssessOptions:
    """`cardd assess`: the photos of one claim and the models that read them, each option
    declared once (`cardd.core.options`)."""

    inputs: tuple[str, ...] = ()
    claims: Path | None = Option(
        "--claims",
        "A folder with one subfolder of photos and videos per claim, instead of INPUTS: "
        "OUT/<claim>/ each, and OUT/claims.csv.",
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
    fps: float = VIDEO_FPS.field()
    max_frames: int = MAX_FRAMES.field()
    exist_ok: bool = options.EXIST_OK.field()
    trust_checkpoint: bool = options.TRUST.field()  # the damage model only
    trust_parts_model: bool = options.TRUST_PARTS.field()  # trust is per file
