"""Model files: from `--config/--checkpoint/--work-dir` to loaded weights, one path for all.

`cardd infer`, `cardd eval`, `cardd serve` and `DamageDetector` all open a model
here, so they accept the same files and refuse the same ones:

* the file loads by `cardd.checkpoints`' rules (weights-only unless it is this
  user's own training checkpoint or `--trust-checkpoint` names it);
* a `cardd export` file carries its config, and so does an mmengine training
  checkpoint (the run's merged config): without `--config`, that one is used,
  read as plain data, never executed;
* the config and the checkpoint must be for the same classes (names and category
  ids, in label order), and those classes (`ModelFile.classes`) name every output;
* every weight must fit the model (strict loading), so a model that did not
  load is never run, let alone scored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardd import checkpoints
from cardd.classes import ClassSet
from cardd.configs import config_from_text, load_config, resolve_config
from cardd.errors import CarddError

if TYPE_CHECKING:
    import torch
    from mmengine.config import Config

#: The config used when neither `--config` nor the model file names one.
DEFAULT_CONFIG = "DCN_plus"
#: The key of a `cardd export` file's self-description.
EXPORT_KEY = "cardd_export"


@dataclass
class ModelFile:
    """A checkpoint or export, loaded once, with the config that builds its model."""

    path: Path
    contents: dict  # emptied by `release` once the weights are in a model
    cfg: Config
    config_source: str  # a config file, or "<file> (embedded)"
    sha256: str  # of the bytes loaded
    classes: ClassSet  # what the model predicts, agreed by the file and the config
    config_from_file: bool = False  # someone else's text: built by registry lookup only

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
    checkpoint: str | Path = "latest",
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
    exported = contents.get(EXPORT_KEY)
    meta = contents.get("meta")
    embedded = (exported or {}).get("config") if isinstance(exported, dict) else None
    if embedded is None and isinstance(meta, dict):
        embedded = meta.get("cfg")  # mmengine stores the run's merged config there
    from_file = config is None and embedded is not None
    if from_file:
        if not isinstance(embedded, str):
            kind = type(embedded).__name__
            raise CarddError(f"{path}: its embedded config is a {kind}, not text")
        cfg = config_from_text(embedded, str(path))
        source = f"{path} (embedded)"
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
        config_from_file=from_file,
    )


def model_classes(path: Path, contents: dict, cfg: Config, source: str) -> ClassSet:
    """The classes of a model file: those its weights were trained for (`dataset_meta`),
    which the config must name alike; a config's own when the file records none.

    Raises:
        CarddError: neither names classes, or the two disagree (names, ids or order).
    """
    from cardd.configs import config_classes

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

    from cardd import logs
    from cardd.config_guard import lookup_only

    # mmcv announces each of the 33 DCN layers it "upgrades" while the weights load:
    # on the terminal only with --verbose (`cardd.logs`)
    logs.quiet_terminal(MMLogger.get_current_instance())
    cfg = model_file.cfg
    cfg.model.backbone.init_cfg = None  # the weights come from the file
    init_default_scope(cfg.get("default_scope", "mmdet"))
    with lookup_only() if model_file.config_from_file else contextlib.nullcontext():
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    load_weights(model, model_file)
    model.cfg = cfg
    model.dataset_meta = model_file.classes.meta()
    return model.to(device).eval()
