"""Claim assessment on hand-made masks (every number checked), rules, and `cardd assess`."""

import json
from pathlib import Path

import numpy as np
import pytest

from cardd.assess.claim import assess_claim, check_photo, place_damage
from cardd.assess.rules import load_rules, thresholds_from_metrics
from cardd.core.errors import CarddError
from cardd.detector.results import ImageResult
from cardd.structures.classes import CARDD, ClassSet
from cardd.structures.results import Detection
from tests.conftest import broken_links, run_cardd

H, W = 600, 800
PARTS = ClassSet.from_categories([{"id": 1, "name": "front door"}, {"id": 2, "name": "fender"}])


def _mask(x1, y1, x2, y2):
    mask = np.zeros((H, W), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _detection(classes, name, score, box):
    mask = _mask(*box)
    area = float(mask.sum())
    return Detection(name, classes.ids[classes.names.index(name)], score, [float(v) for v in box],
                     area, area / (H * W), mask)  # fmt: skip


def _result(name, classes, detections):
    return ImageResult(name, W, H, detections, "cfg", "ckpt", 0.1, classes)


def _photo(seed=0, value=None):
    """A textured photo (sharp, mid brightness), or one flat value."""
    if value is not None:
        return np.full((H, W, 3), value, dtype=np.uint8)
    return np.random.default_rng(seed).integers(60, 200, (H, W, 3), dtype=np.uint8)


DOOR, FENDER = (0, 0, 400, 600), (400, 0, 800, 600)  # 240,000 pixels each


def _parts(name):
    return _result(name, PARTS, [_detection(PARTS, "front door", 0.9, DOOR),
                                 _detection(PARTS, "fender", 0.9, FENDER)])  # fmt: skip


def test_a_dent_across_two_parts_lies_on_the_one_it_covers_most():
    rules = load_rules()
    dent = _detection(
        CARDD, "dent", 0.8, (280, 100, 480, 300)
    )  # 120 px wide on the door, 80 on the fender
    (placed,) = place_damage("a.jpg", _result("a.jpg", CARDD, [dent]), _parts("a.jpg"), rules)
    assert placed.part == "front door"
    assert placed.parts == [{"part": "front door", "share": 0.6}, {"part": "fender", "share": 0.4}]
    assert placed.size == pytest.approx(40_000 / 240_000) and placed.size_relative_to == "part"
    assert placed.severity == "moderate" and placed.operation == "repair"  # 0.05 <= 0.167 < 0.2


def test_a_scratch_on_no_part_and_no_parts_model_say_so():
    rules = load_rules()
    scratch = _detection(CARDD, "scratch", 0.9, (10, 10, 110, 60))  # 5,000 pixels
    empty_parts = _result("b.jpg", PARTS, [])
    (placed,) = place_damage("b.jpg", _result("b.jpg", CARDD, [scratch]), empty_parts, rules)
    assert placed.part is None and placed.parts == [] and placed.size_relative_to == "photo"
    claim = assess_claim(
        [("b.jpg", _photo(), _result("b.jpg", CARDD, [scratch]),
          _result("b.jpg", PARTS, [_detection(PARTS, "fender", 0.9, FENDER)]))],
        rules,
    )  # fmt: skip
    (finding,) = claim.findings
    assert finding.part is None and finding.status == "needs_review"
    assert "on no car part found" in finding.reasons
    without_parts = assess_claim(
        [("b.jpg", _photo(), _result("b.jpg", CARDD, [scratch]), None)], rules
    )
    (finding,) = without_parts.findings
    assert finding.status == "confirmed" and finding.evidence[0].size == pytest.approx(
        5_000 / (H * W)
    )
    assert without_parts.to_dict()["size_relative_to"] == "photo"
    assert finding.severity == "minor" and finding.operation == "polish"


def test_the_same_damage_in_three_photos_is_one_finding_with_its_evidence():
    rules = load_rules()
    boxes = [
        (100, 100, 150, 150),
        (50, 50, 250, 250),
        (100, 100, 300, 350),
    ]  # sizes 1/96, 1/6, 5/24
    photos = [
        (f"p{k}.jpg", _photo(k), _result(f"p{k}.jpg", CARDD, [_detection(CARDD, "dent", s, b)]),
         _parts(f"p{k}.jpg"))
        for k, (s, b) in enumerate(zip((0.6, 0.7, 0.65), boxes, strict=True))
    ]  # fmt: skip
    claim = assess_claim(photos, rules)
    (finding,) = claim.findings
    assert finding.part == "front door" and finding.damage == "dent"
    assert [e.photo for e in finding.evidence] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert finding.severity == "severe" and finding.operation == "replace"  # 50,000 / 240,000
    assert finding.score == 0.7 and finding.status == "confirmed" and claim.status == "confirmed"
    document = claim.to_dict()
    assert document["findings"][0]["photos"] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert document["photos_usable"] == 3 and claim.csv_text().count("\n") == 2


@pytest.mark.parametrize(
    ("score", "status"),
    [(0.62, "confirmed"), (0.6199, "needs_review"), (0.15, "needs_review"), (0.1499, "rejected")],
)
def test_a_finding_just_under_its_threshold_is_never_passed(score, status):
    rules = load_rules()  # reject below 0.15
    crack = _detection(CARDD, "crack", score, (500, 200, 520, 260))
    claim = assess_claim(
        [("c.jpg", _photo(), _result("c.jpg", CARDD, [crack]), _parts("c.jpg"))],
        rules,
        thresholds={"crack": 0.62},
    )
    assert claim.findings[0].status == status and claim.findings[0].threshold == 0.62
    assert claim.status == ("confirmed" if status == "confirmed" else "needs_review")


def test_photos_to_retake_are_flagged_and_not_used():
    rules = load_rules()
    small = np.random.default_rng(0).integers(60, 200, (300, 400, 3), dtype=np.uint8)
    assert check_photo(small, rules, None).reasons == [
        "too small (400x300, shorter side under 480)"
    ]
    dark = check_photo(_photo(value=10), rules, None)
    assert "too dark (brightness 10 < 40)" in dark.reasons and any(
        "blurred" in r for r in dark.reasons
    )
    assert (
        "overexposed (brightness 250 > 220)" in check_photo(_photo(value=250), rules, None).reasons
    )
    assert check_photo(_photo(), rules, 0).reasons == ["no car part found"]
    assert check_photo(_photo(), rules, 2).usable
    dent = _detection(CARDD, "dent", 0.9, (100, 100, 200, 200))
    claim = assess_claim(
        [("good.jpg", _photo(), _result("good.jpg", CARDD, [dent]), _parts("good.jpg")),
         ("dark.jpg", _photo(value=10), _result("dark.jpg", CARDD, [dent]), _parts("dark.jpg"))],
        rules,
    )  # fmt: skip
    assert [e.photo for e in claim.findings[0].evidence] == ["good.jpg"]
    assert claim.status == "needs_review" and "1 of 2 photos to retake" in claim.reasons
    nothing = assess_claim(
        [("dark.jpg", _photo(value=10), _result("dark.jpg", CARDD, []), None)], rules
    )
    assert nothing.status == "rejected" and nothing.to_dict()["photos_usable"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nclasses: [1, 2", "is not valid YAML"),
        ("version: 2\n", "version must be 1"),
        ("version: 1\nextra: 3\n", "unknown key 'extra'"),
        ("version: 1\nclasses:\n  dent: {size: {moderate: 0.3, severe: 0.1}, operation: repair}\n",
         "classes.dent.size: moderate 0.3 is above severe 0.1 (out of order)"),
        ("version: 1\nclasses:\n  dent: {size: {moderate: 0.1}, operation: repair}\n",
         "classes.dent.size needs `moderate` and `severe`"),
        ("version: 1\nclasses:\n  dent: {size: {moderate: 0.1, severe: 2}, operation: repair}\n",
         "classes.dent.size.severe = 2 is outside 0.0..1.0"),
        ("version: 1\nclasses:\n  dent: {size: {moderate: 0.1, severe: 0.2},\n"
         "    operation: {minor: x}}\n",
         "classes.dent.operation: one word, or one per level"),
        ("version: 1\nscores: {confirm: 0.2, reject: 0.4}\n", "scores.reject 0.4 is above"),
        ("version: 1\nphotos: {min_width: 3}\n", "photos has unknown key 'min_width'"),
        # NaN compares false with every bound: refused as not finite
        ("version: 1\nscores: {confirm: .nan}\n", "scores.confirm must be a finite number"),
        ("version: 1\nclasses:\n  dent: {size: {moderate: .nan, severe: 0.2}, operation: x}\n",
         "classes.dent.size.moderate must be a finite number"),
        ("version: 1\nphotos: {min_side: .inf}\n", "photos.min_side must be a finite number"),
        ("version: 1\nclasses: [a, b]\n", "classes maps a class name to its rule"),
        ("version: 1\nclasses: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deep"),
    ],
)  # fmt: skip
def test_bad_rules_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(CarddError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_rules(path)


def test_rules_name_only_the_damage_models_classes_and_thresholds_come_from_eval(tmp_path):
    rules = load_rules()
    rules.check_classes(CARDD.names)
    with pytest.raises(CarddError, match="classes.crack is not a class of the damage model"):
        rules.check_classes(("paint chip",))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps({"bbox": {"best_f1": {"dent": {"threshold": 0.41}, "crack": None}}})
    )
    assert thresholds_from_metrics(metrics) == {"dent": 0.41}
    metrics.write_text("{}")
    with pytest.raises(CarddError, match="no best_f1 thresholds"):
        thresholds_from_metrics(metrics)
    for bad in ("NaN", '"high"', "1.5", "true"):  # json.loads reads NaN as float('nan')
        metrics.write_text(f'{{"bbox": {{"best_f1": {{"dent": {{"threshold": {bad}}}}}}}}}')
        with pytest.raises(CarddError, match="best_f1.dent.threshold"):
            thresholds_from_metrics(metrics)


def _rules_for_small_photos(tmp_path):
    """cardd's rules but for the photo size and sharpness checks: the synthetic photos
    are 256-352 px drawings, which a handler would ask to retake."""
    rules = tmp_path / "rules.yaml"
    text = Path(load_rules().source).read_text()
    loose = "photos: {min_side: 200, min_sharpness: 0"
    rules.write_text(text.replace("photos: {min_side: 480, min_sharpness: 40.0", loose))
    assert loose in rules.read_text()  # the default file still reads as expected
    return rules


@pytest.mark.slow
def test_cardd_assess_writes_the_claim(tiny_export, synthetic_root, tmp_path):
    """The tiny CarDD model as damage model and, standing in for a parts model (any cardd
    model can be one), as parts model: damage is placed on its masks."""
    rules = _rules_for_small_photos(tmp_path)
    out = tmp_path / "claim"
    result = run_cardd(
        "assess", synthetic_root / "test2017", "--damage-model", tiny_export, "--parts-model",
        tiny_export, "--rules", rules, "--device", "cpu", "--out-dir", out, "--score-thr", "0.05",
        "--parts-score-thr", "0.05",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claim = json.loads((out / "claim.json").read_text())
    assert claim["format"] == 2 and claim["photos_total"] == 2 and claim["photos_usable"] == 2
    assert claim["size_relative_to"] == "part" and set(claim["models"]) == {"damage", "parts"}
    assert claim["findings"] and all(f["status"] in ("confirmed", "needs_review", "rejected")
                                     for f in claim["findings"])  # fmt: skip
    placed = [e for f in claim["findings"] for e in f["evidence"] if e["part"]]
    assert placed and all(e["parts"][0]["part"] == e["part"] for e in placed)
    assert result.stdout.splitlines()[0].startswith(f"claim {claim['status']}: ")
    assert (out / "claim.csv").read_text().count("\n") == len(claim["findings"]) + 1
    page = (out / "claim.html").read_text()
    assert claim["status"] in page and not broken_links(out / "claim.html")
    assert len(list((out / "photos").glob("*.jpg"))) == 2 and list((out / "evidence").glob("*.jpg"))

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nclasses:\n  paint chip: {size: {moderate: 0, severe: 0}, operation: x}\n"
    )
    refused = tmp_path / "refused"
    result = run_cardd(
        "assess", synthetic_root / "test2017", "--damage-model", tiny_export, "--rules", bad,
        "--device", "cpu", "--out-dir", refused,
    )  # fmt: skip
    assert result.returncode == 1 and "classes.paint chip is not a class" in result.stderr
    assert "Traceback" not in result.stderr and not refused.exists()


def _by_basename(claim: dict) -> dict:
    """A claim with its photos named by file name (the CLI names them by input folder)."""
    import copy
    from pathlib import PurePosixPath

    claim = copy.deepcopy(claim)

    def base(name):
        return PurePosixPath(name).name

    for finding in claim["findings"]:
        finding["photos"] = sorted(base(p) for p in finding["photos"])
        for evidence in finding["evidence"]:
            evidence["photo"] = base(evidence["photo"])
    for photo in claim["photos"]:
        photo["name"] = base(photo["name"])
    return claim


@pytest.mark.slow
def test_the_service_assesses_a_claim_as_the_command_does(tiny_export, synthetic_root, tmp_path):
    import requests

    from tests.support import live_service

    rules = _rules_for_small_photos(tmp_path)
    photos = sorted((synthetic_root / "test2017").glob("*.jpg"))
    out = tmp_path / "cli"
    result = run_cardd(
        "assess", *photos, "--damage-model", tiny_export, "--parts-model", tiny_export,
        "--rules", rules, "--device", "cpu", "--out-dir", out, "--score-thr", "0.05",
        "--parts-score-thr", "0.05",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from_cli = json.loads((out / "claim.json").read_text())
    with live_service.running(
        tiny_export, tmp_path / "serve.log", "--parts-model", str(tiny_export), "--rules",
        str(rules), "--max-photos", "2", "--parts-score-thr", "0.05", config=None,
    ) as service:  # fmt: skip
        files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        answer = requests.post(f"{service.url}/v1/assess?score_thr=0.05", files=files, timeout=120)
        assert answer.status_code == 200, answer.text
        too_many = requests.post(f"{service.url}/v1/assess", files=files * 2, timeout=60)
        assert too_many.status_code == 413 and "at most 2 per claim" in too_many.json()["error"]
        not_multipart = requests.post(f"{service.url}/v1/assess", data=b"x", timeout=60)
        assert not_multipart.status_code == 400
    assert _by_basename(answer.json()) == _by_basename(from_cli)
    assert from_cli["findings"] and from_cli["models"]["parts"]["sha256"]


@pytest.mark.slow
def test_several_claims_at_once_and_a_broken_one_does_not_stop_the_rest(
    tiny_export, synthetic_root, tmp_path
):
    import shutil

    claims = tmp_path / "claims"
    shutil.copytree(synthetic_root / "test2017", claims / "c1")
    shutil.copytree(synthetic_root / "val2017", claims / "c2")
    (claims / "c2" / "broken.jpg").write_bytes(b"not a jpeg")
    (claims / "no photos").mkdir()
    out = tmp_path / "out"
    result = run_cardd(
        "assess", "--claims", claims, "--damage-model", tiny_export, "--device", "cpu",
        "--out-dir", out,
    )  # fmt: skip
    assert result.returncode == 1 and "c2: failed: " in result.stderr
    assert "Traceback" not in result.stderr
    rows = (out / "claims.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["c1", "rejected"], ["c2", "failed"]]
    assert json.loads((out / "c1/claim.json").read_text())["photos_total"] == 2
    usage = run_cardd("assess", "--damage-model", tiny_export)
    assert usage.returncode == 2 and "--claims DIR" in usage.stderr


@pytest.mark.slow
def test_a_parts_model_trained_on_synthetic_parts_places_the_damage(tiny_export, tmp_path):
    from cardd.data.synth import synthesize
    from cardd.train.options import TrainOptions
    from cardd.train.runner import train

    synthesize(tmp_path / "parts", images=12, seed=0, parts=True)
    root = tmp_path / "parts" / "CarDD_COCO"
    work_dir = train(
        TrainOptions(
            config="tiny_DCN_plus",
            data_root=root,
            work_dir=tmp_path / "run",
            device="cpu",
            max_epochs=1,
            seed=0,
        )  # fmt: skip
    )
    rules = _rules_for_small_photos(tmp_path)
    out = tmp_path / "claim"
    result = run_cardd(
        "assess", root / "test2017", "--damage-model", tiny_export, "--parts-model",
        work_dir / "epoch_1.pth", "--parts-score-thr", "0.0", "--score-thr", "0.05",
        "--rules", rules, "--device", "cpu", "--out-dir", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claim = json.loads((out / "claim.json").read_text())
    parts = [c["name"] for c in claim["models"]["parts"]["classes"]]
    assert parts == ["fender", "front door", "rear door", "wheel"]
    placed = {e["part"] for f in claim["findings"] for e in f["evidence"]}
    assert placed - {None} and placed - {None} <= set(parts)


@pytest.mark.slow
def test_trust_is_per_file_the_parts_model_needs_its_own_flag(tiny_export, synthetic_root,
                                                              tmp_path):  # fmt: skip
    """--trust-checkpoint once unpickled the parts model too."""
    from tests.conftest import booby_trap

    sentinel = tmp_path / "parts-pickle-ran"
    parts = booby_trap(tiny_export, tmp_path / "vendor_parts.pth", sentinel)
    photos = synthetic_root / "test2017"
    refused = run_cardd("assess", photos, "--damage-model", tiny_export, "--parts-model", parts,
                        "--trust-checkpoint", "--device", "cpu", "--out-dir", tmp_path / "a")
    assert refused.returncode == 1 and "holds more than weights" in refused.stderr
    assert not sentinel.exists() and not (tmp_path / "a").exists()
    trusted = run_cardd("assess", photos, "--damage-model", tiny_export, "--parts-model", parts,
                        "--trust-parts-model", "--device", "cpu", "--out-dir", tmp_path / "b")
    assert sentinel.exists(), trusted.stderr  # the control: the plant runs when trusted
