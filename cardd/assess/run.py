"""`cardd assess`: the models loaded once, each claim's photos through them, and the
claim's files in a run folder (`cardd.core.runs`): one claim, or a folder of claims."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cardd.assess.claim import STATUSES, Claim, assess_images
from cardd.assess.options import AssessOptions
from cardd.assess.rules import load_rules, thresholds_from_metrics
from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.core.runs import OPTIONS_FILE, RunKind, save_options

#: `cardd assess`'s run folders (`cardd.core.runs`): claim.json or claims.csv marks one;
#: `--exist-ok` replaces a claim's files (and, with --claims, the claims' folders).
ASSESS_RUN = RunKind(
    command="assess",
    flag="--out-dir",
    marks=frozenset({"claim.json", "claims.csv"}),
    outputs=("claim.json", "claim.csv", "claim.html", "photos", "evidence", "claims.csv",
             OPTIONS_FILE),
)  # fmt: skip


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


