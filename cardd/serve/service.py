"""`cardd serve`: the claims service. FastAPI on uvicorn, one model, a web page.

    GET  /             the web page (cardd/serve/web/, nothing from the internet)
    GET  /health       status, model, device, classes: for probes and the page
    POST /v1/detect    multipart `image` -> the JSON of `cardd infer`'s preds/*.json + timing
    POST /v1/annotate  multipart `image` -> the annotated photo (image/jpeg, original size)
    GET  /openapi.json the API's schema (no /docs: Swagger UI would load from a CDN)

What it withstands, and how:
* bodies: read as a stream and cut at `--max-upload-mb` (413) whatever the
  Content-Length says; the multipart body is parsed in memory, so no upload
  touches the disk unless `--save-dir` is given;
* images: the header is read first and more than `--max-pixels` is refused (413)
  before any pixel is decoded; non-images, empty and truncated files are 400s;
* concurrency: at most `--max-queue` photos are at work at once (decoding, model,
  encoding; a claim counts a place per photo); more requests wait in a waiting room
  holding only their compressed bodies (`--max-waiting` requests, `--max-waiting-mb`
  bytes), and only when that is full is one answered 503 with `Retry-After`, so
  memory is bounded whatever arrives. The model runs one request at a time,
  on its own thread, with the request's threshold and a detection count that the
  photo's size allows (no mask below them is ever pasted); decoding, mask and
  JSON encoding and drawing run in worker threads, so the event loop and
  `/health` stay responsive while the model works;
* access: loopback by default; with an API key, `/v1/*` needs
  `Authorization: Bearer KEY` (401 otherwise); `/health` stays open but shows a
  caller without the key only status, version, classes and palette.
Every error is JSON: `{"error": "..."}`, 500s included.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations
# (`Request`, imported inside `create_app`) at run time.
import os
import secrets
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError, CarddUsageError
from cardd.core.files import write_file
from cardd.core.options import PARTS_SCORE_THR, SCORE_THR

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cardd.detector.predictor import DamageDetector

WEB_DIR = Path(__file__).resolve().parent / "web"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    config: str | None = None
    checkpoint: str = "latest"
    work_dir: Path | None = None
    device: str = "auto"
    half: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    score_thr: float = SCORE_THR.default
    api_key: str | None = None
    max_upload_mb: float = 20.0
    max_pixels: int = 50_000_000
    save_dir: Path | None = None
    trust_checkpoint: bool = False
    max_queue: int = 4  # photos at work at once
    max_waiting: int = 16  # requests in the waiting room (compressed bodies only)
    max_waiting_mb: float = 256.0  # bytes of bodies in the waiting room
    parts_model: str | None = None  # POST /v1/assess places damage on this model's parts
    parts_score_thr: float = PARTS_SCORE_THR.default
    rules: Path | None = None  # claim rules (default: cardd's)
    thresholds: Path | None = None  # a `cardd eval` metrics.json: best-F1 per class
    max_photos: int = 20  # photos one /v1/assess request may carry
    replicas: int = 1  # processes behind the one port, each with its own model
    trust_parts_model: bool = False  # trust is per file: --trust-checkpoint is not for it

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RequestError(Exception):
    """A client's mistake: answered with `status` and `{"error": message}`; with
    `close`, the connection is closed after the answer (a body still streaming in)."""

    def __init__(
        self, status: int, message: str, close: bool = False, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.retry_after = retry_after


#: Seconds an upload may take to arrive: a trickling, endless body is cut off.
UPLOAD_SECONDS = 120
#: Mask bytes one photo's detections may take (one byte per pixel per mask, at the
#: photo's size): a 48 MP photo keeps at most 10 masks, a 12 MP one 41, 1 MP all 100.
MASK_BUDGET_BYTES = 512 * 1024 * 1024
#: What a 503 tells the client to wait before trying again.
RETRY_AFTER_SECONDS = 2


class Admission:
    """Who may hold memory, and how much: a waiting room, then places at work.

    A request first enters the waiting room, where it holds only its compressed body:
    at most `waiting` requests and `waiting_bytes` bytes of bodies (counted as they
    arrive). It then waits for places at work: at most `places` photos are decoded,
    in the model or being encoded at once, and a `/v1/assess` request takes as many
    places as it has photos (all of them, at most). Only a full waiting room turns a
    request away (503 with `Retry-After`), so a few clients more than places wait
    their turn instead of being refused, and memory stays bounded whatever arrives.

    The event loop runs one coroutine at a time: the counts need no lock.
    """

    def __init__(self, places: int, waiting: int = 16, waiting_bytes: int = 256 * 2**20) -> None:
        self.places = places
        self.waiting = waiting
        self.waiting_bytes = waiting_bytes
        self.in_flight = 0  # photos at work
        self.queued = 0  # requests in the waiting room or at work
        self.queued_bytes = 0
        self._turn = None  # asyncio.Condition, made in the event loop

    def _busy(self, why: str) -> RequestError:
        return RequestError(503, f"busy: {why}; retry shortly", retry_after=RETRY_AFTER_SECONDS)

    def enter(self) -> "Ticket":
        """A place in the waiting room, or 503 when it is full."""
        if self.queued >= self.waiting:
            raise self._busy(f"{self.queued} requests are waiting or being processed")
        self.queued += 1
        return Ticket(self)

    def _hold_bytes(self, count: int) -> None:
        if self.queued_bytes + count > self.waiting_bytes:
            raise RequestError(
                503, f"busy: {self.queued_bytes} bytes of uploads are waiting; retry shortly",
                close=True, retry_after=RETRY_AFTER_SECONDS,
            )  # fmt: skip
        self.queued_bytes += count

    async def _take(self, photos: int) -> int:
        import asyncio

        need = min(max(photos, 1), self.places)
        if self._turn is None:
            self._turn = asyncio.Condition()
        async with self._turn:
            await self._turn.wait_for(lambda: self.in_flight + need <= self.places)
            self.in_flight += need
        return need

    async def _give(self, count: int) -> None:
        self.in_flight -= count
        async with self._turn:
            self._turn.notify_all()


class Ticket:
    """One request's stay: its body's bytes, then its places at work (`async with`)."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.bytes = 0
        self.places = 0

    def hold(self, count: int) -> None:
        """Count `count` more bytes of this request's body (503 past the room's bytes)."""
        self.admission._hold_bytes(count)
        self.bytes += count

    async def work(self, photos: int = 1) -> None:
        """Wait for places at work for `photos` photos."""
        self.places = await self.admission._take(photos)

    async def __aenter__(self) -> "Ticket":
        return self

    async def __aexit__(self, *_) -> None:
        admission = self.admission
        admission.queued -= 1
        admission.queued_bytes -= self.bytes
        if self.places:
            await admission._give(self.places)


def detection_budget(width: int, height: int, requested: int | None) -> int:
    """How many detections (each a full-size mask) one photo may keep."""
    affordable = max(1, MASK_BUDGET_BYTES // max(1, width * height))
    return min(affordable, requested) if requested is not None else affordable


async def read_body(
    request, limit: int, seconds: float = UPLOAD_SECONDS, ticket: "Ticket | None" = None
) -> bytes:
    """The request body, at most `limit` bytes (413 beyond), within `seconds` (408).

    Nothing over the limit is kept. A body declared or found to be larger than four
    times the limit (an endless stream, say) is not read further: the answer closes
    the connection. Smaller excess is read and dropped, so that ordinary clients
    get to read the 413 instead of a reset connection.
    """
    import asyncio

    declared = request.headers.get("content-length")
    declared = int(declared) if declared is not None and declared.isdigit() else None
    cap = 4 * limit
    if declared is not None and declared > cap:
        raise RequestError(413, f"upload of {declared} bytes is over the limit of {limit}", True)
    chunks: list[bytes] = []
    size, ended = 0, False

    async def receive() -> None:
        nonlocal size, ended
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                if ticket is not None:
                    ticket.hold(len(chunk))  # the waiting room's bytes
                chunks.append(chunk)
            elif size > cap:
                return
        ended = True

    try:
        await asyncio.wait_for(receive(), timeout=seconds)
    except TimeoutError:
        raise RequestError(408, f"the upload did not arrive within {seconds:g} s", True) from None
    if size > limit:
        raise RequestError(413, f"upload is over the limit of {limit} bytes", close=not ended)
    return b"".join(chunks)


def image_part(body: bytes, content_type: str) -> tuple[str, bytes]:
    """The `image` file of a multipart/form-data body, parsed in memory.

    Returns:
        The file name the client gave (may be empty) and the file's bytes.
    """
    return image_parts(body, content_type)[0]


def image_parts(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """Every `image` file of a multipart/form-data body, in order, parsed in memory.

    Raises:
        RequestError: not multipart, malformed, or no `image` field.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise RequestError(400, "send the photo as multipart/form-data in a field named 'image'")
    parts: list[dict] = []
    header = {"field": b"", "value": b""}

    def on_part_begin():
        parts.append({"headers": {}, "data": []})

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(data, start, end):
        parts[-1]["data"].append(data[start:end])

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as error:  # python-multipart raises its own and ValueErrors
        raise RequestError(400, f"malformed multipart body ({error})") from None
    images = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == b"image":
            name = disposition.get(b"filename", b"").decode("utf-8", "replace")
            images.append((Path(name).name, b"".join(part["data"])))
    if not images:
        raise RequestError(400, "no file field named 'image' in the form")
    return images


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

    def _load(self) -> "DamageDetector":
        from cardd.detector.predictor import DamageDetector

        return DamageDetector.from_options(self.options)

    def _load_parts(self) -> "DamageDetector":
        from cardd.detector.predictor import DamageDetector

        return DamageDetector(
            checkpoint=self.options.parts_model, device=self.options.device,
            score_thr=self.options.parts_score_thr,
            trust_checkpoint=self.options.trust_parts_model,
        )  # fmt: skip

    def _claim_rules(self):
        """The rules and thresholds of /v1/assess, checked against the damage model as
        `cardd assess` checks them, before the service answers anything."""
        from cardd.assess.claim import load_rules, thresholds_from_metrics

        names = self.detector.classes.names
        rules = load_rules(self.options.rules).for_model(names, self.options.rules is not None)
        given = self.options.thresholds
        thresholds = thresholds_from_metrics(given, names) if given else {}
        return rules, thresholds

    async def assess(self, uploads: list[bytes], names: list[str], score_thr: float) -> dict:
        """The claim of uploaded photos (`cardd assess`'s claim.json), on the model thread,
        photo by photo: each is decoded, run, placed and graded, then its pixels and
        masks are dropped before the next; each photo's detections capped by
        `detection_budget`."""
        import asyncio

        from cardd.assess.claim import assess_images

        photos = [lambda data=data, name=name: self.decode(data, name)
                  for data, name in zip(uploads, names, strict=True)]  # fmt: skip

        def run() -> dict:
            claim = assess_images(
                self.detector, photos, names, self.parts_detector, self.rules, self.thresholds,
                score_thr=score_thr,
                max_detections=lambda width, height: detection_budget(width, height, None),
            )  # fmt: skip
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
        from cardd.detector.predictor import UnreadableImage, decode_image_bytes

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
        suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in _SUFFIXES else ".img"
        write_file(folder / f"{stem}{suffix}", data, root=folder)
        write_file(folder / f"{stem}.json", json.dumps(payload, indent=1), root=folder)


_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def create_app(service: Service) -> "FastAPI":
    """The FastAPI application around a loaded model."""
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from cardd import __version__

    # No /docs: FastAPI's Swagger UI loads its scripts from a CDN, a blank page
    # offline or behind a firewall; the schema itself is at /openapi.json.
    app = FastAPI(
        title="cardd",
        version=__version__,
        description="Car-damage detection and segmentation (CarDD classes) for claims photos.",
        docs_url=None,
        redoc_url=None,
    )
    upload_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {"image": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    }

    @app.exception_handler(RequestError)
    async def request_error(_, error: RequestError):
        headers = {"Connection": "close"} if error.close else {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected_error(_, error: Exception):
        # the service's own fault: JSON like every other answer, the detail in the log
        import logging

        logging.getLogger("cardd.serve.service").error("unhandled error", exc_info=error)
        return JSONResponse(
            {"error": f"internal error ({type(error).__name__}); see the service's log"},
            status_code=500,
        )

    @app.exception_handler(HTTPException)
    async def http_error(_, error: HTTPException):
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    def key_matches(request: Request) -> bool:
        key = service.options.api_key
        if not key:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), key.encode())

    def authorised(request: Request) -> None:
        if not key_matches(request):
            raise RequestError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")

    async def detect_upload(
        request: Request, ticket, score_thr: float, max_detections: int | None
    ):
        began = time.perf_counter()
        body = await read_body(request, service.options.max_upload_bytes, ticket=ticket)
        name, data = image_part(body, request.headers.get("content-type", ""))
        del body
        if not data:
            raise RequestError(400, "the uploaded file is empty")
        await ticket.work(1)  # the waiting room until a place is free
        decoded = time.perf_counter()
        array = await run_in_threadpool(service.decode, data, name)
        decode_ms = (time.perf_counter() - decoded) * 1000
        result, model_ms, budget = await service.detect(array, name, score_thr, max_detections)
        timing = {"decode": decode_ms, "model": model_ms}
        return began, data, name, array, result, timing, budget

    threshold = Query(
        None, ge=0.0, le=1.0, description="Drop detections below this score (default: --score-thr)."
    )
    most = Query(
        None,
        ge=1,
        description="Keep at most this many detections (default and ceiling: the model's, "
        "and what the photo's size allows: 512 MB of masks).",
    )

    @app.get("/health")
    async def health(request: Request) -> dict:
        return service.health(authorised=key_matches(request))

    @app.post("/v1/detect", dependencies=[Depends(authorised)], openapi_extra=upload_doc)
    async def detect(
        request: Request, score_thr: float | None = threshold, max_detections: int | None = most
    ):
        """Detections in one photo: the schema of `cardd infer`'s preds/*.json, plus timing."""
        import json

        thr = service.options.score_thr if score_thr is None else score_thr
        async with service.admission.enter() as ticket:
            began, data, name, _, result, timing, budget = await detect_upload(
                request, ticket, thr, max_detections
            )

            def encode() -> tuple[dict, bytes]:
                payload = result.to_dict()  # masks to RLE: milliseconds each
                payload["max_detections"] = budget
                timing["total"] = (time.perf_counter() - began) * 1000
                payload["timing_ms"] = {k: round(v, 2) for k, v in timing.items()}
                return payload, json.dumps(payload).encode()

            payload, body = await run_in_threadpool(encode)
            if service.options.save_dir is not None:
                await run_in_threadpool(service.save, data, name, payload)
        return Response(body, media_type="application/json")

    @app.post("/v1/assess", dependencies=[Depends(authorised)], openapi_extra=upload_doc)
    async def assess(request: Request, score_thr: float | None = threshold):
        """The claim of several photos (each an `image` field): `cardd assess`'s
        claim.json, from the same models and rules."""
        import json

        thr = service.options.score_thr if score_thr is None else score_thr
        limit = service.options.max_upload_bytes
        async with service.admission.enter() as ticket:
            body = await read_body(request, limit * service.options.max_photos, ticket=ticket)
            uploads = image_parts(body, request.headers.get("content-type", ""))
            del body
            if len(uploads) > service.options.max_photos:
                raise RequestError(
                    413, f"{len(uploads)} photos: at most {service.options.max_photos} per claim"
                )
            for name, data in uploads:
                if not data:
                    raise RequestError(400, f"the uploaded file {name or '(unnamed)'} is empty")
                if len(data) > limit:
                    raise RequestError(
                        413, f"{name or 'a photo'} is over {service.options.max_upload_mb:g} MB"
                    )
            names = []
            for index, (name, _) in enumerate(uploads, start=1):
                unique = name or f"photo{index}.jpg"
                while unique in names:  # the same name twice: one finding list, two photos
                    unique = f"{Path(unique).stem}_{index}{Path(unique).suffix}"
                names.append(unique)
            await ticket.work(len(uploads))  # a place per photo
            claim = await service.assess([data for _, data in uploads], names, thr)
            del uploads
            text = await run_in_threadpool(json.dumps, claim)
        return Response(text.encode(), media_type="application/json")

    @app.post(
        "/v1/annotate",
        dependencies=[Depends(authorised)],
        openapi_extra=upload_doc,
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    async def annotate(
        request: Request, score_thr: float | None = threshold, max_detections: int | None = most
    ):
        """The photo with masks, boxes, class names and scores drawn, as JPEG."""
        from cardd.visualize.draw import draw_detections, encode_jpeg

        thr = service.options.score_thr if score_thr is None else score_thr
        async with service.admission.enter() as ticket:
            _, data, name, array, result, _, _ = await detect_upload(
                request, ticket, thr, max_detections
            )

            def render() -> bytes:
                return encode_jpeg(draw_detections(array, result.detections, result.classes))

            jpeg = await run_in_threadpool(render)
            if service.options.save_dir is not None:
                await run_in_threadpool(service.save, data, name, result.to_dict())
        return Response(jpeg, media_type="image/jpeg")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _check_address(host: str, port: int) -> None:
    """Fail at once, in one line, when `host:port` cannot be listened on."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise CarddError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _api_key(options: ServeOptions) -> str | None:
    return options.api_key or os.environ.get("CARDD_API_KEY") or None


def serve(options: ServeOptions, announce=print) -> None:
    """Load the model, then serve until Ctrl-C or SIGTERM; returns after a graceful
    shutdown (in-flight requests finish, for at most 5 seconds). With `replicas` > 1,
    `serve_replicas` instead."""
    import uvicorn

    if not 0 < options.port < 65536:
        raise CarddUsageError(f"--port must be 1..65535, got {options.port}")
    if options.replicas < 1:
        raise CarddUsageError(f"--replicas must be >= 1, got {options.replicas}")
    _check_address(options.host, options.port)  # before minutes of model loading
    options.api_key = _api_key(options)
    if options.replicas > 1:
        serve_replicas(options, announce)
        return
    service = Service(options)
    detector = service.detector
    app = create_app(service)
    config = uvicorn.Config(app, **_uvicorn_settings(options))
    server = uvicorn.Server(config)
    _announce(options, f"{detector.checkpoint} on {detector.device}", announce)
    # uvicorn re-raises the signal that stopped it once it has shut down; a handler
    # that ignores it makes that a normal return (exit 0) rather than a kill.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise CarddError(
            f"could not listen on {options.host}:{options.port} (in use, or not this machine's)"
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise CarddError(f"could not listen on {options.host}:{options.port}")


def _uvicorn_settings(options: ServeOptions) -> dict:
    return dict(
        host=options.host, port=options.port, log_level="warning",
        timeout_graceful_shutdown=5, limit_concurrency=256,
    )  # fmt: skip


def _announce(options: ServeOptions, what: str, announce) -> None:
    if options.host not in LOOPBACK and not options.api_key:
        announce(
            f"warning: serving on {options.host} without an API key: anyone who can reach "
            "this machine can use the model (set --api-key or CARDD_API_KEY)"
        )
    shown = f"[{options.host}]" if ":" in options.host else options.host
    announce(f"cardd serve: {what}")
    announce(f"open http://{shown}:{options.port}/  (API schema: /openapi.json; Ctrl-C to stop)")


#: How `serve_replicas` hands its options to the replica processes uvicorn starts.
REPLICA_OPTIONS_ENV = "CARDD_SERVE_REPLICA_OPTIONS"
_PATH_FIELDS = ("work_dir", "save_dir", "rules", "thresholds")


def serve_replicas(options: ServeOptions, announce=print) -> None:
    """`options.replicas` processes behind one port (uvicorn's process manager: they
    share the listening socket, the kernel hands each new connection to one of them,
    and a replica that dies is started again). Each loads its own model; with several
    GPUs, replica k uses GPU k modulo their number.

    Everything a replica will load is checked here first (the models, `.pth` or
    `.onnx`, the rules and thresholds against the damage model), so a bad file fails
    once, in one line, before any replica starts. The settings (the API key among
    them) reach the replicas in a file of a private folder, never in the environment.
    A replica that cannot start anyway leaves its reason there, and the service stops
    with that line and exit 1 instead of starting it again forever.
    """
    import dataclasses
    import json
    import shutil
    import tempfile
    import threading

    import uvicorn

    check_models(options)
    slots = tempfile.mkdtemp(prefix="cardd-serve-replicas-")  # 0700: this user's only
    settings = {
        k: (str(v) if k in _PATH_FIELDS and v is not None else v)
        for k, v in dataclasses.asdict(options).items()
    }
    settings_file = Path(slots) / "options.json"
    write_file(settings_file, json.dumps({**settings, "slots": slots}))
    settings_file.chmod(0o600)
    os.environ[REPLICA_OPTIONS_ENV] = str(settings_file)
    failed = Path(slots) / "failed.txt"
    stop = threading.Event()

    def stop_on_failure() -> None:  # uvicorn's supervisor would restart it forever
        while not stop.wait(0.2):
            if failed.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    watcher = threading.Thread(target=stop_on_failure, daemon=True)
    _announce(options, f"{options.checkpoint}, {options.replicas} replicas", announce)
    try:
        watcher.start()
        uvicorn.run(
            "cardd.serve.service:replica_app", factory=True, workers=options.replicas,
            **_uvicorn_settings(options),
        )  # fmt: skip
        if failed.exists():
            raise CarddError(f"a replica could not start: {failed.read_text().strip()}")
    finally:
        stop.set()
        os.environ.pop(REPLICA_OPTIONS_ENV, None)
        shutil.rmtree(slots, ignore_errors=True)


def check_models(options: ServeOptions) -> None:
    """Open the damage and parts models (then drop them) and check the claim rules and
    thresholds against the damage model's classes, as each replica will.

    Raises:
        CarddError: the first problem, in one line.
    """
    from cardd.assess.claim import load_rules, thresholds_from_metrics
    from cardd.detector.onnx_backend import OnnxModel, check_options, is_onnx_model

    def classes_of(checkpoint, trust: bool, config=None):
        if is_onnx_model(checkpoint):
            check_options(config, options.half)
            return OnnxModel(Path(checkpoint), device="cpu").classes
        from cardd.models.model_file import open_model

        model_file = open_model(config, checkpoint, options.work_dir, trust)
        model_file.release()
        return model_file.classes

    names = classes_of(options.checkpoint, options.trust_checkpoint, options.config).names
    load_rules(options.rules).for_model(names, options.rules is not None)
    if options.thresholds:
        thresholds_from_metrics(options.thresholds, names)
    if options.parts_model:
        classes_of(options.parts_model, options.trust_parts_model)


def claim_replica_slot(slots: str, replicas: int) -> int:
    """The lowest replica number no living replica holds: a lock on its file, held for
    the process's life and freed by the kernel when it dies, so a replica started
    again takes the place (and GPU) of the one it replaces."""
    import fcntl

    while True:
        for index in range(replicas):
            handle = open(Path(slots) / f"replica-{index}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_slots.append(handle)
            return index
        time.sleep(0.2)  # a replica that is shutting down still holds its place


_held_slots: list = []


def _gpu_count(checkpoint) -> int:
    """GPUs PyTorch sees, for a PyTorch model. An ONNX model's replica imports no torch
    (it would cost each replica PyTorch's memory and start-up) and onnxruntime counts no
    GPUs: its replicas share the first GPU unless CUDA_VISIBLE_DEVICES differs."""
    from cardd.detector.onnx_backend import is_onnx_model

    if is_onnx_model(checkpoint):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def replica_app() -> "FastAPI":
    """One replica's app: uvicorn calls this in each process `serve_replicas` starts."""
    import json

    settings = json.loads(Path(os.environ[REPLICA_OPTIONS_ENV]).read_text())
    slots = settings.pop("slots")
    for key in _PATH_FIELDS:
        if settings[key] is not None:
            settings[key] = Path(settings[key])
    options = ServeOptions(**settings)
    index = claim_replica_slot(slots, options.replicas)
    try:
        if options.device in ("auto", "cuda"):
            gpus = _gpu_count(options.checkpoint)
            if gpus > 1:
                options.device = f"cuda:{index % gpus}"
        service = Service(options)
    except Exception as error:  # tell the supervisor (serve_replicas), which stops all
        from cardd.core.errors import one_line

        reason = str(error) if isinstance(error, CarddError) else one_line(error)
        write_file(Path(slots) / "failed.txt", f"replica {index}: {reason}\n")
        raise SystemExit(1) from None
    service.replica = index
    return create_app(service)
