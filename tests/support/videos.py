"""Walk-around videos made in the tests: a drawn car side (`cardd synth-data --parts`'s
parts and damage shapes) filmed by a moving window, written with OpenCV's writer.

The camera's path is a list of stretches (`Shot`): held still, panning, zooming,
blurred, dark. Where each damage lies in every frame is known,
so tests can say which frames show it (`Walkaround.damages_at`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCENE = (1600, 600)  # (width, height) of the drawn car side
FRAME = (640, 480)


@dataclass(frozen=True)
class Shot:
    """`seconds` of film: the window's left edge and width (scene pixels) from `start`
    to `end`, and what spoils it (`blur`, `dark`)."""

    seconds: float
    start: tuple[float, float]  # (left, width)
    end: tuple[float, float]
    blur: bool = False
    dark: bool = False


#: Held still 1 s, a pan with a blurred and a dark second, a zoom onto the rear door.
WALK = (
    Shot(1.0, (0, 800), (0, 800)),
    Shot(2.0, (0, 800), (300, 800)),
    Shot(1.0, (300, 800), (450, 800), blur=True),
    Shot(1.5, (450, 800), (650, 800)),
    Shot(1.0, (650, 800), (800, 800), dark=True),
    Shot(1.5, (800, 800), (1000, 560)),
)


@dataclass
class Walkaround:
    path: Path
    fps: float
    frames: int
    damages: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (class, polygon)
    windows: list[tuple[float, float, float, float]] = field(default_factory=list)

    def damages_at(self, time: float) -> list[tuple[str, np.ndarray]]:
        """Each damage wholly inside the frame at `time`: (class, polygon in frame pixels)."""
        index = min(self.frames - 1, round(time * self.fps))
        left, top, width, height = self.windows[index]
        seen = []
        for name, polygon in self.damages:
            moved = (polygon - (left, top)) * (FRAME[0] / width)
            (x1, y1), (x2, y2) = moved.min(axis=0), moved.max(axis=0)
            if x1 >= 0 and y1 >= 0 and x2 <= FRAME[0] and y2 <= FRAME[1]:
                seen.append((name, moved))
        return seen


#: Where the film's damages are drawn (scene pixels): a dent and a lamp broken at the
#: front, a scratch on the rear door.
PLACES = (("dent", (560, 340)), ("scratch", (1180, 280)), ("lamp broken", (360, 190)))


def draw_scene(seed: int = 0):
    """The car side (BGR) and its damages at `PLACES`: (image, [(class, polygon)])."""
    import cv2

    from cardd.data.synth import _background, _car_parts, _shape

    rng = np.random.default_rng(seed)
    width, height = SCENE
    image, _ = _background(rng, width, height)
    image = np.ascontiguousarray(image[:, :, ::-1])
    for polygon, colour in zip(*_car_parts(rng, width, height), strict=True):
        cv2.fillPoly(image, [polygon.round().astype(np.int32)], colour)
    # dust and reflections: the texture a real car has (frames sharp, the motion
    # measurable), lighter and darker specks of paint
    specks = (rng.integers(0, width, 6000), rng.integers(0, height, 6000),
              rng.integers(1, 4, 6000), rng.integers(-50, 50, 6000))  # fmt: skip
    for x, y, r, shade in zip(*specks, strict=True):
        colour = tuple(int(c) for c in np.clip(image[y, x].astype(int) + shade, 0, 255))
        cv2.circle(image, (int(x), int(y)), int(r), colour, -1)
    damages = []
    for name, (cx, cy) in PLACES:
        polygon, colour = _shape(np.random.default_rng(seed + len(damages)), name, 600, 600)
        polygon = polygon - polygon.mean(axis=0) + (cx, cy)
        cv2.fillPoly(image, [polygon.round().astype(np.int32)], colour)
        damages.append((name, polygon))
    return image, damages


def make_walkaround(path: Path, shots=WALK, fps: float = 10.0, fourcc: str = "mp4v",
                    seed: int = 0, size: tuple[int, int] = FRAME) -> Walkaround:  # fmt: skip
    """Film the scene along `shots` into `path` (a codec OpenCV writes here: mp4v, MJPG,
    XVID), `size` (width, height) frames (`damages_at` assumes the default)."""
    import cv2

    scene, damages = draw_scene(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    video = Walkaround(path, fps, 0, damages)
    for shot in shots:
        count = round(shot.seconds * fps)
        for k in range(count):
            f = k / max(1, count - 1) if count > 1 else 0.0
            left = shot.start[0] + (shot.end[0] - shot.start[0]) * f
            width = shot.start[1] + (shot.end[1] - shot.start[1]) * f
            height = width * size[1] / size[0]
            top = (SCENE[1] - height) / 2
            matrix = np.array([[size[0] / width, 0, -left * size[0] / width],
                               [0, size[1] / height, -top * size[1] / height]])  # fmt: skip
            frame = cv2.warpAffine(scene, matrix, size, flags=cv2.INTER_LINEAR)
            if shot.blur:
                frame = cv2.GaussianBlur(frame, (0, 0), 6)
            if shot.dark:
                frame = (frame * 0.12).astype(np.uint8)
            writer.write(frame)
            video.windows.append((left, top, width, height))
            video.frames += 1
    writer.release()
    return video


def set_rotation(path: Path, degrees: int) -> None:
    """Give an MP4 the rotation flag a phone writes for a portrait video (the track
    header's display matrix), as OpenCV's writer cannot."""
    matrices = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}
    a, b, c, d = (v * 0x10000 for v in matrices[degrees])
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    offset = at + 4 + (40 if version == 0 else 52)
    data[offset : offset + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
