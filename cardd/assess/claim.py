"""Claim assessment: which part is damaged, how badly, what to do, over a claim's photos.

Built on the per-image results (`ImageResult`) of a damage model and, optionally,
of a car-parts model (any cardd model trained on a parts dataset):

* each damage is placed on the part mask it overlaps most (with the share of its
  pixels on each part it touches), or on no part; its size is its pixels over that
  part's (over the photo's without a parts model, said in the output);
* a rules table (`claim_rules.yaml`, data) gives its severity from that size and
  the operation (repair, replace, ...);
* one finding per (part, damage class) across the photos, with every detection
  that shows it as evidence, the worst severity and a status from per-class score
  thresholds (`confirmed`, `needs_review`, `rejected`): never an uncertain finding
  passed silently;
* in a video, one finding per damage followed across frames (`cardd.assess.tracking`):
  the part most often under it, its worst severity, its best frames as evidence,
  each cited by time; photos of the same part and damage join it when it is the only
  such finding;
* photos a handler would ask to retake (too small, blurred, dark, overexposed, no
  car part) are flagged and not used for findings.

Everything here is arithmetic on masks and numbers, so it is tested on hand-made
cases; `cardd.assess.pipeline` runs the models. The rules are `cardd.assess.rules`;
the command's run (models, output folders) is `cardd.assess.run`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cardd.assess.rules import (
    CLAIM_FORMAT,
    MIN_PART_SHARE,
    SEVERITIES,
    STATUSES,
    Rules,
)

if TYPE_CHECKING:
    import numpy as np

    from cardd.detector.results import ImageResult
    from cardd.structures.results import Detection


@dataclass
class PhotoCheck:
    usable: bool
    reasons: list[str]
    sharpness: float
    brightness: float


def check_photo(image_bgr: np.ndarray, rules: Rules, parts_found: int | None) -> PhotoCheck:
    """What a handler would say of the photo itself: retake it, and why."""
    import cv2

    height, width = image_bgr.shape[:2]
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    scale = 1024 / max(height, width)
    if scale < 1:  # sharpness at one size for every photo
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)), cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    brightness = float(gray.mean())
    limits = rules.photos
    reasons = []
    if min(height, width) < limits["min_side"]:
        reasons.append(f"too small ({width}x{height}, shorter side under {limits['min_side']:g})")
    if sharpness < limits["min_sharpness"]:
        reasons.append(f"too blurred (sharpness {sharpness:.0f} < {limits['min_sharpness']:g})")
    if brightness < limits["min_brightness"]:
        reasons.append(f"too dark (brightness {brightness:.0f} < {limits['min_brightness']:g})")
    if brightness > limits["max_brightness"]:
        reasons.append(f"overexposed (brightness {brightness:.0f} > {limits['max_brightness']:g})")
    if parts_found == 0:
        reasons.append("no car part found")
    return PhotoCheck(not reasons, reasons, round(sharpness, 1), round(brightness, 1))


def _mask_of(detection: Detection, shape: tuple[int, int]):
    """The detection's mask, or its box filled when the model predicts none."""
    import numpy as np

    if detection.mask is not None:
        return detection.mask
    mask = np.zeros(shape, dtype=bool)
    x1, y1, x2, y2 = (int(round(v)) for v in detection.bbox_xyxy)
    mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    return mask


#: Pixels around a box where its pasted mask may still reach (bilinear pasting, rounding).
_BOX_MARGIN = 2


def _box_region(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y1, y2, x1, x2) of a detection's box, widened by `_BOX_MARGIN`, within the photo:
    where its mask can be non-zero."""
    height, width = shape
    x1, y1, x2, y2 = box
    return (max(0, int(y1) - _BOX_MARGIN), min(height, int(y2) + 1 + _BOX_MARGIN),
            max(0, int(x1) - _BOX_MARGIN), min(width, int(x2) + 1 + _BOX_MARGIN))  # fmt: skip


#: Evidence frames a video finding cites (the best by `Placement.quality`).
EVIDENCE_FRAMES = 3


def frame_name(video: str, time: float) -> str:
    """How a claim names a video's frame: a media fragment (`walk.mp4#t=12.50`)."""
    return f"{video}#t={time:.2f}"


@dataclass
class Placement:
    """Where one damage detection lies and how large it is."""

    photo: str  # the photo's name, or a video frame's (`frame_name`)
    index: int  # the detection's position in its photo's result
    damage: str
    category_id: int
    score: float
    bbox_xyxy: list[float]
    parts: list[dict]  # [{"part", "share"}], the largest share first
    part: str | None  # the part it lies on most, None: on no part found / no parts model
    size: float  # pixels over the part's (or the photo's)
    size_relative_to: str  # "part" or "photo"
    severity: str | None
    operation: str | None
    source: str = ""  # the photo or video file (default: `photo`)
    time: float | None = None  # seconds into the video; None for a photo
    quality: float = 0.0  # how good a picture of it this is (`evidence_quality`)

    def to_dict(self) -> dict:
        return {
            "photo": self.photo, "source": self.source or self.photo, "time": self.time,
            "detection": self.index, "damage": self.damage,
            "category_id": self.category_id, "score": round(self.score, 4),
            "bbox_xyxy": [round(v, 1) for v in self.bbox_xyxy], "part": self.part,
            "parts": self.parts, "size": round(self.size, 4),
            "size_relative_to": self.size_relative_to, "severity": self.severity,
            "operation": self.operation,
        }  # fmt: skip


def evidence_quality(score: float, pixels: int, sharpness: float, rules: Rules) -> float:
    """How good a picture of a damage a detection is: the model sure, the damage large,
    the frame sharp (sharpness counts up to a few times the retake limit, no further)."""
    limit = max(1.0, rules.photos["min_sharpness"])
    return score * pixels**0.5 * sharpness / (sharpness + limit)


def place_damage(
    photo: str, damage: ImageResult, parts: ImageResult | None, rules: Rules,
    sharpness: float = 0.0, source: str = "", time: float | None = None,
) -> list[Placement]:  # fmt: skip
    """Each damage of one photo (or video frame, at `time` in `source`) on the part it
    overlaps most, sized and graded."""
    import numpy as np

    shape = (damage.height, damage.width)
    part_masks = [
        (p.label, _mask_of(p, shape), _box_region(p.bbox_xyxy, shape)) for p in parts.detections
    ] if parts else []  # fmt: skip
    placements = []
    for index, d in enumerate(damage.detections):
        mask = _mask_of(d, shape)
        pixels = int(np.count_nonzero(mask))
        region = _box_region(d.bbox_xyxy, shape)
        shares: dict[str, float] = {}
        part_pixels: dict[str, int] = {}
        for name, part_mask, part_region in part_masks:
            # two masks overlap only where their boxes do: counted there, never at full size
            y1, y2 = max(region[0], part_region[0]), min(region[1], part_region[1])
            x1, x2 = max(region[2], part_region[2]), min(region[3], part_region[3])
            common = 0
            if y1 < y2 and x1 < x2:
                common = int(np.count_nonzero(mask[y1:y2, x1:x2] & part_mask[y1:y2, x1:x2]))
            overlap = common / pixels if pixels else 0.0
            if overlap > shares.get(name, 0.0):  # two masks of one part: the larger overlap
                shares[name] = overlap
                part_pixels[name] = int(np.count_nonzero(part_mask))
        listed = sorted(
            ((n, s) for n, s in shares.items() if s >= MIN_PART_SHARE), key=lambda p: -p[1]
        )
        part = listed[0][0] if listed else None
        if parts is None:
            size, relative_to = pixels / float(damage.width * damage.height), "photo"
        elif part is not None:
            size, relative_to = pixels / max(1, part_pixels[part]), "part"
        else:
            size, relative_to = pixels / float(damage.width * damage.height), "photo"
        rule = rules.classes.get(d.label)
        severity = rule.severity(size) if rule else None
        placements.append(
            Placement(
                photo=photo,
                index=index,
                damage=d.label,
                category_id=d.category_id,
                score=d.score,
                bbox_xyxy=list(d.bbox_xyxy),
                parts=[{"part": n, "share": round(s, 4)} for n, s in listed],
                part=part,
                size=size,
                size_relative_to=relative_to,
                severity=severity,
                operation=rule.operations[severity] if rule else None,
                source=source or photo,
                time=time,
                quality=evidence_quality(d.score, pixels, sharpness, rules),
            )  # fmt: skip
        )
    return placements


@dataclass
class VideoSeen:
    """Where a video finding's damage was followed: its video, frames and times."""

    source: str
    frames: int  # kept frames it was found in
    first: float
    last: float

    def to_dict(self) -> dict:
        return {"source": self.source, "frames": self.frames, "first": self.first,
                "last": self.last}  # fmt: skip


@dataclass
class Finding:
    """One damage of the claim (a (part, damage class) of photos, or one damage followed
    through a video), with the detections that show it."""

    part: str | None
    damage: str
    evidence: list[Placement]  # what the claim cites (a video's best frames, every photo)
    severity: str | None
    operation: str | None
    score: float  # the best detection's
    threshold: float
    status: str
    reasons: list[str] = field(default_factory=list)
    video: VideoSeen | None = None
    detections: int = 0  # every detection of it, cited or not

    def to_dict(self) -> dict:
        return {
            "part": self.part, "damage": self.damage, "severity": self.severity,
            "operation": self.operation, "score": round(self.score, 4),
            "threshold": self.threshold, "status": self.status, "reasons": self.reasons,
            "photos": sorted({e.photo for e in self.evidence}),
            "detections": self.detections,
            "video": self.video.to_dict() if self.video else None,
            "evidence": [e.to_dict() for e in self.evidence],
        }  # fmt: skip


def _finding(part: str | None, damage: str, placements: list[Placement], rules: Rules,
             thresholds: dict, with_parts: bool, evidence: list[Placement] | None = None,
             video: VideoSeen | None = None) -> Finding:  # fmt: skip
    """A finding graded on all its `placements`, citing `evidence` (default: all)."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    graded = [e for e in placements if e.severity is not None]
    worst = max(graded, key=lambda e: (order[e.severity], e.size)) if graded else None
    score = max(e.score for e in placements)
    threshold = float(thresholds.get(damage, rules.confirm))
    reasons = []
    if score < min(rules.reject, threshold):
        status = "rejected"
        reasons.append(f"best score {score:.2f} below the rejection floor {rules.reject:g}")
    elif score < threshold:
        status = "needs_review"
        reasons.append(f"best score {score:.2f} below the {damage} threshold {threshold:g}")
    else:
        status = "confirmed"
    if status == "confirmed" and worst is None:
        status = "needs_review"
        reasons.append(f"no rule grades {damage}")
    if status == "confirmed" and with_parts and part is None:
        status = "needs_review"
        reasons.append("on no car part found")
    return Finding(
        part=part, damage=damage, evidence=placements if evidence is None else evidence,
        severity=worst.severity if worst else None,
        operation=worst.operation if worst else None,
        score=score, threshold=threshold, status=status, reasons=reasons, video=video,
        detections=len(placements),
    )  # fmt: skip


def best_evidence(placements: list[Placement], count: int = EVIDENCE_FRAMES) -> list[Placement]:
    """The `count` best pictures of one damage (`Placement.quality`), in time order."""
    best = sorted(placements, key=lambda p: (-p.quality, p.time or 0.0))[:count]
    return sorted(best, key=lambda p: (p.time is None, p.time or 0.0))


def part_under(placements: list[Placement]) -> str | None:
    """The part most often found under a damage followed across frames (more summed
    score breaks a tie); None when it lay on no part in any frame."""
    votes: dict[str, tuple[int, float]] = {}
    for p in placements:
        if p.part is not None:
            count, score = votes.get(p.part, (0, 0.0))
            votes[p.part] = (count + 1, score + p.score)
    return max(votes, key=lambda part: votes[part]) if votes else None


@dataclass
class ClaimPhoto:
    name: str
    width: int
    height: int
    check: PhotoCheck
    detections: int


@dataclass
class ClaimVideo:
    """What a claim says of one video: how it was read and which frames were used."""

    name: str
    width: int
    height: int
    fps: float
    duration: float | None
    rotation: int
    interval: float  # seconds between sampled frames
    frames_read: int = 0
    frames_sampled: int = 0
    kept: list[float] = field(default_factory=list)  # times of the frames the models used
    skipped: dict[str, int] = field(default_factory=dict)  # why -> sampled frames
    stopped: str | None = None  # why reading stopped before the end
    tracks: int = 0
    unknown_motions: int = 0  # kept frames whose camera motion could not be measured

    def skip(self, why: str) -> None:
        """Count a sampled frame not used, by its first reason without its numbers."""
        key = why.split(" (", 1)[0]
        self.skipped[key] = self.skipped.get(key, 0) + 1

    def line(self) -> str:
        """`walk.mp4: 1800 frames read, 60 sampled (every 0.50 s), 21 kept; skipped ...`"""
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items(),
                                                               key=lambda i: -i[1]))  # fmt: skip
        text = (f"{self.name}: {self.frames_read} frames read, {self.frames_sampled} sampled "
                f"(every {self.interval:.2f} s), {len(self.kept)} kept")  # fmt: skip
        text += f"; skipped {skipped}" if skipped else ""
        return text + (f"; {self.stopped}" if self.stopped else "")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "width": self.width, "height": self.height,
            "fps": round(self.fps, 3),
            "duration": None if self.duration is None else round(self.duration, 3),
            "rotation": self.rotation, "interval": round(self.interval, 3),
            "frames_read": self.frames_read, "frames_sampled": self.frames_sampled,
            "frames_kept": len(self.kept), "skipped": dict(sorted(self.skipped.items())),
            "stopped": self.stopped, "kept": self.kept, "tracks": self.tracks,
            "unknown_motions": self.unknown_motions,
        }  # fmt: skip


@dataclass
class Claim:
    photos: list[ClaimPhoto]
    findings: list[Finding]
    status: str
    reasons: list[str]
    with_parts: bool
    models: dict = field(default_factory=dict)  # role -> {"path", "sha256", "classes"}
    rules: str = ""
    thresholds: dict = field(default_factory=dict)
    videos: list[ClaimVideo] = field(default_factory=list)

    def to_dict(self) -> dict:
        usable = sum(p.check.usable for p in self.photos)
        return {
            "format": CLAIM_FORMAT,
            "status": self.status,
            "reasons": self.reasons,
            "photos_usable": usable,
            "photos_total": len(self.photos),
            "frames_kept": sum(len(v.kept) for v in self.videos),
            "size_relative_to": "part" if self.with_parts else "photo",
            "findings": [f.to_dict() for f in self.findings],
            "photos": [
                {
                    "name": p.name,
                    "width": p.width,
                    "height": p.height,
                    "usable": p.check.usable,
                    "retake": p.check.reasons,
                    "sharpness": p.check.sharpness,
                    "brightness": p.check.brightness,
                    "detections": p.detections,
                }  # fmt: skip
                for p in self.photos
            ],
            "videos": [v.to_dict() for v in self.videos],
            "models": self.models,
            "rules": self.rules,
            "thresholds": self.thresholds,
        }

    def csv_text(self) -> str:
        """One row per finding."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["part", "damage", "severity", "operation", "score", "threshold",
                         "status", "photos", "evidence", "detections", "video", "first",
                         "last"])  # fmt: skip
        for f in self.findings:
            seen = f.video
            writer.writerow([
                f.part or "", f.damage, f.severity or "", f.operation or "", f"{f.score:.4f}",
                f"{f.threshold:g}", f.status, " ".join(sorted({e.photo for e in f.evidence})),
                len(f.evidence), f.detections, seen.source if seen else "",
                f"{seen.first:.2f}" if seen else "", f"{seen.last:.2f}" if seen else "",
            ])  # fmt: skip
        return out.getvalue()


def assess_claim(
    photos: list[tuple[str, np.ndarray, ImageResult, ImageResult | None]],
    rules: Rules,
    thresholds: dict[str, float] | None = None,
) -> Claim:
    """A claim from its photos: (name, BGR image, damage result, parts result or None).

    Photos flagged for a retake are reported and not used for findings.
    """
    assessed = [assess_photo(name, image, damage, parts, rules)
                for name, image, damage, parts in photos]  # fmt: skip
    with_parts = any(parts is not None for *_, parts in photos)
    return claim_of(assessed, rules, thresholds, with_parts)


def assess_photo(name: str, image: np.ndarray, damage: ImageResult, parts: ImageResult | None,
                 rules: Rules) -> tuple[ClaimPhoto, list[Placement]]:  # fmt: skip
    """One photo checked and its damage placed and graded: all a claim keeps of it (no
    pixels, no masks), so a claim is assessed photo by photo."""
    check = check_photo(image, rules, len(parts.detections) if parts is not None else None)
    photo = ClaimPhoto(name, damage.width, damage.height, check, len(damage.detections))
    placements = (place_damage(name, damage, parts, rules, check.sharpness)
                  if check.usable else [])  # fmt: skip
    return photo, placements


def claim_of(assessed: list[tuple[ClaimPhoto, list[Placement]]], rules: Rules,
             thresholds: dict[str, float] | None, with_parts: bool,
             videos: list[tuple[ClaimVideo, list[list[Placement]]]] = ()) -> Claim:  # fmt: skip
    """The claim of assessed photos and videos (each with its tracks' placements):
    photos' placements grouped into findings by (part, damage), each video track one
    finding; then the status."""
    thresholds = thresholds or {}
    claim_photos = [photo for photo, _ in assessed]
    tracked: list[tuple[VideoSeen, list[Placement]]] = []
    for video, tracks in videos:
        for placements in tracks:
            times = [p.time for p in placements]
            tracked.append((VideoSeen(video.name, len(placements), min(times), max(times)),
                            placements))  # fmt: skip
    groups: dict[tuple, list[Placement]] = {}
    for placement in (placement for _, placed in assessed for placement in placed):
        groups.setdefault((placement.part, placement.damage), []).append(placement)
    findings = []
    for seen, placements in tracked:
        part, damage = part_under(placements), placements[0].damage
        same = [p for s, p in tracked if (part_under(p), p[0].damage) == (part, damage)]
        # the video's only such damage: photos of that part and damage show it too
        photos = groups.pop((part, damage), []) if len(same) == 1 else []
        findings.append(_finding(part, damage, placements + photos, rules, thresholds,
                                 with_parts, best_evidence(placements) + photos, seen))  # fmt: skip
    for (part, damage), placements in groups.items():
        findings.append(_finding(part, damage, placements, rules, thresholds, with_parts))
    status_order = {s: i for i, s in enumerate(STATUSES)}
    findings.sort(key=lambda f: (status_order[f.status], f.part or "~", f.damage,
                                 f.video.first if f.video else -1.0))  # fmt: skip
    usable = sum(p.check.usable for p in claim_photos)
    kept = sum(len(video.kept) for video, _ in videos)
    reasons = []
    for video, _ in videos:
        if not video.kept:
            reasons.append(f"{video.name}: no usable frame")
    if usable + kept == 0:
        status = "rejected"
        reasons.append("no usable photo: every one needs a retake" if not videos
                       else "no usable photo or video frame")  # fmt: skip
    else:
        if usable < len(claim_photos):
            reasons.append(f"{len(claim_photos) - usable} of {len(claim_photos)} photos to retake")
        review = [f for f in findings if f.status == "needs_review"]
        if review:
            reasons.append(f"{len(review)} findings need review")
        if not any(f.status == "confirmed" for f in findings):
            reasons.append("no damage confirmed")
        status = "needs_review" if reasons else "confirmed"
    return Claim(claim_photos, findings, status, reasons, with_parts, rules=rules.source,
                 thresholds=dict(thresholds), videos=[video for video, _ in videos])  # fmt: skip


def model_entry(detector) -> dict:
    """What claim.json says of a model: its file, that file's sha256, its classes."""
    return {
        "path": str(detector.checkpoint),
        "sha256": detector.model_file.sha256,
        "classes": detector.classes.categories(),
    }


def claim_lines(claim: Claim) -> list[str]:
    """What `cardd assess` prints: the claim's status, each video's frames, then one
    line per finding."""
    document = claim.to_dict()
    counted = ", ".join(
        ([f"{document['photos_usable']}/{document['photos_total']} photos usable"]
         if claim.photos or not claim.videos else [])
        + ([f"{document['frames_kept']} video frames used"] if claim.videos else [])
    )  # fmt: skip
    lines = [
        f"claim {claim.status}: {len(claim.findings)} findings, {counted}"
        + (f" ({'; '.join(claim.reasons)})" if claim.reasons else "")
    ]
    lines += [f"  {video.line()}" for video in claim.videos]
    for photo in claim.photos:
        if not photo.check.usable:
            lines.append(f"  retake {photo.name}: {', '.join(photo.check.reasons)}")
    for f in claim.findings:
        where = f.part or ("no part found" if claim.with_parts else "part unknown (no parts model)")
        grade = f"{f.severity}, {f.operation}" if f.severity else "no rule"
        if f.video:
            frames = f"{f.video.frames} frame{'' if f.video.frames == 1 else 's'}"
            seen = (f"seen in {frames} of {f.video.source} "
                    f"({f.video.first:.1f}-{f.video.last:.1f} s)")  # fmt: skip
            photos = {e.photo for e in f.evidence if e.time is None}
            seen += f" and {len(photos)} photos" if photos else ""
        else:
            photos = len({e.photo for e in f.evidence})
            seen = f"{len(f.evidence)} detections in {photos} photos"
        lines.append(
            f"  {f.status:<12} {f.damage} on {where}: {grade}, score {f.score:.2f} "
            f"(threshold {f.threshold:g}), {seen}"
        )
    return lines
