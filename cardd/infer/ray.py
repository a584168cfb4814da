"""`cardd infer --engine ray`: the same job as `--engine local`, on a Ray cluster.

A Ray Data pipeline: the input listing (made here, by `cardd.infer.local.collect_inputs`)
as a dataset, decoding in CPU tasks, the model in a pool of actors (one model load
each, `--gpus-per-worker` GPUs each), and every image's files written by the actor
with `cardd.infer.local.write_image`, the local engine's function, so the files are the
same bytes. This process gathers each image's entry and writes the CSV, summary
and index once every image is done (`cardd.infer.local.finish_run`).

Failures: an image that does not decode, or a batch the model fails on, becomes a
failure row, never a job abort. Ray Data restarts a lost actor and retries its
batch; a lost driver or cluster is picked up by rerunning with `--resume` (every
image whose JSON is whole is kept).

The model file travels through Ray's object store (read once here, checked by its
SHA-256 on each node), so workers need not see this machine's disk. The inputs
and `--out-dir` must be reachable from every node: object storage (`s3://...`), or
a folder every node mounts; a local cluster (no `--address`) shares this disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path, PurePosixPath

from cardd.core import logs, storage
from cardd.core.errors import CarddError, CarddUsageError, one_line
from cardd.core.files import write_file
from cardd.core.runs import save_options
from cardd.detector.inputs import InputImage, load_input
from cardd.detector.onnx_backend import is_onnx_model
from cardd.infer.common import (
    INFER_RUN,
    InferSummary,
    ModelInfo,
    finish_run,
    finished_images,
    log_into,
    refused_inputs,
    write_image,
)
from cardd.infer.options import InferOptions


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise CarddError("--engine ray needs Ray Data: pip install 'cardd[ray]'") from None
    return ray


def connect(ray, address: str | None) -> None:
    """Join the cluster at `address` (`auto`: the one `ray start` made here, or
    `RAY_ADDRESS`; `ray://host:10001`: a remote one), or start a private one."""
    if ray.is_initialized():
        return  # a Python caller connected already
    settings = {"include_dashboard": False} if address is None else {}
    try:
        ray.init(
            address=address,
            log_to_driver=logs.verbosity() >= logs.VERBOSE,
            logging_level=logging.ERROR,
            **settings,
        )
    except ConnectionError as error:
        raise CarddError(f"--address {address}: no Ray cluster there ({one_line(error)})") from None
    except Exception as error:
        if "connect" in str(error).lower() or "address" in str(error).lower():
            raise CarddError(f"--address {address}: {one_line(error)}") from None
        raise
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # this command shows its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _absolute(path: Path | str) -> str:
    """Where a worker reads an input: URLs as they are, local paths made absolute (a
    worker's working directory is not this one)."""
    return path if isinstance(path, str) else str(path.resolve())


@contextlib.contextmanager
def native_stderr_into(log: Path | None):
    """Ray's C++ core writes notes of its own straight to file descriptor 2 (that Ray
    Data keeps actors' arguments in the object store, ...): into the run's log, unless
    -v. Yields the terminal's stderr, for the progress bar; failures still reach this
    process as exceptions."""
    if log is None or logs.verbosity() >= logs.VERBOSE:
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as target:
        os.dup2(target.fileno(), 2)
    terminal = os.fdopen(os.dup(saved), "w")
    try:
        yield terminal
    finally:
        terminal.flush()
        terminal.close()
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def decode_rows(batch: dict) -> dict:
    """A CPU task: each row's image decoded (BGR uint8), or why it could not be."""
    import numpy as np

    from cardd.structures.images import UnreadableImage

    images, errors = [], []
    for source, name, is_url in zip(batch["source"], batch["name"], batch["is_url"], strict=True):
        array = load_input(str(source) if is_url else Path(str(source)))
        if isinstance(array, UnreadableImage):
            images.append(np.zeros((0, 0, 3), np.uint8))
            # the local engine's words: the path as the user gave it
            errors.append(str(array).replace(str(source), str(name)))
        else:
            images.append(array)
            errors.append("")
    out = dict(batch)
    out["image"] = np.array(images + [None], dtype=object)[:-1]  # ragged: one per row
    out["error"] = np.array(errors, dtype=object)
    return out


def model_cache(sha256: str, suffix: str) -> Path:
    """A node's copy of the model file, by content; the suffix says which engine runs it.

    In the user's own cache folder (`cardd.core.files.private_dir`: 0700, owned by this
    user), never the shared temporary folder, where another user could make the
    folder first and swap a file between its check and its load.
    """
    from cardd.core.files import private_dir

    return private_dir("ray-models") / f"{sha256}{suffix}"


class DetectorWorker:
    """A Ray actor holding one model: detects a batch, writes each image's files,
    returns each image's entry (or why it failed)."""

    def __init__(self, model_ref, sha256: str, model: ModelInfo, options: InferOptions,
                 folder: storage.Folder) -> None:  # fmt: skip
        import ray

        from cardd.detector.predictor import DamageDetector
        from cardd.models import checkpoints

        path = model_cache(sha256, ".onnx" if is_onnx_model(model.checkpoint) else ".pth")
        if not path.is_file() or checkpoints.file_sha256(path) != sha256:
            data = ray.get(model_ref[0])
            if hashlib.sha256(data).hexdigest() != sha256:
                raise CarddError("the model file changed on its way to this worker")
            write_file(path, data, root=path.parent)
        device = options.device if options.gpus_per_worker > 0 else "cpu"
        # Trust goes to the bytes the driver opened under the user's rules, by their hash:
        # the loader hashes the bytes it reads and unpickles those same bytes, so a file
        # changed after the check above is refused, not run.
        with checkpoints.trusting_sha256(sha256):
            self.detector = DamageDetector(
                options.config, path, device, options.score_thr, half=options.half,
            )  # fmt: skip
        # the outputs name the file the user gave, not this node's copy of it
        self.detector.checkpoint = model.checkpoint
        self.detector.config_source = model.config_source
        self.folder = folder
        self.visualize = options.visualize

    def __call__(self, batch: dict) -> dict:
        entries, errors = [], []
        items, arrays, slots = [], [], []
        for i, (name, relative, error) in enumerate(
            zip(batch["name"], batch["relative"], batch["error"], strict=True)
        ):
            entries.append("")
            errors.append(str(error))
            if not error:
                is_url = bool(batch["is_url"][i])
                # named as the user gave it: the JSON's `image` is the local engine's
                items.append(InputImage(str(name) if is_url else Path(str(name)),
                                        PurePosixPath(str(relative))))  # fmt: skip
                arrays.append(batch["image"][i])
                slots.append(i)
        if items:
            try:
                results = self.detector.detect(arrays, [str(item.path) for item in items])
            except Exception as error:  # as the local engine: the batch fails, the job goes on
                for i in slots:
                    errors[i] = f"the model failed on this batch: {one_line(error)}"
                results = []
            for i, item, array, result in zip(slots, items, arrays, results, strict=False):
                entry = write_image(self.folder, item, array, result, self.visualize)
                entries[i] = json.dumps(entry)
        return {"position": batch["position"], "entry": entries, "error": errors}


def default_workers(ray, gpus_per_worker: float) -> int:
    """One actor per `gpus_per_worker` GPUs of the cluster; on CPU, one per CPU but one
    (left for decoding)."""
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)) - 1)


def run_on_ray(options: InferOptions, images: list[InputImage]) -> InferSummary:
    """Run the job on Ray; same outputs as `cardd.infer.local.run_inference`'s local engine."""
    from tqdm import tqdm

    from cardd.detector.onnx_backend import OnnxModel, check_options
    from cardd.models.configs import resolve_config
    from cardd.models.model_file import open_model

    ray = import_ray()
    if options.config is not None and Path(options.config).suffix == ".py":
        raise CarddUsageError(
            "--engine ray takes a config name or a model file's own config, not a config "
            "file (the workers may not see it): pass an export (`cardd export`)"
        )
    if options.gpus_per_worker < 0:
        raise CarddUsageError("--gpus-per-worker must be >= 0")
    run_log = logs.RunLog("infer.log")
    try:
        if options.config is not None:
            resolve_config(options.config)  # an unknown name: refused here, not in each worker
        if is_onnx_model(options.checkpoint):
            check_options(options.config, options.half)
            model_file = OnnxModel(Path(options.checkpoint), "cpu")
        else:
            model_file = open_model(options.config, options.checkpoint, options.work_dir,
                                    options.trust_checkpoint)  # fmt: skip
        model = ModelInfo(model_file.path, model_file.config_source, model_file.classes)
        sha256 = model_file.sha256
        model_file.release()
        folder = INFER_RUN.open(options.out_dir, options.exist_ok, options.resume)
        save_options(folder, options, checkpoint=str(model.checkpoint))
        done = finished_images(folder, images, model, options) if options.resume else {}
        todo = [item for item in images if item.relative not in done and not item.refused]
        with log_into(run_log, folder) as log, native_stderr_into(log.path) as terminal:
            began = time.perf_counter()
            entries: dict[PurePosixPath, dict] = dict(done)
            failed = refused_inputs(images)
            if todo:  # (a rerun with nothing left to do needs no cluster)
                connect(ray, options.address)
                model_ref = [ray.put(Path(model.checkpoint).read_bytes())]  # in a list: by ref
                workers = options.workers or default_workers(ray, options.gpus_per_worker)
                rows = [
                    {"position": n, "source": _absolute(item.path), "name": str(item.path),
                     "relative": str(item.relative), "is_url": isinstance(item.path, str)}
                    for n, item in enumerate(todo)
                ]  # fmt: skip
                dataset = (
                    ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // 2))
                    .map_batches(decode_rows, batch_size=1, num_cpus=1)
                    .map_batches(
                        DetectorWorker,
                        fn_constructor_args=(model_ref, sha256, model, options, folder),
                        batch_size=options.batch_size,
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        num_gpus=options.gpus_per_worker,
                        num_cpus=1 if options.gpus_per_worker == 0 else 0,
                    )
                )
                with tqdm(total=len(todo), unit="img", desc="infer (ray)", file=terminal,
                          disable=logs.verbosity() == logs.QUIET) as bar:  # fmt: skip
                    for row in dataset.iter_rows():
                        item = todo[int(row["position"])]
                        if row["error"]:
                            failed[item.relative] = {"image": str(item.path),
                                                     "reason": str(row["error"])}  # fmt: skip
                            tqdm.write(f"skipped {row['error']}")
                        else:
                            entries[item.relative] = json.loads(row["entry"])
                        bar.update(1)
            return finish_run(folder, images, entries, failed, model, options,
                              time.perf_counter() - began, resumed=len(done))  # fmt: skip
    finally:
        run_log.close()
