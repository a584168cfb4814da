"""A claim's photos and videos through the models: the one code path under
`assess_images`, `assess_video`, `cardd assess` and `/v1/assess`.

Every picture the models see, a photo or a video's kept frame, goes through
`_run_models` (the parts model, then the damage model) and `place_damage`, one at a
time, its pixels and masks dropped before the next. Photos are checked after the
models as before; a video's frames are sampled and checked first (`cardd.assess.frames`),
so the models see only the frames kept, and its damage is followed from frame to
frame (`cardd.assess.tracking`) into one finding per damage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.assess.claim import (
    Claim,
    ClaimPhoto,
    ClaimVideo,
    Placement,
    assess_photo,
    claim_of,
    frame_name,
    model_entry,
    place_damage,
)
from cardd.assess.frames import FrameSelector, Sampling
from cardd.assess.rules import Rules, load_rules
from cardd.assess.tracking import DamageTracker

if TYPE_CHECKING:
    import numpy as np

    from cardd.detector.results import ImageResult

#: `on_frame(video, frame, image, damage, cited, dropped)`: after each kept frame, with
#: the placements now among their damage's evidence and those no longer (`DamageTracker`).
OnFrame = Callable[..., None]


def _run_models(
    damage_detector, parts_detector, image, name: str, score_thr, max_detections,
    parts_first: bool = False,
) -> tuple[ImageResult | None, ImageResult | None]:  # fmt: skip
    """One picture through the models: (damage, parts), each None where not run. With
    `parts_first`, a picture with no part found never reaches the damage model."""
    height, width = image.shape[:2]
    cap = max_detections(width, height) if max_detections else None
    parts = None
    if parts_detector is not None:
        parts = parts_detector.detect([image], [name], max_detections=cap)[0]
        if parts_first and not parts.detections:
            return None, parts
    damage = damage_detector.detect([image], [name], score_thr, max_detections=cap)[0]
    return damage, parts


def assess_sources(
    damage_detector,
    photos: Sequence[tuple[str, object]] = (),
    videos: Sequence[tuple[str, Path | str]] = (),
    parts_detector=None,
    rules: Rules | None = None,
    thresholds: dict[str, float] | None = None,
    sampling: Sampling | None = None,
    on_photo: Callable[..., None] | None = None,
    on_frame: OnFrame | None = None,
    on_progress: Callable[[ClaimVideo], None] | None = None,
    score_thr: float | None = None,
    max_detections: Callable[[int, int], int] | None = None,
    max_pixels: int | None = None,
    max_seconds: float | None = None,
) -> Claim:
    """The claim of photos (name, BGR array or a function that decodes one) and videos
    (name, local file), from loaded `DamageDetector`s. See `assess_images` and
    `assess_video` for the arguments; `max_pixels` and `max_seconds` bound each video
    (refused from its header: `UnreadableVideo`)."""
    from cardd.structures.videos import VideoReader

    rules = rules or load_rules()
    sampling = sampling or Sampling()
    assessed: list[tuple[ClaimPhoto, list[Placement]]] = []
    for name, image in photos:
        image = image() if callable(image) else image
        damage, parts = _run_models(damage_detector, parts_detector, image, name, score_thr,
                                    max_detections)  # fmt: skip
        assessed.append(assess_photo(name, image, damage, parts, rules))
        if on_photo is not None:
            on_photo(name, image, damage, parts, assessed[-1][1])
        del image, damage, parts  # before the next photo is decoded
    followed: list[tuple[ClaimVideo, list[list[Placement]]]] = []
    cap = max(1, sampling.max_frames // max(1, len(videos)))  # the claim's cap, shared
    for name, path in videos:
        with VideoReader(path, name, max_pixels, max_seconds) as reader:
            interval = sampling.interval(reader.info.duration, cap)
            selector = FrameSelector(reader, rules, cap, interval, on_progress)
            tracker = DamageTracker()
            for frame, check, thumbnail in selector.candidates():
                image = frame.image
                where = frame_name(name, frame.time)
                damage, parts = _run_models(
                    damage_detector, parts_detector, image, where, score_thr, max_detections,
                    parts_first=True,
                )  # fmt: skip
                if damage is None:
                    selector.skip("no car part found")  # (the progress told there)
                else:
                    selector.kept(frame, thumbnail)
                    placements = place_damage(where, damage, parts, rules, check.sharpness,
                                              name, frame.time)  # fmt: skip
                    cited, dropped = tracker.update(image, damage, placements)
                    if on_frame is not None:
                        on_frame(name, frame, image, damage, cited, dropped)
                    if on_progress is not None:
                        on_progress(selector.video)
                del frame, image, damage, parts
            video = selector.video
            video.tracks = len(tracker.tracks)
            video.unknown_motions = tracker.unknown_motions
            if on_progress is not None:
                on_progress(video)
            followed.append((video, [track.placements for track in tracker.tracks]))
    claim = claim_of(assessed, rules, thresholds, parts_detector is not None, followed)
    claim.models = {"damage": model_entry(damage_detector)}
    if parts_detector is not None:
        claim.models["parts"] = model_entry(parts_detector)
    return claim


def assess_images(
    damage_detector,
    images: list,
    names: list[str],
    parts_detector=None,
    rules: Rules | None = None,
    thresholds: dict[str, float] | None = None,
    on_photo=None,
    score_thr: float | None = None,
    max_detections=None,
) -> Claim:
    """The claim of photos (BGR arrays, or functions that decode one when called), from
    loaded `DamageDetector`s: the Python API of `cardd assess` and the service's (one
    model call per photo and model). Photo by photo: each is decoded, run, checked,
    placed and graded, and its pixels and masks are dropped before the next;
    `on_photo(name, image, damage, parts, placements)` is called before that (the
    report's pictures are made there, `cardd.visualize.report.ClaimPictures`). `score_thr`: the
    damage model's for this call (default: its own); `max_detections(width, height)`:
    a cap per photo (the service's memory budget).

    Example:
        >>> damage = DamageDetector(checkpoint="dcn_plus.pth", score_thr=0.1)
        >>> parts = DamageDetector(checkpoint="carparts.pth", score_thr=0.3)
        >>> claim = assess_images(damage, [load_image(p) for p in paths], paths, parts)
        >>> claim.to_dict()["findings"]
    """
    return assess_sources(
        damage_detector, list(zip(names, images, strict=True)), (), parts_detector, rules,
        thresholds, on_photo=on_photo, score_thr=score_thr, max_detections=max_detections,
    )  # fmt: skip


def assess_video(
    damage_detector,
    video: Path | str,
    parts_detector=None,
    photos: Sequence[tuple[str, np.ndarray]] = (),
    rules: Rules | None = None,
    thresholds: dict[str, float] | None = None,
    sampling: Sampling | None = None,
    name: str | None = None,
    **hooks,
) -> Claim:
    """The claim of a walk-around video (a local file), and of photos given beside it:
    frames sampled at `sampling.fps` (at most `sampling.max_frames`), those a handler
    would not use skipped (blurred, dark, overexposed, no car part, near-duplicates),
    each damage followed across the frames kept into one finding that cites its best
    frames by time. Read as a stream: one frame's pixels at a time. `hooks`: as
    `assess_sources` (`on_frame`, `on_progress`, `score_thr`, `max_detections`, ...).

    Example:
        >>> damage = DamageDetector(checkpoint="rtmdet_ins_s.onnx", score_thr=0.1)
        >>> parts = DamageDetector(checkpoint="carparts.onnx", score_thr=0.3)
        >>> claim = assess_video(damage, "walkaround.mp4", parts)
        >>> [(f.damage, f.part, [e.time for e in f.evidence]) for f in claim.findings]
    """
    return assess_sources(
        damage_detector, photos, [(name or Path(video).name, video)], parts_detector, rules,
        thresholds, sampling, **hooks,
    )  # fmt: skip
