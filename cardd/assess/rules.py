"""Claim rules: severity from a damage's size on its part, the operation, the photo
checks' limits (`claim_rules.yaml`, data, checked field by field), and the score
thresholds that confirm findings (a `cardd eval` metrics.json)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from cardd.core.errors import CarddError

#: The version of claim.json's layout (README: "Claim assessment").
CLAIM_FORMAT = 2
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


