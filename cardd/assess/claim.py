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
* photos a handler would ask to retake (too small, blurred, dark, overexposed, no
  car part) are flagged and not used for findings.

Everything here is arithmetic on masks and numbers, so it is tested on hand-made
cases; `assess_images` runs the models. The rules are `cardd.assess.rules`; the command's
run (models, output folders) is `cardd.assess.run`.
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
    load_rules,
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


@dataclass
class Placement:
    """Where one damage detection lies and how large it is."""

    photo: str
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

    def to_dict(self) -> dict:
        return {
            "photo": self.photo, "detection": self.index, "damage": self.damage,
            "category_id": self.category_id, "score": round(self.score, 4),
            "bbox_xyxy": [round(v, 1) for v in self.bbox_xyxy], "part": self.part,
            "parts": self.parts, "size": round(self.size, 4),
            "size_relative_to": self.size_relative_to, "severity": self.severity,
            "operation": self.operation,
        }  # fmt: skip


def place_damage(
    photo: str, damage: ImageResult, parts: ImageResult | None, rules: Rules
) -> list[Placement]:
    """Each damage of one photo on the part it overlaps most, sized and graded."""
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
            )  # fmt: skip
        )
    return placements


@dataclass
class Finding:
    """One (part, damage class) of the claim, with every detection that shows it."""

    part: str | None
    damage: str
    evidence: list[Placement]
    severity: str | None
    operation: str | None
    score: float  # the best evidence's
    threshold: float
    status: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "part": self.part, "damage": self.damage, "severity": self.severity,
            "operation": self.operation, "score": round(self.score, 4),
            "threshold": self.threshold, "status": self.status, "reasons": self.reasons,
            "photos": sorted({e.photo for e in self.evidence}),
            "evidence": [e.to_dict() for e in self.evidence],
        }  # fmt: skip


def _finding(key, evidence: list[Placement], rules: Rules, thresholds: dict, with_parts: bool):
    part, damage = key
    order = {s: i for i, s in enumerate(SEVERITIES)}
    graded = [e for e in evidence if e.severity is not None]
    worst = max(graded, key=lambda e: (order[e.severity], e.size)) if graded else None
    score = max(e.score for e in evidence)
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
        part=part, damage=damage, evidence=evidence,
        severity=worst.severity if worst else None,
        operation=worst.operation if worst else None,
        score=score, threshold=threshold, status=status, reasons=reasons,
    )  # fmt: skip


@dataclass
class ClaimPhoto:
    name: str
    width: int
    height: int
    check: PhotoCheck
    detections: int


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

    def to_dict(self) -> dict:
        usable = sum(p.check.usable for p in self.photos)
        return {
            "format": CLAIM_FORMAT,
            "status": self.status,
            "reasons": self.reasons,
            "photos_usable": usable,
            "photos_total": len(self.photos),
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
            "models": self.models,
            "rules": self.rules,
            "thresholds": self.thresholds,
        }

    def csv_text(self) -> str:
        """One row per finding."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["part", "damage", "severity", "operation", "score", "threshold",
                         "status", "photos", "evidence"])  # fmt: skip
        for f in self.findings:
            writer.writerow([
                f.part or "", f.damage, f.severity or "", f.operation or "", f"{f.score:.4f}",
                f"{f.threshold:g}", f.status, " ".join(sorted({e.photo for e in f.evidence})),
                len(f.evidence),
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
    return photo, place_damage(name, damage, parts, rules) if check.usable else []


def claim_of(assessed: list[tuple[ClaimPhoto, list[Placement]]], rules: Rules,
             thresholds: dict[str, float] | None, with_parts: bool) -> Claim:  # fmt: skip
    """The claim of assessed photos: placements grouped into findings, the status."""
    thresholds = thresholds or {}
    claim_photos = [photo for photo, _ in assessed]
    placements = [placement for _, placed in assessed for placement in placed]
    groups: dict[tuple, list[Placement]] = {}
    for placement in placements:
        groups.setdefault((placement.part, placement.damage), []).append(placement)
    findings = [_finding(k, v, rules, thresholds, with_parts) for k, v in groups.items()]
    status_order = {s: i for i, s in enumerate(STATUSES)}
    findings.sort(key=lambda f: (status_order[f.status], f.part or "~", f.damage))
    usable = sum(p.check.usable for p in claim_photos)
    reasons = []
    if usable == 0:
        status = "rejected"
        reasons.append("no usable photo: every one needs a retake")
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
                 thresholds=dict(thresholds))  # fmt: skip


def model_entry(detector) -> dict:
    """What claim.json says of a model: its file, that file's sha256, its classes."""
    return {
        "path": str(detector.checkpoint),
        "sha256": detector.model_file.sha256,
        "classes": detector.classes.categories(),
    }


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
    rules = rules or load_rules()
    assessed = []
    for name, image in zip(names, images, strict=True):
        image = image() if callable(image) else image
        height, width = image.shape[:2]
        cap = max_detections(width, height) if max_detections else None
        damage = damage_detector.detect([image], [name], score_thr, max_detections=cap)[0]
        parts = None
        if parts_detector is not None:
            parts = parts_detector.detect([image], [name], max_detections=cap)[0]
        assessed.append(assess_photo(name, image, damage, parts, rules))
        if on_photo is not None:
            on_photo(name, image, damage, parts, assessed[-1][1])
        del image, damage, parts  # before the next photo is decoded
    claim = claim_of(assessed, rules, thresholds, parts_detector is not None)
    claim.models = {"damage": model_entry(damage_detector)}
    if parts_detector is not None:
        claim.models["parts"] = model_entry(parts_detector)
    return claim


def claim_lines(claim: Claim) -> list[str]:
    """What `cardd assess` prints: the claim's status, then one line per finding."""
    document = claim.to_dict()
    lines = [
        f"claim {claim.status}: {len(claim.findings)} findings, "
        f"{document['photos_usable']}/{document['photos_total']} photos usable"
        + (f" ({'; '.join(claim.reasons)})" if claim.reasons else "")
    ]
    for photo in claim.photos:
        if not photo.check.usable:
            lines.append(f"  retake {photo.name}: {', '.join(photo.check.reasons)}")
    for f in claim.findings:
        where = f.part or ("no part found" if claim.with_parts else "part unknown (no parts model)")
        grade = f"{f.severity}, {f.operation}" if f.severity else "no rule"
        photos = len({e.photo for e in f.evidence})
        lines.append(
            f"  {f.status:<12} {f.damage} on {where}: {grade}, score {f.score:.2f} "
            f"(threshold {f.threshold:g}), {len(f.evidence)} detections in {photos} photos"
        )
    return lines
