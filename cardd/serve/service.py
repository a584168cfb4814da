"""`cardd serve`: the claims service. FastAPI on uvicorn, one model, a web page.

    GET  /             the web page (cardd/serve/web/, nothing from the internet)
    GET  /health       status, model, device, classes: for probes and the page
    POST /v1/detect    multipart `image` -> the JSON of `cardd infer`'s preds/*.json + timing
    POST /v1/annotate  multipart `image` -> the annotated photo (image/jpeg, original size)
    POST /v1/assess    multipart `image` fields and a `video` -> `cardd assess`'s claim.json
    GET  /openapi.json the API's schema (no /docs: Swagger UI would load from a CDN)

The package: `limits` (what the service withstands), `service` (the options and the
model behind one thread: this module), `app` (the HTTP routes, one router per
concern, reading the service from `app.state`), `run` (uvicorn, replicas).

The model runs one request at a time, on its own thread, with the request's
threshold and a detection count that the photo's size allows (no mask below them
is ever pasted); decoding, mask and JSON encoding and drawing run in worker
threads, so the event loop and `/health` stay responsive while the model works.
Access is loopback by default; with an API key, `/v1/*` needs
`Authorization: Bearer KEY` (401 otherwise); `/health` stays open but shows a
caller without the key only status, version, classes and palette. Every error is
JSON: `{"error": "..."}`, 500s included.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.files import write_file
from cardd.serve.limits import Admission, RequestError, detection_budget
from cardd.serve.options import ServeOptions
from cardd.structures.images import is_image_name

if TYPE_CHECKING:
    from cardd.detector.predictor import DamageDetector


class Service:
    """The model and what guards it: one thread that loads and runs it, the options.

    The model is built on that thread too: PyTorch on CPU gives each thread that runs
    it an OpenMP team, and a second team (the main thread's, from loading) spinning
    beside the first made every request ~1.5x slower (measured, scripts/bench/bench_serve.py).
    Requests queue for the thread one at a time.
    """

    def __init__(self, options: ServeOptions) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.options = options
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cardd-model")
        self.detector = self.model_thread.submit(self._load).result()
        self.parts_detector = (
            self.model_thread.submit(self._load_parts).result() if options.parts_model else None
        )
        self.rules, self.thresholds = self._claim_rules()
        self.checkpoint_sha256 = self.detector.model_file.sha256
        self.admission = Admission(
            options.max_queue, options.max_waiting, int(options.max_waiting_mb * 2**20)
        )
        self.replica = 0  # which of `options.replicas` processes this is

    def _load(self) -> DamageDetector:
        from cardd.infer.common import open_detector

        return open_detector(self.options)

    def _load_parts(self) -> DamageDetector:
        from cardd.detector.predictor import DamageDetector

        return DamageDetector(
            checkpoint=self.options.parts_model, device=self.options.device,
            score_thr=self.options.parts_score_thr,
            trust_checkpoint=self.options.trust_parts_model,
        )  # fmt: skip

    def _claim_rules(self):
        """The rules and thresholds of /v1/assess, checked against the damage model as
        `cardd assess` checks them, before the service answers anything."""
        from cardd.assess.rules import load_rules, thresholds_from_metrics

        names = self.detector.classes.names
        rules = load_rules(self.options.rules).for_model(names, self.options.rules is not None)
        given = self.options.thresholds
        thresholds = thresholds_from_metrics(given, names) if given else {}
        return rules, thresholds

    async def assess(self, uploads: list[bytes], names: list[str], score_thr: float,
                     video: tuple[str, bytes] | None = None) -> dict:  # fmt: skip
        """The claim of uploaded photos and a video (name, bytes) (`cardd assess`'s
        claim.json), on the model thread, picture by picture: each photo is decoded,
        run, placed and graded, then its pixels and masks are dropped before the next;
        the video is spooled to a private file and read from there frame by frame
        (bounded by --max-pixels, --max-video-seconds and --max-frames); each picture's
        detections capped by `detection_budget`."""
        import asyncio
        import tempfile

        from cardd.assess.frames import Sampling
        from cardd.assess.pipeline import assess_sources
        from cardd.structures.videos import UnreadableVideo

        options = self.options
        photos = [(name, lambda data=data, name=name: self.decode(data, name))
                  for data, name in zip(uploads, names, strict=True)]  # fmt: skip

        def run() -> dict:
            with tempfile.TemporaryDirectory(prefix="cardd-video-") as spool:
                videos = []
                if video is not None:
                    spooled = Path(spool) / "upload"
                    write_file(spooled, video[1])
                    videos.append((video[0], spooled))
                try:
                    claim = assess_sources(
                        self.detector, photos, videos, self.parts_detector, self.rules,
                        self.thresholds, Sampling(options.fps, options.max_frames),
                        score_thr=score_thr,
                        max_detections=lambda width, height: detection_budget(width, height, None),
                        max_pixels=options.max_pixels, max_seconds=options.max_video_seconds,
                    )  # fmt: skip
                except UnreadableVideo as error:
                    raise RequestError(413 if error.too_large else 400, str(error)) from None
            return claim.to_dict()

        return await asyncio.get_running_loop().run_in_executor(self.model_thread, run)

    def health(self, authorised: bool = True) -> dict:
        """Status for probes and the page; with an API key set, a caller without it
        sees only what the page needs before the key is typed (no paths, no hashes)."""
        from cardd import __version__

        classes = self.detector.classes
        public = {
            "status": "ok",
            "version": __version__,
            "classes": list(classes.names),
            "category_ids": list(classes.ids),
            "palette": [list(c) for c in classes.palette],
            "score_thr": self.options.score_thr,
            "api_key_required": bool(self.options.api_key),
        }
        if not authorised:
            return public
        return {
            **public,
            "config": self.detector.config_source,
            "checkpoint": str(self.detector.checkpoint),
            "checkpoint_sha256": self.checkpoint_sha256,
            "device": self.detector.device,
            "half": self.detector.half,
            "max_queue": self.options.max_queue,
            "in_flight": self.admission.in_flight,
            "max_waiting": self.options.max_waiting,
            "waiting": self.admission.queued,
            "parts_model": str(self.parts_detector.checkpoint) if self.parts_detector else None,
            "replica": {"index": self.replica, "of": self.options.replicas, "pid": os.getpid()},
        }

    def decode(self, data: bytes, name: str):
        from cardd.structures.images import UnreadableImage, decode_image_bytes

        try:
            return decode_image_bytes(data, self.options.max_pixels, name=name or "upload")
        except UnreadableImage as error:
            status = 413 if error.too_large else 400
            raise RequestError(status, str(error)) from None

    async def detect(self, array, name: str, score_thr: float, max_detections: int | None):
        """The model's result for one decoded image, on the model thread; and its ms.
        The photo's detections are capped by `detection_budget` (said in the answer)."""
        import asyncio

        height, width = array.shape[:2]
        budget = detection_budget(width, height, max_detections)

        def run():
            began = time.perf_counter()
            result = self.detector.detect(
                [array], [name], score_thr=score_thr, max_detections=budget
            )[0]
            return result, (time.perf_counter() - began) * 1000

        result, model_ms = await asyncio.get_running_loop().run_in_executor(self.model_thread, run)
        return result, model_ms, budget

    def save(self, data: bytes, name: str, payload: dict) -> None:
        """Keep an upload and its answer in `--save-dir` (only when asked to)."""
        import json

        folder = self.options.save_dir
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        suffix = Path(name).suffix.lower() if is_image_name(name) else ".img"
        write_file(folder / f"{stem}{suffix}", data, root=folder)
        write_file(folder / f"{stem}.json", json.dumps(payload, indent=1), root=folder)


