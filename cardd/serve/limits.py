"""What the service withstands: bodies cut at a size and a time, photos at work and
waiting bounded, masks capped by a photo's size, multipart parsed in memory.

* bodies: read as a stream and cut at `--max-upload-mb` (413) whatever the
  Content-Length says; the multipart body is parsed in memory, so no upload
  touches the disk unless `--save-dir` is given;
* images: the header is read first and more than `--max-pixels` is refused (413)
  before any pixel is decoded (`Service.decode`); non-images, empty and truncated
  files are 400s;
* concurrency: at most `--max-queue` photos are at work at once (decoding, model,
  encoding; a claim counts a place per photo); more requests wait in a waiting room
  holding only their compressed bodies (`--max-waiting` requests, `--max-waiting-mb`
  bytes), and only when that is full is one answered 503 with `Retry-After`, so
  memory is bounded whatever arrives.
"""

from __future__ import annotations

from pathlib import Path


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

    def enter(self) -> Ticket:
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

    async def __aenter__(self) -> Ticket:
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
    request, limit: int, seconds: float = UPLOAD_SECONDS, ticket: Ticket | None = None
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
    files = form_files(body, content_type, ("image",))
    if not files:
        raise RequestError(400, "no file field named 'image' in the form")
    return [(name, data) for _, name, data in files]


def form_files(
    body: bytes, content_type: str, fields: tuple[str, ...]
) -> list[tuple[str, str, bytes]]:
    """The files of a multipart/form-data body in the named `fields`, in order, parsed
    in memory: (field, the file name the client gave, its bytes); other fields ignored.

    Raises:
        RequestError: not multipart, or malformed.
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
    files = []
    wanted = {field.encode() for field in fields}
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        field = disposition.get(b"name")
        if field in wanted:
            name = disposition.get(b"filename", b"").decode("utf-8", "replace")
            files.append((field.decode(), Path(name).name, b"".join(part["data"])))
    return files
