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
cases; `assess_photos` runs the models.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core import options
from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.core.options import Option
from cardd.core.runs import OPTIONS_FILE, RunKind, save_options

if TYPE_CHECKING:
    import numpy as np

    from cardd.detector.results import ImageResult
    from cardd.structures.results import Detection

#: The version of claim.json's layout (README: "Claim assessment").
CLAIM_FORMAT = 1
SEVERITIES = ("minor", "moderate", "severe")
STATUSES = ("confirmed", "needs_review", "rejected")
#: A part a damage touches with less than this share of its pixels is not listed.
MIN_PART_SHARE = 0.05
DEFAULT_RULES = Path(__file__).resolve().parent / "claim_rules.yaml"


@dataclass(frozen=True)
class ClassRule:
    moderate: float  # relative size where moderate starts
    severe: float
    operations: dict[str, str]  # severity -> operation

    def severity(self, size: float) -> str:
        if size >= self.severe:
            return "severe"
        return "moderate" if size >= self.moderate else "minor"


@dataclass(frozen=True)
class Rules:
    """A validated rules file."""

    classes: dict[str, ClassRule]
    confirm: float
    reject: float
    photos: dict[str, float]
    source: str

    def for_model(self, names: tuple[str, ...], given: bool) -> Rules:
        """These rules for a damage model of classes `names`: a file the user gave must
        name only those (`check_classes`); cardd's default (CarDD's classes) is cut to
        them, and a class it lacks gets no severity, said per finding."""
        if given:
            self.check_classes(names)
            return self
        kept = {k: v for k, v in self.classes.items() if k in names}
        return Rules(kept, self.confirm, self.reject, self.photos, self.source)

    def check_classes(self, names: tuple[str, ...]) -> None:
        """Refuse rules for classes the damage model does not predict."""
        unknown = sorted(set(self.classes) - set(names))
        if unknown:
            raise CarddError(
                f"{self.source}: classes.{unknown[0]} is not a class of the damage model "
                f"({', '.join(names)})"
            )


_PHOTO_KEYS = {"min_side": 480, "min_sharpness": 40.0, "min_brightness": 40, "max_brightness": 220}


def _number(value, where: str, low: float = 0.0, high: float | None = None) -> float:
    """A finite number in range (NaN compares false with every bound: refused first)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CarddError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise CarddError(f"{where} must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise CarddError(f"{where} = {value} is outside {bounds}")
    return float(value)


def load_rules(path: Path | None = None) -> Rules:
    """The rules file at `path` (default: cardd's), validated.

    Raises:
        CarddError: bad YAML, an unknown key, thresholds out of order or range: one
            line naming the key.
    """
    from cardd.data.spec import read_yaml

    path = path or DEFAULT_RULES
    source = str(path)
    data = read_yaml(path, "rules file")
    if not isinstance(data, dict):
        raise CarddError(f"{path}: expected keys version, classes, scores, photos")
    unknown = sorted(set(data) - {"version", "classes", "scores", "photos"})
    if unknown:
        raise CarddError(f"{path}: unknown key {unknown[0]!r}")
    if data.get("version") != 1:
        raise CarddError(f"{path}: version must be 1, got {data.get('version')!r}")
    classes = {}
    given_classes = data.get("classes") or {}
    if not isinstance(given_classes, dict):
        raise CarddError(f"{path}: classes maps a class name to its rule, got a list or value")
    for name, rule in given_classes.items():
        where = f"{path}: classes.{name}"
        if not isinstance(rule, dict) or set(rule) - {"size", "operation"}:
            raise CarddError(f"{where} takes `size` and `operation`")
        size = rule.get("size") or {}
        if not isinstance(size, dict) or set(size) != {"moderate", "severe"}:
            raise CarddError(f"{where}.size needs `moderate` and `severe`")
        moderate = _number(size["moderate"], f"{where}.size.moderate", 0.0, 1.0)
        severe = _number(size["severe"], f"{where}.size.severe", 0.0, 1.0)
        if moderate > severe:
            raise CarddError(
                f"{where}.size: moderate {moderate} is above severe {severe} (out of order)"
            )
        operation = rule.get("operation")
        if isinstance(operation, str) and operation.strip():
            operations = dict.fromkeys(SEVERITIES, operation)
        elif (
            isinstance(operation, dict)
            and set(operation) == set(SEVERITIES)
            and all(isinstance(v, str) and v.strip() for v in operation.values())
        ):
            operations = dict(operation)
        else:
            raise CarddError(f"{where}.operation: one word, or one per level {SEVERITIES}")
        classes[str(name)] = ClassRule(moderate, severe, operations)
    scores = data.get("scores") or {}
    if not isinstance(scores, dict) or set(scores) - {"confirm", "reject"}:
        raise CarddError(f"{path}: scores takes `confirm` and `reject`")
    confirm = _number(scores.get("confirm", 0.5), f"{path}: scores.confirm", 0.0, 1.0)
    reject = _number(scores.get("reject", 0.15), f"{path}: scores.reject", 0.0, 1.0)
    if reject > confirm:
        raise CarddError(f"{path}: scores.reject {reject} is above scores.confirm {confirm}")
    photos = dict(_PHOTO_KEYS)
    given = data.get("photos") or {}
    if not isinstance(given, dict) or set(given) - set(_PHOTO_KEYS):
        extra = sorted(set(given) - set(_PHOTO_KEYS)) if isinstance(given, dict) else ["?"]
        raise CarddError(f"{path}: photos has unknown key {extra[0]!r}")
    for key, value in given.items():
        photos[key] = _number(value, f"{path}: photos.{key}", 0.0)
    return Rules(classes, confirm, reject, photos, source)


def thresholds_from_metrics(path: Path, names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Per class, the best-F1 score threshold of a `cardd eval` metrics.json (box AP's);
    with `names` (the damage model's classes), a class outside them is refused."""
    import json

    try:
        metrics = json.loads(Path(path).read_text())
        best = (metrics.get("bbox") or metrics.get("segm") or {}).get("best_f1") or {}
    except (OSError, ValueError, AttributeError) as error:
        raise CarddError(f"--thresholds {path}: not a cardd eval metrics.json ({error})") from None
    if not isinstance(best, dict) or not best:
        raise CarddError(f"--thresholds {path}: no best_f1 thresholds (run `cardd eval`)")
    unknown = sorted(set(best) - set(names)) if names is not None else []
    if unknown:
        raise CarddError(f"--thresholds {path}: {unknown[0]!r} is not a damage class")
    thresholds = {}
    for name, entry in best.items():
        if not entry:
            continue
        if not isinstance(entry, dict) or "threshold" not in entry:
            raise CarddError(f"--thresholds {path}: best_f1.{name} has no threshold")
        where = f"--thresholds {path}: best_f1.{name}.threshold"
        thresholds[name] = _number(entry["threshold"], where, 0.0, 1.0)
    return thresholds


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


@dataclass
class AssessOptions:
    """`cardd assess`: the photos of one claim and the models that read them, each option
    declared once (`cardd.core.options`)."""

    inputs: tuple[str, ...] = ()
    claims: Path | None = Option(
        "--claims",
        "A folder with one subfolder of photos per claim, instead of INPUTS: OUT/<claim>/ "
        "each, and OUT/claims.csv.",
        "path",
    ).field()
    damage_model: str | None = Option(
        "--damage-model", "The damage model (an export or checkpoint).", required=True
    ).field()
    parts_model: str | None = options.PARTS_MODEL.field()
    parts_score_thr: float = options.PARTS_SCORE_THR.field()  # part masks below it are not parts
    rules: Path | None = options.RULES.field()
    thresholds: Path | None = options.THRESHOLDS.field()  # best-F1 per class
    out_dir: Path | str | None = Option(
        "--out-dir", "A folder or URL. Default: runs/assess/exp, exp2, ...", "location"
    ).field()
    device: str = options.DEVICE.field()
    score_thr: float = options.SCORE_THR.but(
        default=0.1,
        help="Detections below this score are not assessed at all (statuses use the "
        "thresholds).",
    ).field()
    exist_ok: bool = options.EXIST_OK.field()
    trust_checkpoint: bool = options.TRUST.field()  # the damage model only
    trust_parts_model: bool = options.TRUST_PARTS.field()  # trust is per file


#: `cardd assess`'s run folders (`cardd.core.runs`): claim.json or claims.csv marks one;
#: `--exist-ok` replaces a claim's files (and, with --claims, the claims' folders).
ASSESS_RUN = RunKind(
    command="assess",
    flag="--out-dir",
    marks=frozenset({"claim.json", "claims.csv"}),
    outputs=("claim.json", "claim.csv", "claim.html", "photos", "evidence", "claims.csv",
             OPTIONS_FILE),
)  # fmt: skip


def model_entry(detector) -> dict:
    """What claim.json says of a model: its file, that file's sha256, its classes."""
    return {
        "path": str(detector.checkpoint),
        "sha256": detector.model_file.sha256,
        "classes": detector.classes.categories(),
    }


def _load_models(opts: AssessOptions):
    """The damage and parts detectors, the rules and thresholds, checked together."""
    from cardd.detector.predictor import DamageDetector

    rules = load_rules(opts.rules)

    def detector(checkpoint: str, score_thr: float, trust: bool) -> DamageDetector:
        return DamageDetector(
            checkpoint=checkpoint, device=opts.device, score_thr=score_thr, trust_checkpoint=trust
        )

    damage_detector = detector(opts.damage_model, opts.score_thr, opts.trust_checkpoint)
    names = damage_detector.classes.names
    rules = rules.for_model(names, given=opts.rules is not None)
    thresholds = thresholds_from_metrics(opts.thresholds, names) if opts.thresholds else {}
    parts_detector = (
        detector(opts.parts_model, opts.parts_score_thr, opts.trust_parts_model)
        if opts.parts_model
        else None
    )
    return damage_detector, parts_detector, rules, thresholds


def _assess_into(out: Path, inputs: tuple[str, ...], models) -> Claim:
    """One claim's photos through the models; its files written into `out`."""
    import json

    from cardd.detector.inputs import collect_inputs, load_input
    from cardd.structures.images import UnreadableImage
    from cardd.visualize.report import ClaimPictures, write_claim_report

    damage_detector, parts_detector, rules, thresholds = models
    items = collect_inputs(inputs)
    for item in items:
        if item.refused:
            raise CarddError(item.refused)

    def decoder(item):
        def decode():  # when its turn comes: one photo's pixels at a time
            array = load_input(item.path)  # a path or a URL
            if isinstance(array, UnreadableImage):
                raise CarddError(str(array))
            return array

        return decode

    pictures = ClaimPictures(damage_detector.classes)
    claim = assess_images(
        damage_detector, [decoder(item) for item in items], [str(i.relative) for i in items],
        parts_detector, rules, thresholds, on_photo=pictures,
    )  # fmt: skip
    for name, text in (
        ("claim.json", json.dumps(claim.to_dict(), indent=2, allow_nan=False)),
        ("claim.csv", claim.csv_text()),
    ):
        write_file(out / name, text, root=out)
    write_claim_report(out, claim, pictures)
    return claim


def run_assessment(opts: AssessOptions) -> tuple[Claim, Path | str]:
    """Run the models over one claim's photos and write claim.json, claim.csv and
    claim.html (with `photos/` annotated and `evidence/` crops).

    Returns:
        The claim and its output folder.
    """
    from cardd.core import storage
    from cardd.detector.inputs import collect_inputs

    collect_inputs(opts.inputs)  # inputs and output folder checked before the models load
    ASSESS_RUN.check(opts.out_dir, opts.exist_ok)
    models = _load_models(opts)
    out = str(ASSESS_RUN.open(opts.out_dir, opts.exist_ok))
    with storage.staged_output(out) as local:  # a URL: written here, uploaded when whole
        claim = _assess_into(local, opts.inputs, models)
        save_options(local, opts)
    return claim, storage.shown(out, local)


def run_claims(
    opts: AssessOptions, claims_dir: Path
) -> tuple[list[tuple[str, Claim | str]], Path | str]:
    """Every subfolder of `claims_dir` as one claim (models loaded once): its files in
    `<out>/<subfolder>/`, and `<out>/claims.csv` with a row per claim. A claim that
    cannot be assessed (an unreadable photo) is listed with why, and the rest go on.

    Returns:
        (claim name, its Claim or why it failed) per claim, and the output folder.
    """
    from cardd.core import storage
    from cardd.structures.images import IMAGE_SUFFIXES

    if not claims_dir.is_dir():
        raise CarddError(f"--claims {claims_dir} is not a folder")
    folders = [
        f for f in sorted(claims_dir.iterdir())
        if f.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in f.iterdir())
    ]  # fmt: skip
    if not folders:
        raise CarddError(f"--claims {claims_dir}: no subfolder with photos (one per claim)")
    ASSESS_RUN.check(opts.out_dir, opts.exist_ok)
    models = _load_models(opts)
    out = str(ASSESS_RUN.open(opts.out_dir, opts.exist_ok, also=tuple(f.name for f in folders)))
    results: list[tuple[str, Claim | str]] = []
    with storage.staged_output(out) as local:  # a URL: written here, uploaded at the end
        for folder in folders:
            try:
                claim = _assess_into(local / folder.name, (str(folder),), models)
                results.append((folder.name, claim))
            except CarddError as error:
                results.append((folder.name, str(error)))
        write_file(local / "claims.csv", _claims_table(results))
        save_options(local, opts)
    return results, storage.shown(out, local)


def _claims_table(results: list[tuple[str, Claim | str]]) -> str:
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["claim", "status", "findings", "confirmed", "needs_review", "rejected",
                     "photos_usable", "photos_total", "reasons"])  # fmt: skip
    for name, claim in results:
        if isinstance(claim, str):
            writer.writerow([name, "failed", "", "", "", "", "", "", claim])
            continue
        counts = [sum(f.status == s for f in claim.findings) for s in STATUSES]
        usable = sum(p.check.usable for p in claim.photos)
        writer.writerow([name, claim.status, len(claim.findings), *counts, usable,
                         len(claim.photos), "; ".join(claim.reasons)])  # fmt: skip
    return table.getvalue()


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
