"""Model files: from `--config/--checkpoint/--work-dir` to loaded weights, one path for all.

`cardd infer`, `cardd eval`, `cardd serve` and `DamageDetector` all open a model
here, so they accept the same files and refuse the same ones:

* the file loads by `cardd.models.checkpoints`' rules (weights-only unless it is this
  user's own training checkpoint or `--trust-checkpoint` names it);
* without `--config`, the model is built from a config cardd ships and the plain
  data the file records about it (`cardd.models.record`: architecture, classes,
  thresholds, preprocessing); a file's text is never built or executed. Files
  from before records existed are read by the same rule (a record derived from
  their embedded config, accepted only if it rebuilds that config's model);
* `--config FILE` builds that file: the user's own code, run knowingly;
* the config and the checkpoint must be for the same classes (names and category
  ids, in label order), and those classes (`ModelFile.classes`) name every output;
* every weight must fit the model (strict loading), so a model that did not
  load is never run, let alone scored.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError
from cardd.core.options import CHECKPOINT
from cardd.models import checkpoints
from cardd.models.configs import config_from_text, load_config, resolve_config
from cardd.models.formats import EXPORT_KEY
from cardd.structures.classes import ClassSet

if TYPE_CHECKING:
    import torch
    from mmengine.config import Config

#: The config used when neither `--config` nor the model file names one.
DEFAULT_CONFIG = "DCN_plus"
#: The key of a `cardd export` file's self-description.


@dataclass
class ModelFile:
    """A checkpoint or export, loaded once, with the config that builds its model."""

    path: Path
    contents: dict  # emptied by `release` once the weights are in a model
    cfg: Config
    config_source: str  # a config file, or "<architecture> (recorded in <file>)"
    sha256: str  # of the bytes loaded
    classes: ClassSet  # what the model predicts, agreed by the file and the config
    record: dict | None = None  # the file's model record it was built from (None: a config)

    @property
    def config_from_file(self) -> bool:
        """Built from the file's record (a shipped config plus checked data)."""
        return self.record is not None

    @property
    def exported(self) -> dict | None:
        """The self-description of a `cardd export` file, else None."""
        exported = self.contents.get(EXPORT_KEY)
        return exported if isinstance(exported, dict) else None

    def release(self) -> None:
        """Drop the loaded file (weights, optimizer state of a training checkpoint):
        once the model holds the weights, keeping it only doubles the memory."""
        self.contents = {}


def default_work_dir(config: str | Path | None) -> Path:
    """`work_dirs/<config name>`, relative to the working directory."""
    return Path("work_dirs") / resolve_config(config or DEFAULT_CONFIG).stem


def open_model(
    config: str | Path | None = None,
    checkpoint: str | Path = CHECKPOINT.default,
    work_dir: Path | None = None,
    trust_checkpoint: bool = False,
) -> ModelFile:
    """Find, load and check a model file (the weights are not put in a model yet).

    Args:
        config: config name or path; None: the one the file carries (an export's, or
            the merged config mmengine stores in a training checkpoint), else DCN_plus.
        checkpoint: a path, `latest` or `best` (of `work_dir`).
        work_dir: where `latest`/`best` look; default `work_dirs/<config name>`.
        trust_checkpoint: unpickle this file in full (the user vouches for it).

    Raises:
        CarddError: no such file, a file that may not or cannot be loaded, or a
            file and config for different classes.
    """
    config_name = resolve_config(config or DEFAULT_CONFIG).stem
    work_dir = work_dir if work_dir is not None else default_work_dir(config)
    path = checkpoints.resolve_checkpoint(checkpoint, work_dir, config_name)
    if path.suffix.lower() == ".onnx":
        raise CarddError(
            f"{path} is an ONNX export: `infer`, `serve`, `assess` and `eval` run it; this "
            "command needs the PyTorch checkpoint or .pth export it was made from"
        )
    with checkpoints.trusting(path if trust_checkpoint else None):
        contents, sha256 = checkpoints.read_checkpoint(path, map_location="cpu")
    if not isinstance(contents, dict) or not isinstance(contents.get("state_dict", contents), dict):
        raise CarddError(f"{path} holds no model weights (a {type(contents).__name__})")
    record = file_record(path, contents) if config is None else None
    if record is not None:
        from cardd.models.record import check_plain_model, config_from_record

        cfg, _ = config_from_record(record, str(path))
        check_plain_model(cfg, str(path))
        source = f"{record['architecture']} (recorded in {path})"
    else:
        config_path = resolve_config(config or DEFAULT_CONFIG)
        cfg = load_config(config_path)
        source = str(config_path)
    classes = model_classes(path, contents, cfg, source)
    return ModelFile(
        path=path,
        contents=contents,
        cfg=cfg,
        config_source=source,
        sha256=sha256,
        classes=classes,
        record=record,
    )


def file_record(path: Path, contents: dict) -> dict | None:
    """The model record a file carries (`cardd.models.record`), else one derived from the
    config text it embeds (a format-1 export's, a training checkpoint's `meta.cfg`),
    read as plain data; None when it carries neither (the default config applies).

    Raises:
        CarddError: a config text that is not plain data, or whose model no shipped
            config rebuilds (then only `--config` of that file can load it).
    """
    from cardd.models.formats import RECORD_KEY
    from cardd.models.record import check_plain_model, record_of

    exported = contents.get(EXPORT_KEY)
    exported = exported if isinstance(exported, dict) else {}
    meta = contents.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    if "model" in exported or RECORD_KEY in meta:
        record = exported["model"] if "model" in exported else meta[RECORD_KEY]
        if record is None:
            raise CarddError(
                f"{path} is a model of {exported.get('config_file') or 'a config'} that cardd "
                "does not ship: pass that file with --config (it is code: yours, run knowingly)"
            )
        return record
    embedded = exported.get("config", meta.get("cfg"))  # mmengine's merged config
    if embedded is None:
        return None
    if not isinstance(embedded, str):
        raise CarddError(f"{path}: its embedded config is a {type(embedded).__name__}, not text")
    parsed = config_from_text(embedded, str(path))
    check_plain_model(parsed, f"the config embedded in {path}")
    from cardd.models.configs import config_classes

    classes = checkpoints.checkpoint_class_set(contents) or config_classes(parsed)
    if classes is None:
        raise CarddError(f"{path}: neither its weights nor its config name the classes")
    record = record_of(parsed, classes)
    if record is None:
        raise CarddError(
            f"{path} was made from a config cardd does not ship (its model or test pipeline "
            "differs from every config under configs/ beyond classes, thresholds and "
            "preprocessing): pass that config with --config, or re-export it with this version"
        )
    return record


def model_classes(path: Path, contents: dict, cfg: Config, source: str) -> ClassSet:
    """The classes of a model file: those its weights were trained for (`dataset_meta`),
    which the config must name alike; a config's own when the file records none.

    Raises:
        CarddError: neither names classes, or the two disagree (names, ids or order).
    """
    from cardd.models.configs import config_classes

    try:
        trained = checkpoints.checkpoint_class_set(contents)
    except CarddError as error:
        raise CarddError(f"{path}: {error}") from None
    try:
        configured = config_classes(cfg)
    except CarddError as error:
        raise CarddError(f"{source}: {error}") from None
    if trained is None and configured is None:
        raise CarddError(f"neither {path} nor {source} says which classes the model predicts")
    if trained is not None and configured is not None:
        meta = (contents.get("meta") or {}).get("dataset_meta") or {}
        file_ids = "category_ids" in meta  # files from before cardd recorded ids lack them
        config_ids = "category_ids" in (cfg.get("metainfo") or {})
        if file_ids and config_ids:
            agree = trained.same_classes(configured)
        else:
            agree = trained.names == configured.names
        if not agree:
            raise CarddError(
                f"{path} was trained for {trained.describe()}, but {source} is for "
                f"{trained.difference(configured)} ({configured.describe()}); pass the config "
                "it was trained with (or none: the file's own)"
            )
        if not file_ids:
            return configured
    return trained if trained is not None else configured


def load_weights(model: torch.nn.Module, model_file: ModelFile) -> None:
    """Put the file's weights into `model`, every one of them (strict).

    Raises:
        CarddError: missing, unexpected or mis-shaped weights: the file is not a
            model of this config.
    """
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    try:
        _load_checkpoint_to_model(model, model_file.contents, strict=True, logger="silent")
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:240]
        raise CarddError(
            f"{model_file.path} does not fit {model_file.config_source} ({detail})"
        ) from None


def build_model(model_file: ModelFile, device: str):
    """The model of `model_file`'s config, with its weights, on `device`, in eval mode.

    Built as mmdet's `init_detector` builds it, minus its fallback to COCO's class
    names and its pretrained-backbone download.
    """
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    from cardd.core import logs
    from cardd.models.config_guard import lookup_only

    # mmcv announces each of the 33 DCN layers it "upgrades" while the weights load:
    # on the terminal only with --verbose (`cardd.core.logs`)
    logs.quiet_terminal(MMLogger.get_current_instance())
    cfg = model_file.cfg
    cfg.model.backbone.init_cfg = None  # the weights come from the file
    init_default_scope(cfg.get("default_scope", "mmdet"))
    with lookup_only() if model_file.config_from_file else contextlib.nullcontext():
        # a copy: mmdet's detectors write their test_cfg into the config they are given,
        # and the config stays what the record describes
        model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    load_weights(model, model_file)
    model.cfg = cfg
    model.dataset_meta = model_file.classes.meta()
    return model.to(device).eval()
