"""Videos in: a phone's walk-around read as a stream of BGR frames (OpenCV's FFmpeg
reader), its rotation flag applied, too many pixels or seconds refused from the
header, a file that ends early said in one line; and the one set of video suffixes.

Never the whole video in memory: `VideoReader.sampled` decodes frame after frame and
hands out only the sampled ones, each dropped by the caller before the next.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError

if TYPE_CHECKING:
    import numpy as np

#: The video files cardd reads (`cardd assess`, `/v1/assess`): the containers phones
#: and cameras write and OpenCV's FFmpeg reads.
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp"})
#: Frames a container may declare and not deliver before the file counts as truncated
#: (phones' frame counts are estimates off by a frame or two).
_MISSING_FRAMES = 2


def is_video_name(path: Path | PurePosixPath | str) -> bool:
    """Whether a file name has one of `VIDEO_SUFFIXES` (any case)."""
    return PurePosixPath(str(path)).suffix.lower() in VIDEO_SUFFIXES


class UnreadableVideo(CarddError):
    """A video that cannot be decoded, or is over a limit (`too_large`)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says, the rotation applied (width and height as shown)."""

    width: int
    height: int
    fps: float
    frames: int  # as declared; 0 when the container does not say
    rotation: int  # degrees clockwise from the file's rotation flag (0, 90, 180, 270)

    @property
    def duration(self) -> float | None:
        return self.frames / self.fps if self.frames > 0 and self.fps > 0 else None


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its position in the video, its time in seconds, its pixels."""

    index: int
    time: float
    image: np.ndarray


class VideoReader:
    """An open video (a local file: uploads are spooled to one first).

    Args:
        path: the file.
        name: how errors name it.
        max_pixels: frames larger than this are refused from the header.
        max_seconds: a longer video is refused from the header, and cut off there if
            its header understated it.
    """

    def __init__(self, path: Path | str, name: str | None = None, max_pixels: int | None = None,
                 max_seconds: float | None = None) -> None:  # fmt: skip
        import cv2

        # FFmpeg's own warnings ("[mov,mp4 @ 0x..] moov atom not found") are not for
        # users: the one-line errors below say what went wrong.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        self.name = name or Path(path).name
        self.max_seconds = max_seconds
        if not Path(path).is_file():
            raise UnreadableVideo(f"{self.name}: no such file")
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise UnreadableVideo(f"{self.name}: not a video OpenCV can decode (or truncated)")
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # phones film portrait as rotated landscape
        self._capture = capture
        rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self.info = VideoInfo(width, height, fps if fps > 0 else 0.0, frames, rotation)
        try:
            if width <= 0 or height <= 0:
                raise UnreadableVideo(f"{self.name}: no video stream")
            if max_pixels is not None and width * height > max_pixels:
                raise UnreadableVideo(
                    f"{self.name}: {width}x{height} frames are over the limit of {max_pixels} "
                    "pixels", too_large=True,
                )  # fmt: skip
            duration = self.info.duration
            if max_seconds is not None and duration is not None and duration > max_seconds:
                raise UnreadableVideo(
                    f"{self.name}: {duration:.0f} s long, over the limit of {max_seconds:g} s",
                    too_large=True,
                )
        except UnreadableVideo:
            self.close()
            raise
        self.frames_read = 0

    def sampled(self, interval: float) -> Iterator[Frame]:
        """The frames at least `interval` seconds apart (the first one, then the first at
        or after each next time), decoding every frame but converting only those.

        Raises:
            UnreadableVideo: no frame at all, the file ends well before the frame count
                its header declares, or it runs past `max_seconds`.
        """
        import cv2

        capture = self._capture
        fps = self.info.fps
        next_time = 0.0
        index = -1
        while capture.grab():
            index += 1
            self.frames_read += 1
            position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            time = position if position > 0 or index == 0 else (index / fps if fps else 0.0)
            if self.max_seconds is not None and time > self.max_seconds:
                raise UnreadableVideo(
                    f"{self.name}: runs past the limit of {self.max_seconds:g} s", too_large=True
                )
            if time + 1e-6 < next_time:
                continue
            ok, image = capture.retrieve()
            if not ok:
                break
            next_time = time + interval
            yield Frame(index, round(time, 3), image)
        declared = self.info.frames
        if self.frames_read == 0:
            raise UnreadableVideo(f"{self.name}: no frame could be decoded")
        if declared and self.frames_read < declared - _MISSING_FRAMES:
            raise UnreadableVideo(
                f"{self.name}: ends at frame {self.frames_read} of the {declared} its header "
                "declares (truncated?)"
            )

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *_) -> None:
        self.close()
