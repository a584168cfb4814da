"""HTML pages people open from disk: `cardd eval`'s report.html and `cardd infer`'s index.html.

Self-contained in their output folder: pictures beside them, relative links,
no script and nothing from the internet, so a folder can be zipped and mailed.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from cardd.core.files import unsafe_file_name, write_file
from cardd.structures.classes import ClassSet

if TYPE_CHECKING:
    from pycocotools.coco import COCO

STYLE = " ".join(
    """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;
color:#1d232a} h1{font-size:1.5rem} h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.25rem .7rem;border-bottom:1px solid #d8dee4;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#5f6b76}
img.plot{max-width:100%;border:1px solid #d8dee4;margin:.4rem 0}
.gallery{display:flex;flex-wrap:wrap;gap:.8rem} .gallery figure{margin:0;width:360px}
.gallery img{width:100%;border:1px solid #d8dee4} figcaption{font-size:.85rem;color:#5f6b76}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.35rem}
details{margin:.2rem 0} summary{cursor:pointer}
.strip{display:flex;gap:.4rem;overflow-x:auto;padding-bottom:.4rem} .strip figure{margin:0}
.strip img{height:110px;border:1px solid #d8dee4}
table.images td{text-align:left;vertical-align:top}
""".split()
)
#: Gallery size per kind (most misses, most false alarms).
GALLERY = 6


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _link(path: str) -> str:
    """A relative path as an href (each segment escaped)."""
    return quote(path, safe="/")


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _swatch(name: str, classes: ClassSet) -> str:
    r, g, b = classes.palette[classes.names.index(name)]
    return f'<span class="swatch" style="background:rgb({r},{g},{b})"></span>'


def _metrics_table(metrics: dict, reference: dict | None) -> str:
    header = "".join(
        f"<th>{k}</th>" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APs*", "APm*", "APl*")
    )
    rows = []
    named = [(t, metrics.get(t)) for t in ("bbox", "segm")]
    if reference:
        named += [(f"{t} (paper DCN+)", reference[t]) for t in ("bbox", "segm")]
    for name, scores in named:
        if not scores:
            continue
        bins = scores["cardd_bins"]
        cells = [scores.get(k) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
        cells += [bins.get(k) for k in ("APs", "APm", "APl")]
        rows.append(
            f"<tr><td>{html.escape(name)}</td>{''.join(f'<td>{_fmt(c)}</td>' for c in cells)}</tr>"
        )
    return (
        f"<table><tr><th></th>{header}</tr>{''.join(rows)}</table>"
        '<p class="muted">AP in percent. * the CarDD paper\'s size bins: small &lt; 128², '
        "medium 128²–256², large &gt; 256² pixels; without * COCO's (32², 96²).</p>"
    )


def _class_table(metrics: dict, classes: ClassSet) -> str:
    rows = []
    for name in classes.names:
        cells = [_fmt(metrics.get(t, {}).get("per_class", {}).get(name)) for t in ("bbox", "segm")]
        best = (metrics.get("bbox") or metrics.get("segm") or {}).get("best_f1", {}).get(name)
        if best:
            cells += [f"{best['threshold']:.2f}", f"{best['f1']:.2f}", f"{best['precision']:.2f}",
                      f"{best['recall']:.2f}"]  # fmt: skip
        else:
            cells += ["–"] * 4
        cells_html = "".join(f"<td>{c}</td>" for c in cells)
        rows.append(f"<tr><td>{_swatch(name, classes)}{html.escape(name)}</td>{cells_html}</tr>")
    return (
        "<table><tr><th>class</th><th>box AP</th><th>mask AP</th><th>best-F1 score thr</th>"
        f"<th>F1</th><th>precision</th><th>recall</th></tr>{''.join(rows)}</table>"
        '<p class="muted">Best-F1: the score threshold at which F1 (IoU 0.5, boxes where '
        "scored) is highest on this split: a starting point for a claims threshold.</p>"
    )


def _draw_truth_and_predictions(
    image_path: Path, truths: list[dict], predictions: list[dict], out: Path, classes: ClassSet
) -> bool:
    """The photo with predictions as cardd draws them and the ground truth as white
    dashed boxes with a `GT <class>` tag; False when the photo cannot be read."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    from cardd.structures.images import UnreadableImage, load_image
    from cardd.structures.results import Detection
    from cardd.visualize.draw import draw_detections, encode_jpeg

    try:
        image = load_image(image_path)
    except UnreadableImage:
        return False
    height, width = image.shape[:2]
    detections = []
    for p in predictions:
        mask = None
        if isinstance(p.get("segmentation"), dict) and isinstance(
            p["segmentation"].get("counts"), str
        ):
            rle = {
                "size": p["segmentation"]["size"],
                "counts": p["segmentation"]["counts"].encode(),
            }
            mask = mask_utils.decode(rle).astype(bool)
        x, y, w, h = p["bbox"] if "bbox" in p else mask_utils.toBbox(rle)
        name = classes.name_of(p["category_id"])
        detections.append(
            Detection(
                name, p["category_id"], float(p["score"]), [x, y, x + w, y + h], 0.0, 0.0, mask
            )
        )
    drawn = draw_detections(image, detections, classes)
    thickness = max(2, round(max(height, width) / 400))
    scale = max(0.4, max(height, width) / 1500)
    for truth in truths:
        x, y, w, h = (int(round(v)) for v in truth["bbox"])
        for colour, extra in (((0, 0, 0), 2), ((255, 255, 255), 0)):  # white on a dark rim
            _dashed_rectangle(drawn, (x, y, x + w, y + h), colour, thickness + extra)
        label = f"GT {classes.name_of(truth['category_id'])}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = min(height - th - base - 4, y + h + 2)
        cv2.rectangle(
            drawn, (x, top), (x + tw + 6, top + th + base + 4), (255, 255, 255), cv2.FILLED
        )
        cv2.putText(drawn, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    longest = max(height, width)
    if longest > 1000:  # gallery pictures: 1000 px is plenty
        factor = 1000 / longest
        drawn = cv2.resize(drawn, (round(width * factor), round(height * factor)), cv2.INTER_AREA)
    write_file(out, encode_jpeg(np.ascontiguousarray(drawn), quality=85))
    return True


def _dashed_rectangle(image, box: tuple[int, int, int, int], colour, thickness: int) -> None:
    """A dashed box outline (ground truth is dashed, predictions solid)."""
    import cv2

    x1, y1, x2, y2 = box
    dash = max(6, thickness * 4)
    for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)),
                               ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):  # fmt: skip
        length = max(abs(bx - ax), abs(by - ay))
        for start in range(0, length, 2 * dash):
            end = min(length, start + dash)
            p = (ax + (bx - ax) * start // max(length, 1), ay + (by - ay) * start // max(length, 1))
            q = (ax + (bx - ax) * end // max(length, 1), ay + (by - ay) * end // max(length, 1))
            cv2.line(image, p, q, colour, thickness)


def write_eval_report(
    out: Path,
    metrics: dict,
    gt: COCO,
    results: list[dict],
    per_image: dict[int, dict[str, int]],
    image_dir: Path | None,
    score_thr: float,
    reference: dict | None,
) -> Path:
    """`report.html` beside metrics.json and the plots, with a gallery of the images with
    the most missed and the most false detections (needs the split's photos); classes,
    ids and colours are the ground truth's (which the model's match)."""
    classes = ClassSet.from_categories(gt.dataset["categories"], "the ground truth")
    gallery_html = []
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if r["score"] >= score_thr:
            by_image.setdefault(r["image_id"], []).append(r)
    for kind, title in (("misses", "most missed damage"), ("false_alarms", "most false alarms")):
        ranked = sorted(per_image.items(), key=lambda item: -item[1][kind])
        ranked = [(i, c) for i, c in ranked if c[kind] > 0][:GALLERY]
        figures = []
        for image_id, counts in ranked:
            info = gt.imgs[image_id]
            picture = Path("gallery") / kind / f"{image_id}.jpg"
            # a file_name that could lead elsewhere is not drawn (the scores still count)
            if image_dir is None or unsafe_file_name(info["file_name"]):
                continue
            if not _draw_truth_and_predictions(
                image_dir / info["file_name"], gt.imgToAnns.get(image_id, []),
                by_image.get(image_id, []), out / picture, classes,
            ):  # fmt: skip
                continue
            figures.append(
                f'<figure><a href="{_link(picture.as_posix())}"><img loading="lazy" '
                f'src="{_link(picture.as_posix())}" alt=""></a><figcaption>'
                f"{html.escape(str(info['file_name']))}: {counts['misses']} missed, "
                f"{counts['false_alarms']} false</figcaption></figure>"
            )
        if figures:
            gallery_html.append(f"<h3>{title}</h3><div class=gallery>{''.join(figures)}</div>")
    if not gallery_html:
        gallery_html.append('<p class="muted">No gallery: no misses or false alarms, or the '
                            "photos are not beside the annotations.</p>")  # fmt: skip

    source = metrics.get("checkpoint") or metrics.get("results", "")
    plots = [
        (name, f"{name}.png")
        for name in ("pr_curve_bbox", "pr_curve_segm", "confusion_matrix")
        if (out / f"{name}.png").is_file()
    ]
    confusion = metrics.get("confusion_matrix", {})
    body = (
        f"<h1>cardd evaluation: {html.escape(str(metrics.get('split') or ''))} split, "
        f"{metrics['images']} images</h1>"
        f'<p class="muted">{html.escape(str(source))}<br>config: '
        f"{html.escape(str(metrics.get('config', '–')))} · "
        f'<a href="metrics.json">metrics.json</a></p>'
        f"<h2>AP</h2>{_metrics_table(metrics, reference)}"
        f"<h2>Per class</h2>{_class_table(metrics, classes)}"
        f"<h2>Precision-recall and confusion</h2>"
        f'<p class="muted">Confusion at IoU {confusion.get("iou_thr", 0.5):g} and score &ge; '
        f"{confusion.get('score_thr', score_thr):g}.</p>"
        + "".join(f'<img class=plot src="{src}" alt="{name}">' for name, src in plots)
        + f"<h2>Images to look at</h2>{''.join(gallery_html)}"
        + '<p class="muted">Predictions drawn in class colours with masks and scores; ground '
        "truth as white dashed boxes tagged GT.</p>"
    )
    path = out / "report.html"
    write_file(path, _page("cardd evaluation", body))
    return path


def infer_index_html(entries: list[dict], summary: dict, classes: ClassSet) -> str:
    """`index.html` of a `cardd infer` folder: counts, failures, and per image a lazy
    thumbnail linking its picture (or JSON) and its detections in a folded table.

    Args:
        entries: per image `{"image", "detections" (dicts), "thumb" (or None),
            "picture" (or None), "json"}`, paths relative to `out`.
    """
    counts = summary.get("detections_per_class", {})
    count_rows = "".join(
        f"<tr><td>{_swatch(n, classes)}{html.escape(n)}</td><td>{counts.get(n, 0)}</td></tr>"
        for n in classes.names
    )
    failed = "".join(
        f"<tr><td>{html.escape(f['image'])}</td><td>{html.escape(f['reason'])}</td></tr>"
        for f in summary.get("failed", [])
    )
    rows = []
    for e in entries:
        target = e["picture"] or e["json"]
        thumb = (
            f'<img loading="lazy" src="{_link(e["thumb"])}" alt="" width="160">'
            if e["thumb"]
            else ""
        )
        detections = "".join(
            f"<tr><td>{_swatch(d['label'], classes)}{html.escape(d['label'])}</td>"
            f"<td>{d['score']:.2f}</td>"
            f"<td>{d['area_fraction'] * 100:.2f}</td></tr>"
            for d in e["detections"]
        )
        rows.append(
            f'<tr><td><a href="{_link(target)}">{thumb or "open"}</a></td>'
            f"<td>{html.escape(e['image'])}<br>"
            f'<a class=muted href="{_link(e["json"])}">JSON</a></td>'
            f"<td><details><summary>{len(e['detections'])} "
            f"detection{'' if len(e['detections']) == 1 else 's'}</summary>"
            f"<table><tr><th>class</th><th>score</th><th>area %</th></tr>{detections}</table>"
            f"</details></td></tr>"
        )
    body = (
        f"<h1>cardd infer: {summary['images_processed']} images, {summary['detections']} "
        f"detections</h1><p class=muted>{html.escape(str(summary.get('checkpoint', '')))} · "
        f"score ≥ {summary.get('score_thr')} · <a href=summary.json>summary.json</a> · "
        f"<a href=predictions.csv>predictions.csv</a></p>"
        f"<h2>Detections per class</h2><table>{count_rows}</table>"
        + (
            f"<h2>Failed</h2><table><tr><th>image</th><th>reason</th></tr>{failed}</table>"
            if failed
            else ""
        )  # fmt: skip
        + f"<h2>Images</h2><table class=images>{''.join(rows)}</table>"
    )
    return _page("cardd infer", body)


#: Evidence crops shown per finding, best score first (claim.json lists all).
EVIDENCE_CROPS = 6
#: Sizes (longest side, px) of a claim's pictures: photos and cited frames, crops,
#: the strip of a video's kept frames.
PHOTO_SIDE, CROP_SIDE, STRIP_SIDE = 1600, 360, 200
_STATUS_COLOURS = {"confirmed": "#1a7f37", "needs_review": "#9a6700", "rejected": "#6e7781"}


def _crop(image, detection, placement, classes: ClassSet) -> bytes:
    """One damage drawn on its own region of the picture, with a margin, as JPEG."""
    import dataclasses

    from cardd.visualize.draw import draw_detections, encode_jpeg, thumbnail

    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in placement.bbox_xyxy)
    margin = max(16, (x2 - x1 + y2 - y1) // 4)
    left, top = max(0, x1 - margin), max(0, y1 - margin)
    right, bottom = min(width, x2 + margin), min(height, y2 + margin)
    # drawn on its own region: the detection moved there, its mask cut to it
    local = dataclasses.replace(
        detection,
        bbox_xyxy=[x1 - left, y1 - top, x2 - left, y2 - top],
        mask=None if detection.mask is None else detection.mask[top:bottom, left:right],
    )  # fmt: skip
    crop = draw_detections(image[top:bottom, left:right], [local], classes)
    return encode_jpeg(thumbnail(crop, CROP_SIDE))


class ClaimPictures:
    """The pictures of a claim's report, made picture by picture as the claim is
    assessed (`assess_sources(on_photo=..., on_frame=...)`), so no photo's or frame's
    pixels or masks outlive its turn.

    A photo: drawn (as JPEG bytes, `PHOTO_SIDE` px) with a crop of each damage that
    can be shown as evidence (the best `EVIDENCE_CROPS` of each part and damage in the
    photo: a finding shows at most that many, so nothing it shows is missing).
    A video's kept frame: a small picture for the strip, and, while one of its damages
    is among its track's evidence, the frame drawn and that damage's crop: memory
    holds the evidence, never every frame.
    """

    def __init__(self, classes: ClassSet) -> None:
        self.classes = classes
        self.photos: dict[str, tuple[str, bytes]] = {}  # name -> (its file, JPEG)
        self.crops: dict[tuple[str, int], bytes] = {}  # (photo, detection) -> JPEG
        self.strips: dict[str, list[tuple[float, str, bytes]]] = {}  # video -> (time, file, JPEG)
        self._cited: dict[str, int] = {}  # frame -> its crops kept
        self._pictures = 0

    def _picture(self, name: str, drawn) -> None:
        from cardd.visualize.draw import encode_jpeg, thumbnail

        self._pictures += 1
        picture = f"photos/{self._pictures:03d}.jpg"
        self.photos[name] = (picture, encode_jpeg(thumbnail(drawn, PHOTO_SIDE)))

    def __call__(self, name: str, image, damage, parts, placements) -> None:
        from cardd.visualize.draw import draw_detections

        self._picture(name, draw_detections(image, damage.detections, self.classes))
        groups: dict[tuple, list] = {}
        for placement in placements:
            groups.setdefault((placement.part, placement.damage), []).append(placement)
        for group in groups.values():
            for placement in sorted(group, key=lambda p: -p.score)[:EVIDENCE_CROPS]:
                detection = damage.detections[placement.index]
                self.crops[(name, placement.index)] = _crop(image, detection, placement,
                                                            self.classes)  # fmt: skip

    def frame(self, video: str, frame, image, damage, cited, dropped) -> None:
        """One kept frame of `video`: its strip picture, and crops of the damage now
        cited (`cited`), forgetting those no longer (`dropped`)."""
        from cardd.visualize.draw import draw_detections, encode_jpeg, thumbnail

        drawn = draw_detections(image, damage.detections, self.classes)
        strip = self.strips.setdefault(video, [])
        file = f"frames/{len(self.strips):02d}_{len(strip) + 1:03d}.jpg"
        strip.append((frame.time, file, encode_jpeg(thumbnail(drawn, STRIP_SIDE), quality=80)))
        for placement in dropped:
            del self.crops[(placement.photo, placement.index)]
            self._cited[placement.photo] -= 1
            if not self._cited[placement.photo]:
                del self._cited[placement.photo], self.photos[placement.photo]
        for placement in cited:
            detection = damage.detections[placement.index]
            self.crops[(placement.photo, placement.index)] = _crop(image, detection, placement,
                                                                   self.classes)  # fmt: skip
            self._cited[placement.photo] = self._cited.get(placement.photo, 0) + 1
            if placement.photo not in self.photos:
                self._picture(placement.photo, drawn)


def _evidence_caption(evidence) -> str:
    where = (f"{evidence.source} at {evidence.time:.2f} s" if evidence.time is not None
             else evidence.photo)  # fmt: skip
    on = f" on {evidence.part}" if evidence.part else ""
    return (f"{where}{on}: score {evidence.score:.2f}, size {evidence.size:.3f} of the "
            f"{evidence.size_relative_to}")  # fmt: skip


def write_claim_report(out: Path, claim, pictures: ClaimPictures) -> Path:
    """`claim.html` of a `cardd assess` folder: the claim's status, the findings by part
    with their evidence crops (drawn by `cardd.visualize.draw`), each video's kept
    frames as a strip with their times, and every photo (and cited frame) annotated
    in `photos/`, each crop linking its picture.

    Args:
        pictures: the claim's pictures, made as its photos and frames were assessed.
    """
    classes = pictures.classes
    drawn_names = {}
    for name, (picture, jpeg) in pictures.photos.items():
        write_file(out / picture, jpeg, root=out)
        drawn_names[name] = (picture,)
    findings_html = []
    for index, finding in enumerate(claim.findings, start=1):
        crops = []
        ranked = finding.evidence if finding.video else sorted(finding.evidence,
                                                               key=lambda e: -e.score)  # fmt: skip
        shown = ranked[:EVIDENCE_CROPS]
        for k, evidence in enumerate(shown, start=1):
            (picture,) = drawn_names[evidence.photo]
            crop_path = f"evidence/{index:03d}_{k}.jpg"
            jpeg = pictures.crops[(evidence.photo, evidence.index)]
            write_file(out / crop_path, jpeg, root=out)
            crops.append(
                f'<figure><a href="{_link(picture)}"><img loading="lazy" src="{_link(crop_path)}" '
                f'alt=""></a><figcaption>{html.escape(_evidence_caption(evidence))}'
                f"</figcaption></figure>"
            )
        if finding.detections > len(shown):
            more = finding.detections - len(shown)
            where = "frames and photos" if finding.video else "claim.json"
            crops.append(f'<p class="muted">and {more} more detections ({where})</p>')
        colour = _STATUS_COLOURS[finding.status]
        grade = f"{finding.severity}, {finding.operation}" if finding.severity else "no rule"
        where = finding.part or ("no part found" if claim.with_parts else "part unknown")
        reasons = f" ({html.escape('; '.join(finding.reasons))})" if finding.reasons else ""
        seen = ""
        if finding.video:
            frames = finding.video.frames
            seen = (f" · seen in {frames} frame{'' if frames == 1 else 's'} of "
                    f"{html.escape(finding.video.source)}, {finding.video.first:.2f}–"
                    f"{finding.video.last:.2f} s")  # fmt: skip
        findings_html.append(
            f'<h3><span style="color:{colour}">{finding.status}</span> '
            f"{html.escape(finding.damage)} on {html.escape(where)}</h3>"
            f'<p class="muted">{html.escape(grade)} · best score {finding.score:.2f} '
            f"(threshold {finding.threshold:g}){reasons}{seen}</p>"
            f"<div class=gallery>{''.join(crops)}</div>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(f.part or '–')}</td><td>{_swatch(f.damage, classes)}"
        f"{html.escape(f.damage)}</td><td>{html.escape(f.severity or '–')}</td>"
        f"<td>{html.escape(f.operation or '–')}</td><td>{f.score:.2f}</td>"
        f'<td style="color:{_STATUS_COLOURS[f.status]}">{f.status}</td>'
        f"<td>{len({e.photo for e in f.evidence})}</td></tr>"
        for f in claim.findings
    )

    def check(photo) -> str:
        return "usable" if photo.check.usable else "retake: " + ", ".join(photo.check.reasons)

    photo_rows = "".join(
        f'<tr><td><a href="{_link(drawn_names[p.name][0])}">{html.escape(p.name)}</a></td>'
        f"<td>{html.escape(check(p))}</td><td>{p.detections}</td></tr>"
        for p in claim.photos
    )
    videos_html = []
    for video in claim.videos:
        strip = []
        for time, file, jpeg in pictures.strips.get(video.name, []):
            write_file(out / file, jpeg, root=out)
            strip.append(f'<figure><img loading="lazy" src="{_link(file)}" alt="">'
                         f"<figcaption>{time:.2f} s</figcaption></figure>")  # fmt: skip
        videos_html.append(
            f"<h3>{html.escape(video.name)}</h3><p class=muted>{html.escape(video.line())}</p>"
            f"<div class=strip>{''.join(strip)}</div>"
        )
    document = claim.to_dict()
    sized = "the part it lies on" if claim.with_parts else "the photo (no parts model)"
    used = []
    if claim.photos or not claim.videos:
        used.append(f"{document['photos_usable']} of {document['photos_total']} photos usable")
    if claim.videos:
        used.append(f"{document['frames_kept']} video frames used")
    body = (
        f'<h1>Claim: <span style="color:{_STATUS_COLOURS[claim.status]}">{claim.status}</span>'
        f"</h1><p class=muted>{' · '.join(used)} · "
        f"{len(claim.findings)} findings · sizes relative to {sized} · "
        f'<a href="claim.json">claim.json</a> · <a href="claim.csv">claim.csv</a></p>'
        + (f"<p>{html.escape('; '.join(claim.reasons))}</p>" if claim.reasons else "")
        + "<h2>Findings by part</h2><table><tr><th>part</th><th>damage</th><th>severity</th>"
        "<th>operation</th><th>score</th><th>status</th><th>pictures</th></tr>"
        + rows
        + "</table><h2>Evidence</h2>"
        + ("".join(findings_html) or '<p class="muted">No damage found.</p>')
        + ("<h2>Videos: the frames used</h2>" + "".join(videos_html) if videos_html else "")
        + (
            "<h2>Photos</h2><table class=images><tr><th>photo</th><th>check</th>"
            "<th>detections</th></tr>" + photo_rows + "</table>"
            if claim.photos
            else ""
        )
    )
    path = out / "claim.html"
    write_file(path, _page("cardd claim", body))
    return path
