"""What both engines of `cardd infer` share: inputs, the output folder, the writers.

Inputs and the output folder are local paths or URLs (`cardd.core.storage`). The model
runs in this process (`cardd.infer.local`, `--engine local`) or on a Ray cluster
(`cardd.infer.ray`, `--engine ray`); both write every file through the functions
here, so their outputs are the same bytes.

Output folder layout (see the README):
    vis/<relative path>          annotated image
    thumbs/<relative path>.jpg   its thumbnail, for index.html
    preds/<relative path>.json   detections of one image (written last: its mark of done)
    predictions.csv              one row per detection
    summary.json                 counts, failures, timing
    index.html                   every image, its detections, counts, failures
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cardd.core import logs, storage
from cardd.core.errors import CarddUsageError
from cardd.core.runs import OPTIONS_FILE, RunKind
from cardd.detector.inputs import InputImage
from cardd.detector.results import ImageResult, output_names
from cardd.infer.options import InferOptions
from cardd.structures.classes import ClassSet
from cardd.structures.results import CSV_HEADER, csv_rows

if TYPE_CHECKING:
    from cardd.detector.predictor import DamageDetector

@dataclass
class ModelInfo:
    """What the outputs say of the model: its file, config and classes."""

    checkpoint: Path | str
    config_source: str
    classes: ClassSet


@dataclass
class InferSummary:
    out_dir: Path | str
    processed: int = 0  # images with results, from this run and resumed
    resumed: int = 0  # of those, finished by an earlier run into the same folder
    failed: list[dict] = field(default_factory=list)
    per_class: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # wall time of the image loop: decode, model, outputs
    config_source: str = ""
    classes: ClassSet | None = None  # the model's

    @property
    def detections(self) -> int:
        return sum(self.per_class.values())

    def line(self) -> str:
        """`4 images, 7 detections (5 crack, 2 dent), 1 failed, 3.2 img/s -> runs/infer/exp`"""
        per_class = ", ".join(f"{n} {name}" for name, n in self.per_class.most_common())
        detections = f"{self.detections} detections" + (f" ({per_class})" if per_class else "")
        resumed = f" ({self.resumed} from an earlier run)" if self.resumed else ""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        new = self.processed - self.resumed
        rate = f", {new / self.seconds:.1f} img/s" if self.seconds and new else ""
        return f"{self.processed} images{resumed}, {detections}{failed}{rate} -> {self.out_dir}"

    def to_dict(self, options: InferOptions, checkpoint: Path | str) -> dict:
        new = self.processed - self.resumed
        return {
            "config": self.config_source,
            "checkpoint": str(checkpoint),
            "score_thr": options.score_thr,
            "half": options.half,
            "batch_size": options.batch_size,
            "images_processed": self.processed,
            "images_resumed": self.resumed,
            "images_failed": len(self.failed),
            "failed": self.failed,
            "detections": self.detections,
            "detections_per_class": {
                name: self.per_class.get(name, 0) for name in self.classes.names
            },
            "classes": self.classes.categories(),
            "seconds_per_image": round(self.seconds / new, 4) if new else None,
        }




#: `cardd infer`'s run folders (`cardd.core.runs`): what a run writes, and `--exist-ok`
#: replaces as a whole; a folder holding summary.json or infer.log is one of its runs.
INFER_RUN = RunKind(
    command="infer",
    flag="--out-dir",
    marks=frozenset({"summary.json", "infer.log"}),
    resumable=True,
    outputs=("vis", "thumbs", "preds", "predictions.csv", "summary.json", "index.html",
             "infer.log", OPTIONS_FILE),
)  # fmt: skip


def open_detector(options) -> DamageDetector:
    """The detector a command's model options describe (`InferOptions`, `ServeOptions`:
    config, checkpoint, device, score_thr, trust_checkpoint, work_dir, half)."""
    from cardd.detector.predictor import DamageDetector

    return DamageDetector(
        options.config, options.checkpoint, options.device, options.score_thr,
        trust_checkpoint=options.trust_checkpoint, work_dir=options.work_dir, half=options.half,
    )  # fmt: skip


def image_files(item: InputImage, visualize: bool) -> dict:
    """The files of one image in the output folder (None where not written)."""
    return output_names(item.relative, visualize)


def index_entry(item: InputImage, document: dict, visualize: bool) -> dict:
    """What index.html, the CSV and the counts need of one image, from its JSON document."""
    return {
        "image": document["image"],
        "detections": [
            {k: v for k, v in d.items() if k != "mask"} for d in document["detections"]
        ],
        **image_files(item, visualize),
    }


def write_image(folder: storage.Folder, item: InputImage, array, result: ImageResult,
                visualize: bool) -> dict:  # fmt: skip
    """One image's files (`ImageResult.files`: picture and thumbnail unless not
    `visualize`, then its JSON, last, so a JSON that is there means the image is done);
    its `index_entry`."""
    document = result.to_dict()
    result.name = item.relative
    for relative, data in result.files(visualize, array, document).items():
        folder.write_bytes(relative, data)
    return index_entry(item, document, visualize)


def finished_images(folder: storage.Folder, images: list[InputImage], model: ModelInfo,
                    options: InferOptions) -> dict[PurePosixPath, dict]:  # fmt: skip
    """The images an earlier run of this job into `folder` finished, with their
    `index_entry`: the JSON is there and whole and, if pictures are asked for, so
    are they. A JSON made by another model or threshold is refused: the folder
    would mix two jobs.
    """
    present = folder.files()
    candidates = []
    for item in images:
        if item.refused:
            continue
        files = image_files(item, options.visualize)
        if files["json"] not in present:
            continue
        if options.visualize and not {files["picture"], files["thumb"]} <= present:
            continue
        candidates.append((item, files["json"]))
    contents = folder.read_many([name for _, name in candidates])
    done = {}
    for item, name in candidates:
        try:
            document = json.loads(contents[name])
            document["detections"]  # noqa: B018 - whole, or redone
        except (ValueError, KeyError, TypeError):
            continue
        made_by = (document.get("checkpoint"), document.get("config"), document.get("score_thr"))
        if made_by != (str(model.checkpoint), model.config_source, options.score_thr):
            raise CarddUsageError(
                f"--resume: {folder.location(name)} was made by another model or "
                f"score threshold ({made_by[0]}, score_thr {made_by[2]}); pass --exist-ok to "
                "replace that run, or another --out-dir"
            )
        done[item.relative] = index_entry(item, document, options.visualize)
    return done


def finish_run(folder: storage.Folder, images: list[InputImage], entries: dict, failed: dict,
               model: ModelInfo, options: InferOptions, seconds: float,
               resumed: int) -> InferSummary:  # fmt: skip
    """predictions.csv, summary.json and index.html of the whole job, from the images'
    entries in input order (whichever engine, run or earlier run made them)."""
    from cardd.visualize.report import infer_index_html

    summary = InferSummary(
        out_dir=folder.local if folder.local is not None else folder.url,
        config_source=model.config_source, classes=model.classes,
        seconds=seconds, resumed=resumed,
    )  # fmt: skip
    ordered = [entries[item.relative] for item in images if item.relative in entries]
    summary.processed = len(ordered)
    summary.failed = [failed[item.relative] for item in images if item.relative in failed]
    table = io.StringIO()
    rows = csv.writer(table, lineterminator="\r\n")
    rows.writerow(CSV_HEADER)
    for entry in ordered:
        rows.writerows(csv_rows(entry))
        summary.per_class.update(d["label"] for d in entry["detections"])
    folder.write_text("predictions.csv", table.getvalue())
    document = summary.to_dict(options, model.checkpoint)
    folder.write_text("summary.json", json.dumps(document, indent=1))
    folder.write_text("index.html", infer_index_html(ordered, document, model.classes))
    folder.remove_partials()  # a worker killed mid-write (Ray replaces it) leaves one
    return summary


class log_into:  # noqa: N801 - used as a context manager, like open()
    """The run's log in its output folder: written there directly when local, else
    locally while running and uploaded at the end."""

    def __init__(self, run_log: logs.RunLog, folder: storage.Folder) -> None:
        import tempfile

        self.folder = folder
        self.staging = None
        if folder.local is not None:
            self.path = run_log.write_to(folder.local)
        else:
            self.staging = tempfile.TemporaryDirectory(prefix="cardd-log-")
            self.path = run_log.write_to(Path(self.staging.name))
        self.run_log = run_log

    def __enter__(self) -> log_into:
        return self

    def __exit__(self, *exc) -> None:
        if self.staging is not None:
            self.run_log.close()
            try:
                self.folder.upload(self.run_log.name, self.path)
            finally:
                self.staging.cleanup()


def refused_inputs(images: list[InputImage]) -> dict[PurePosixPath, dict]:
    """The failure entries of inputs whose names were refused, printed once each."""
    from tqdm import tqdm

    failed = {}
    for item in images:
        if item.refused:
            failed[item.relative] = {"image": str(item.path), "reason": item.refused}
            tqdm.write(f"skipped {item.refused}")
    return failed
