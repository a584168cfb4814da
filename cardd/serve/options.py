"""`cardd serve`'s options, each declared once: light to import (the command line
reads them for `--help`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.assess.options import MAX_FRAMES, VIDEO_FPS
from cardd.core import options
from cardd.core.options import Option


@dataclass
class ServeOptions:
    """Everything `cardd serve` takes, each option declared once (`cardd.core.options`)."""

    config: str | None = options.MODEL_CONFIG.field()
    checkpoint: str = options.CHECKPOINT.field()
    work_dir: Path | None = options.MODEL_WORK_DIR.field()
    device: str = options.DEVICE.field()
    half: bool = options.HALF.field()
    host: str = Option("--host", "Address to listen on.", default="127.0.0.1").field()
    port: int = Option("--port", "Port to listen on.", "int", 8000, 1, 65535).field()
    score_thr: float = options.SCORE_THR.but(
        help="Default threshold; a request may ask for another (?score_thr=)."
    ).field()
    api_key: str | None = Option(
        "--api-key", "Require 'Authorization: Bearer KEY' on /v1/* (or set CARDD_API_KEY).",
        envvar="CARDD_API_KEY",
    ).field()  # fmt: skip
    max_upload_mb: float = Option(
        "--max-upload-mb", "Largest upload, per photo.", "float", 20.0, low=0.01
    ).field()
    max_pixels: int = Option(
        "--max-pixels", "Refuse larger images from their header, before decoding.", "int",
        50_000_000, low=1,
    ).field()  # fmt: skip
    save_dir: Path | None = Option(
        "--save-dir", "Keep every upload and its JSON here (default: keep none).", "path"
    ).field()
    max_queue: int = Option(
        "--max-queue",
        "Photos at work at once (decoding, model, answer; a claim takes one per photo); "
        "more requests wait in the waiting room.",
        "int", 4, low=1,
    ).field()  # fmt: skip
    max_waiting: int = Option(
        "--max-waiting",
        "Requests that may wait for a place, holding only their uploads; one more is "
        "answered 503 with Retry-After.",
        "int", 16, low=1,
    ).field()  # fmt: skip
    max_waiting_mb: float = Option(
        "--max-waiting-mb", "Bytes of uploads the waiting requests may hold together.",
        "float", 256.0, low=1,
    ).field()  # fmt: skip
    parts_model: str | None = options.PARTS_MODEL.but(
        help="A car-parts model for POST /v1/assess (as cardd assess)."
    ).field()
    parts_score_thr: float = options.PARTS_SCORE_THR.field()
    rules: Path | None = options.RULES.but(
        help="Claim rules for /v1/assess (as cardd assess)."
    ).field()
    thresholds: Path | None = options.THRESHOLDS.but(
        help="A `cardd eval` metrics.json for /v1/assess."
    ).field()
    max_photos: int = Option(
        "--max-photos", "Photos one /v1/assess request may carry (each within --max-upload-mb).",
        "int", 20, low=1,
    ).field()  # fmt: skip
    max_video_mb: float = Option(
        "--max-video-mb", "Largest video one /v1/assess request may carry.", "float", 200.0,
        low=0.01,
    ).field()  # fmt: skip
    max_video_seconds: float = Option(
        "--max-video-seconds", "Longest video /v1/assess reads (refused from its header).",
        "float", 300.0, low=1,
    ).field()  # fmt: skip
    fps: float = VIDEO_FPS.field()
    max_frames: int = MAX_FRAMES.but(
        help="Video frames one /v1/assess request may give the models."
    ).field()
    replicas: int = Option(
        "--replicas",
        "Processes behind the one port, each with its own model (one per GPU: replica k uses "
        "GPU k modulo the GPUs); a replica that dies is started again.",
        "int", 1, low=1,
    ).field()  # fmt: skip
    trust_checkpoint: bool = options.TRUST.field()
    trust_parts_model: bool = options.TRUST_PARTS.field()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * 1024 * 1024)
