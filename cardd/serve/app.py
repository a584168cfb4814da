"""The HTTP routes of `cardd serve`, one router per concern, over a `Service`.

The routes find the service in `app.state.service`, so the application (and its
OpenAPI schema, which the docs' HTTP reference is made from) can be built without a
model: `create_app()` with no service answers only its schema.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations
# (`Request`) at run time.
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request

from cardd.serve.limits import RequestError, form_files, image_part, read_body

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cardd.serve.service import Service

WEB_DIR = Path(__file__).resolve().parent / "web"


def create_app(service: "Service | None" = None) -> "FastAPI":
    """The FastAPI application around a loaded model (`service`; None builds the
    routes and schema only, for the docs)."""
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

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
    app.state.service = service
    _answer_errors_as_json(app)
    for router in (_health_router(), _detect_router(), _assess_router(), _page_router()):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def openapi_schema() -> dict:
    """The service's OpenAPI schema, without a model (the docs' HTTP reference)."""
    return create_app().openapi()


def _multipart_body(schema: dict) -> dict:
    """An endpoint's request body in the schema: a multipart form of `schema`."""
    content = {"multipart/form-data": {"schema": {"type": "object", **schema}}}
    return {"requestBody": {"required": True, "content": content}}


#: The multipart body of the upload endpoints, as the schema shows it.
UPLOAD_DOC = _multipart_body(
    {"required": ["image"], "properties": {"image": {"type": "string", "format": "binary"}}}
)
#: The multipart body of /v1/assess: photos, and a walk-around video.
ASSESS_DOC = _multipart_body({
    "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "video": {"type": "string", "format": "binary"},
    }
})  # fmt: skip

def service_of(request) -> "Service":
    """The service behind a request's application."""
    return request.app.state.service


def key_matches(request) -> bool:
    """Whether the request carries the API key (always, when none is set)."""
    key = service_of(request).options.api_key
    if not key:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), key.encode())


def authorised(request: Request) -> None:
    if not key_matches(request):
        raise RequestError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")


def _answer_errors_as_json(app) -> None:
    """Every error is `{"error": "..."}`: a client's, FastAPI's, and the service's own."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

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

        logging.getLogger("cardd.serve").error("unhandled error", exc_info=error)
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


def _threshold_query():
    from fastapi import Query

    return Query(
        None, ge=0.0, le=1.0, description="Drop detections below this score (default: --score-thr)."
    )


def _most_query():
    from fastapi import Query

    return Query(
        None,
        ge=1,
        description="Keep at most this many detections (default and ceiling: the model's, "
        "and what the photo's size allows: 512 MB of masks).",
    )


def _health_router():
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/health")
    async def health(request: Request) -> dict:
        """Status, version, classes and palette; with the API key (or none set) also the
        model, device, queue and replica: for probes and the web page."""
        return service_of(request).health(authorised=key_matches(request))

    return router


async def _detect_upload(request, ticket, score_thr: float | None, max_detections: int | None):
    """One uploaded photo read, decoded (in a worker thread) and run (on the model's), at
    the request's threshold or the service's."""
    from starlette.concurrency import run_in_threadpool

    service = service_of(request)
    score_thr = service.options.score_thr if score_thr is None else score_thr
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


async def _answer_one_photo(request, score_thr, max_detections, respond):
    """The path /v1/detect and /v1/annotate share: a place in the waiting room, the photo
    read, decoded and run; then `respond(array, result, timing, budget, began)`, in a
    worker thread, makes the answer (bytes, media type) and what `--save-dir` keeps."""
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    service = service_of(request)
    async with service.admission.enter() as ticket:
        began, data, name, array, result, timing, budget = await _detect_upload(
            request, ticket, score_thr, max_detections
        )
        body, media_type, saved = await run_in_threadpool(
            respond, array, result, timing, budget, began
        )
        if service.options.save_dir is not None:
            await run_in_threadpool(service.save, data, name, saved)
    return Response(body, media_type=media_type)


def _detect_router():
    from fastapi import APIRouter, Depends
    from fastapi.responses import Response

    router = APIRouter(dependencies=[Depends(authorised)])
    threshold, most = _threshold_query(), _most_query()

    @router.post("/v1/detect", openapi_extra=UPLOAD_DOC)
    async def detect(
        request: Request, score_thr: float | None = threshold, max_detections: int | None = most
    ):
        """Detections in one photo: the schema of `cardd infer`'s preds/*.json, plus timing."""
        import json

        def respond(array, result, timing, budget, began):
            payload = result.to_dict()  # masks to RLE: milliseconds each
            payload["max_detections"] = budget
            timing["total"] = (time.perf_counter() - began) * 1000
            payload["timing_ms"] = {k: round(v, 2) for k, v in timing.items()}
            return json.dumps(payload).encode(), "application/json", payload

        return await _answer_one_photo(request, score_thr, max_detections, respond)

    @router.post(
        "/v1/annotate",
        openapi_extra=UPLOAD_DOC,
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    async def annotate(
        request: Request, score_thr: float | None = threshold, max_detections: int | None = most
    ):
        """The photo with masks, boxes, class names and scores drawn, as JPEG."""
        from cardd.visualize.draw import draw_detections, encode_jpeg

        def respond(array, result, timing, budget, began):
            jpeg = encode_jpeg(draw_detections(array, result.detections, result.classes))
            return jpeg, "image/jpeg", result.to_dict()

        return await _answer_one_photo(request, score_thr, max_detections, respond)

    return router


def _unique_names(uploads: list[tuple[str, str, bytes]]) -> list[str]:
    """A name per photo or video: the client's, or photoN.jpg / videoN.mp4; the same name
    twice made unique (one finding list, two photos)."""
    names: list[str] = []
    for index, (field, name, _) in enumerate(uploads, start=1):
        unique = name or (f"photo{index}.jpg" if field == "image" else f"video{index}.mp4")
        while unique in names:
            unique = f"{Path(unique).stem}_{index}{Path(unique).suffix}"
        names.append(unique)
    return names


def _assess_router():
    from fastapi import APIRouter, Depends
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    router = APIRouter(dependencies=[Depends(authorised)])
    threshold = _threshold_query()

    @router.post("/v1/assess", openapi_extra=ASSESS_DOC)
    async def assess(request: Request, score_thr: float | None = threshold):
        """The claim of several photos (each an `image` field) and at most one walk-around
        video (a `video` field): `cardd assess`'s claim.json, from the same models and
        rules. A video takes every place at work while its frames are assessed."""
        import json

        service = service_of(request)
        options = service.options
        thr = options.score_thr if score_thr is None else score_thr
        limit = options.max_upload_bytes
        async with service.admission.enter() as ticket:
            body = await read_body(request, limit * options.max_photos + options.max_video_bytes,
                                   ticket=ticket)  # fmt: skip
            uploads = form_files(body, request.headers.get("content-type", ""),
                                 ("image", "video"))  # fmt: skip
            del body
            photos = [u for u in uploads if u[0] == "image"]
            videos = [u for u in uploads if u[0] == "video"]
            if not uploads:
                raise RequestError(400, "no file field named 'image' or 'video' in the form")
            if len(photos) > options.max_photos:
                raise RequestError(
                    413, f"{len(photos)} photos: at most {options.max_photos} per claim"
                )
            if len(videos) > 1:
                raise RequestError(400, f"{len(videos)} videos: one video per claim")
            for field, name, data in uploads:
                if not data:
                    raise RequestError(400, f"the uploaded file {name or '(unnamed)'} is empty")
                if field == "image" and len(data) > limit:
                    raise RequestError(
                        413, f"{name or 'a photo'} is over {options.max_upload_mb:g} MB"
                    )
                if field == "video" and len(data) > options.max_video_bytes:
                    raise RequestError(
                        413, f"{name or 'the video'} is over {options.max_video_mb:g} MB"
                    )
            names = _unique_names(uploads)
            named = list(zip(names, uploads, strict=True))
            # a place per photo; a video, every place (its frames, one after another)
            await ticket.work(len(photos) + (service.admission.places if videos else 0))
            claim = await service.assess(
                [data for _, (field, _, data) in named if field == "image"],
                [name for name, (field, _, _) in named if field == "image"],
                thr,
                next(((name, data) for name, (field, _, data) in named if field == "video"),
                     None),
            )  # fmt: skip
            del uploads, named, photos, videos
            text = await run_in_threadpool(json.dumps, claim)
        return Response(text.encode(), media_type="application/json")

    return router


def _page_router():
    from fastapi import APIRouter
    from fastapi.responses import FileResponse

    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html")

    return router
