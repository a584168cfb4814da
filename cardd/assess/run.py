"""`cardd assess`: the models loaded once, each claim's photos and videos through them
(`cardd.assess.pipeline`), and the claim's files in a run folder (`cardd.core.runs`):
one claim, or a folder of claims; a progress bar per video."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cardd.assess.claim import STATUSES, Claim, ClaimVideo
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
    outputs=("claim.json", "claim.csv", "claim.html", "photos", "evidence", "frames",
             "claims.csv", OPTIONS_FILE),
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


def claim_inputs(inputs: tuple[str, ...]) -> list:
    """A claim's photos and videos (`collect_inputs`), refused names refused here; a
    video must be a local file (OpenCV reads files) whose header reads, before any
    model loads."""
    from cardd.detector.inputs import collect_inputs
    from cardd.structures.videos import VideoReader, is_video_name

    items = collect_inputs(inputs, accept=_photo_or_video)
    for item in items:
        if item.refused:
            raise CarddError(item.refused)
        if is_video_name(item.relative) and not isinstance(item.path, Path):
            raise CarddError(f"{item.path}: videos are read from local files; copy it here first")
        if is_video_name(item.relative):
            VideoReader(item.path, str(item.relative)).close()
    return items


def _photo_or_video(name) -> bool:
    from cardd.structures.images import is_image_name
    from cardd.structures.videos import is_video_name

    return is_image_name(name) or is_video_name(name)


class VideoProgress:
    """A bar per video on a terminal (frames read, kept and skipped, and why); without
    one, or with `--quiet`, none: the claim's lines say the same when it is done."""

    def __init__(self) -> None:
        import sys

        from cardd.core import logs

        self.tty = sys.stderr.isatty() and logs.verbosity() != logs.QUIET
        self.bar = None
        self.name = None

    def __call__(self, video: ClaimVideo) -> None:
        from tqdm import tqdm

        if self.name != video.name:
            self.close()
            self.name = video.name
            total = None
            if video.duration:
                total = round(video.duration * video.fps) if video.fps else None
            self.bar = tqdm(total=total, desc=video.name, unit="frame", dynamic_ncols=True,
                            disable=not self.tty)  # fmt: skip
        skipped = sum(video.skipped.values())
        self.bar.set_postfix_str(
            f"kept {len(video.kept)}, skipped {skipped}"
            + (f" ({', '.join(f'{n} {why}' for why, n in video.skipped.items())})"
               if skipped else ""), refresh=False,
        )  # fmt: skip
        self.bar.update(video.frames_read - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _assess_into(out: Path, inputs: tuple[str, ...], models, opts: AssessOptions) -> Claim:
    """One claim's photos and videos through the models; its files written into `out`."""
    import json

    from cardd.assess.frames import Sampling
    from cardd.assess.pipeline import assess_sources
    from cardd.detector.inputs import load_input
    from cardd.structures.images import UnreadableImage
    from cardd.structures.videos import is_video_name
    from cardd.visualize.report import ClaimPictures, write_claim_report

    damage_detector, parts_detector, rules, thresholds = models
    items = claim_inputs(inputs)

    def decoder(item):
        def decode():  # when its turn comes: one photo's pixels at a time
            array = load_input(item.path)  # a path or a URL
            if isinstance(array, UnreadableImage):
                raise CarddError(str(array))
            return array

        return decode

    photos = [(str(i.relative), decoder(i)) for i in items if not is_video_name(i.relative)]
    videos = [(str(i.relative), i.path) for i in items if is_video_name(i.relative)]
    pictures = ClaimPictures(damage_detector.classes)
    progress = VideoProgress()
    try:
        claim = assess_sources(
            damage_detector, photos, videos, parts_detector, rules, thresholds,
            Sampling(opts.fps, opts.max_frames), on_photo=pictures, on_frame=pictures.frame,
            on_progress=progress,
        )  # fmt: skip
    finally:
        progress.close()
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

    claim_inputs(opts.inputs)  # inputs and output folder checked before the models load
    ASSESS_RUN.check(opts.out_dir, opts.exist_ok)
    models = _load_models(opts)
    out = str(ASSESS_RUN.open(opts.out_dir, opts.exist_ok))
    with storage.staged_output(out) as local:  # a URL: written here, uploaded when whole
        claim = _assess_into(local, opts.inputs, models, opts)
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

    if not claims_dir.is_dir():
        raise CarddError(f"--claims {claims_dir} is not a folder")
    folders = [
        f for f in sorted(claims_dir.iterdir())
        if f.is_dir() and any(_photo_or_video(p.name) for p in f.iterdir())
    ]  # fmt: skip
    if not folders:
        raise CarddError(
            f"--claims {claims_dir}: no subfolder with photos or videos (one per claim)"
        )
    ASSESS_RUN.check(opts.out_dir, opts.exist_ok)
    models = _load_models(opts)
    out = str(ASSESS_RUN.open(opts.out_dir, opts.exist_ok, also=tuple(f.name for f in folders)))
    results: list[tuple[str, Claim | str]] = []
    with storage.staged_output(out) as local:  # a URL: written here, uploaded at the end
        for folder in folders:
            try:
                claim = _assess_into(local / folder.name, (str(folder),), models, opts)
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
                     "photos_usable", "photos_total", "frames_kept", "reasons"])  # fmt: skip
    for name, claim in results:
        if isinstance(claim, str):
            writer.writerow([name, "failed", "", "", "", "", "", "", "", claim])
            continue
        counts = [sum(f.status == s for f in claim.findings) for s in STATUSES]
        usable = sum(p.check.usable for p in claim.photos)
        frames = sum(len(video.kept) for video in claim.videos)
        writer.writerow([name, claim.status, len(claim.findings), *counts, usable,
                         len(claim.photos), frames, "; ".join(claim.reasons)])  # fmt: skip
    return table.getvalue()


