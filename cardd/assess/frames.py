"""Which of a video's frames the models see: sampled at a rate, checked as photos are
(blurred, dark, overexposed, too small), near-duplicates of the last kept frame
skipped, at most a cap per claim. Every sampled frame not kept is counted with why
(`ClaimVideo.skipped`), so a claim says what it did not look at.

Only the checks that need no model run here; "no car part" needs the parts model
and is decided by `cardd.assess.pipeline`, which tells `FrameSelector.kept` which
frames it used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cardd.assess.claim import ClaimVideo, PhotoCheck, check_photo
from cardd.assess.options import MAX_FRAMES, VIDEO_FPS

if TYPE_CHECKING:
    import numpy as np

    from cardd.assess.rules import Rules
    from cardd.structures.videos import Frame, VideoReader

#: Mean absolute change (grey levels, 0-255) between 64-px thumbnails under which a
#: frame repeats the last kept one (the camera held still): sensor noise and
#: compression stay under 1.5 at that size; a step along the car is tens.
NEAR_DUPLICATE_CHANGE = 3.0
_THUMBNAIL_WIDTH = 64


@dataclass(frozen=True)
class Sampling:
    """How a video is sampled: `fps` frames per second, at most `max_frames` per claim."""

    fps: float = VIDEO_FPS.default
    max_frames: int = MAX_FRAMES.default

    def interval(self, duration: float | None, frames: int) -> float:
        """Seconds between sampled frames of a video of `duration` given `frames` of
        the cap: `1/fps`, or longer so that the cap reaches the end."""
        interval = 1.0 / self.fps
        if duration is not None and frames > 0:
            interval = max(interval, duration / frames)
        return interval


def _thumbnail(image: np.ndarray) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    size = (_THUMBNAIL_WIDTH, max(1, round(height * _THUMBNAIL_WIDTH / width)))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype("float32")


class FrameSelector:
    """The frames of one video worth the models' time, and the tally (`video`).

    Args:
        reader: the open video.
        rules: the photo checks' limits.
        cap: frames this video may give the models.
        interval: seconds between sampled frames.
        on_skip: called with the tally after each frame skipped here (a progress bar).
    """

    def __init__(self, reader: VideoReader, rules: Rules, cap: int, interval: float,
                 on_skip: Callable[[ClaimVideo], None] | None = None) -> None:  # fmt: skip
        info = reader.info
        self.reader = reader
        self.rules = rules
        self.cap = cap
        self.video = ClaimVideo(reader.name, info.width, info.height, info.fps, info.duration,
                                info.rotation, interval)  # fmt: skip
        self._last: np.ndarray | None = None
        self._on_skip = on_skip

    def candidates(self) -> Iterator[tuple[Frame, PhotoCheck, np.ndarray]]:
        """The sampled frames that pass the checks needing no model, each with its
        check and thumbnail; give the ones used to `kept`, the others to `skip`."""
        import numpy as np

        video = self.video
        for frame in self.reader.sampled(video.interval):
            video.frames_read = self.reader.frames_read
            if len(video.kept) >= self.cap:
                video.stopped = f"the cap of {self.cap} frames reached at {frame.time:.1f} s"
                break
            video.frames_sampled += 1
            check = check_photo(frame.image, self.rules, None)
            if not check.usable:  # a dark frame is blurred too: said as dark
                light = [r for r in check.reasons if r.startswith(("too dark", "overexposed"))]
                self.skip((light or check.reasons)[0])
                continue
            thumbnail = _thumbnail(frame.image)
            if self._last is not None and self._last.shape == thumbnail.shape:
                change = float(np.abs(thumbnail - self._last).mean())
                if change < NEAR_DUPLICATE_CHANGE:
                    self.skip("near duplicate")
                    continue
            yield frame, check, thumbnail
        video.frames_read = self.reader.frames_read

    def kept(self, frame: Frame, thumbnail: np.ndarray) -> None:
        """The models used this frame: later ones are compared with it."""
        self.video.kept.append(frame.time)
        self._last = thumbnail

    def skip(self, why: str) -> None:
        """A sampled frame not used, and why."""
        self.video.skip(why)
        if self._on_skip is not None:
            self._on_skip(self.video)
