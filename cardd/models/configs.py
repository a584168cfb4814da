"""Find, load and adjust cardd's mmengine configs.

A config is named (`DCN_plus`, resolved to `configs/DCN_plus.py` of the
installed project from any working directory) or given as a path.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddUsageError
from cardd.core.resources import config_dir

if TYPE_CHECKING:
    from mmengine.config import Config

def available_configs() -> list[str]:
    """Names accepted by `--config`."""
    return sorted(p.stem for p in config_dir().glob("*.py") if not p.name.startswith("_"))


def resolve_config(name_or_path: str | Path) -> Path:
    """A config name or path -> an existing config file.

    Raises:
        CarddUsageError: unknown name (the message lists the known ones).
    """
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if text.endswith(".py") or "/" in text:
        if candidate.is_file():
            return candidate.resolve()
        raise CarddUsageError(f"config file {text} does not exist")
    named = config_dir() / f"{text}.py"
    if named.is_file():
        return named
    known = available_configs()
    close = difflib.get_close_matches(text, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise CarddUsageError(f"unknown config {text!r}{hint}; available: {', '.join(known)}")


@functools.cache
def released_configs(package_path: str) -> dict:
    """{config name: model entry} of a package's model index, read once per process."""
    import os.path

    from mmengine.fileio import load

    mim = os.path.join(package_path, ".mim")
    configs: dict = {}
    for metafile in load(os.path.join(mim, "model-index.yml"))["Import"]:
        for model in load(os.path.join(mim, metafile))["Models"]:
            if "Config" in model:  # mmengine's rule: the first config of a name wins
                configs.setdefault(model["Config"].partition("/")[-1], model)
    return configs


def _released_config(package_path: str, cfg_path: str) -> dict:
    configs = released_configs(package_path)
    if cfg_path not in configs:
        raise ValueError(f"{cfg_path} is not among the released configs")
    return configs[cfg_path]


def _index_package_configs_once() -> None:
    """Make mmengine read a package's model index once per process, not once per reference.

    mmengine resolves each `mmdet::` base config by first parsing all of mmdet's model
    metafiles (about 300 YAML files) to look for it among the released models, and only
    then, not finding it there, takes it from `.mim/configs/`: 0.37 s per reference, 1.1 s
    for each load of a cardd config (three references), in every command and model load.
    The index is the same every time: `released_configs` builds it once per package and
    process and answers as mmengine's `_get_cfg_metainfo` (0.10.7) does, so every path
    resolves exactly as before (tested).
    """
    from mmengine.config import utils

    if utils._get_cfg_metainfo is not _released_config:
        _released_config.mmengine_original = utils._get_cfg_metainfo
        utils._get_cfg_metainfo = _released_config


#: Recent yapf results by input: formatting is a pure function of the text and style.
_FORMATTED: dict = {}


def _format_each_config_text_once() -> None:
    """Make mmengine format a config's text with yapf once, not at every use.

    `Config.pretty_text` runs yapf over the whole config each time it is read (about 0.8 s
    for DCN_plus on 2 cores): mmengine's Runner reads it four times before the first
    iteration (log, dump, ...) and once per checkpoint it saves (`meta.cfg`). The same
    text gives the same result, so the last few results are kept, by text and style.
    """
    from mmengine.config import config as mmengine_config

    if getattr(mmengine_config.FormatCode, "cardd_memo", False):
        return
    format_code = mmengine_config.FormatCode

    def remembered(text, style_config=None, **kwargs):
        key = (text, repr(style_config), repr(sorted(kwargs.items())))
        if key not in _FORMATTED:
            while len(_FORMATTED) >= 8:
                _FORMATTED.pop(next(iter(_FORMATTED)))
            _FORMATTED[key] = format_code(text, style_config=style_config, **kwargs)
        return _FORMATTED[key]

    remembered.cardd_memo = True
    remembered.yapf_original = format_code
    mmengine_config.FormatCode = remembered


def load_config(name_or_path: str | Path, cfg_options: dict | None = None) -> Config:
    """Load a config (with its `_base_` chain) and merge `KEY=VALUE` overrides."""
    from mmengine.config import Config

    _index_package_configs_once()
    _format_each_config_text_once()
    cfg = Config.fromfile(str(resolve_config(name_or_path)))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_data_root(cfg: Config, root: Path) -> None:
    """Point every dataloader and evaluator of `cfg` at the folder `root` in the CarDD
    layout (`annotations/instances_<split>2017.json`, `<split>2017/`)."""
    from cardd.structures.classes import annotation_file, image_folder

    prefix = str(root).rstrip("/") + "/"
    cfg.data_root = prefix
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if loader is not None:
            loader.dataset.data_root = prefix
            loader.dataset.ann_file = annotation_file(split)
            loader.dataset.data_prefix = dict(img=image_folder(split) + "/")
    for split in ("val", "test"):
        evaluator = cfg.get(f"{split}_evaluator")
        if evaluator is not None and "ann_file" in evaluator:
            evaluator.ann_file = prefix + annotation_file(split)


def _literal(node):
    """A config value from its syntax tree: literals, containers, `dict(k=v, ...)`
    and negative numbers only. Anything else (calls, names, attributes) is refused."""
    import ast

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(element) for element in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(keyword.arg is not None for keyword in node.keywords)
    ):
        return {keyword.arg: _literal(keyword.value) for keyword in node.keywords}
    raise ValueError(
        f"line {getattr(node, 'lineno', '?')}: {ast.dump(node)[:80]} is not plain data"
    )


def config_from_text(text: str, source: str) -> Config:
    """A merged config's text (mmengine's `Config.pretty_text`, as `cardd export` stores
    it) -> a `Config`, without running it.

    mmengine would execute config text as Python; text that came inside a model file
    is someone else's code, so only `name = <plain data>` statements are accepted.
    Nothing is built from the result: `cardd.models.record` compares it with the
    shipped configs.

    Raises:
        CarddError: the text is anything but such assignments (or nested too deep).
    """
    import ast

    from mmengine.config import Config

    from cardd.core.errors import CarddError

    try:
        tree = ast.parse(text)
        values = {}
        for statement in tree.body:
            if not (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
            ):
                raise ValueError(f"line {statement.lineno}: not a `name = value` assignment")
            values[statement.targets[0].id] = _literal(statement.value)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        detail = "nested too deep" if isinstance(error, RecursionError) else error
        raise CarddError(f"the config embedded in {source} is not plain data ({detail})") from None
    values.pop("custom_imports", None)  # never imported: nothing is built from this text
    try:
        return Config(values)
    except Exception as error:  # mmengine's own checks of a config's keys
        raise CarddError(f"the config embedded in {source} is not a config ({error})") from None


def config_classes(cfg: Config):
    """The `ClassSet` a config's `metainfo` names, or None when it names none."""
    from cardd.structures.classes import ClassSet

    meta = cfg.get("metainfo")
    if not meta or not meta.get("classes"):
        return None
    return ClassSet.from_meta(dict(meta), "the config's metainfo")


def _set_num_classes(node, count: int, key: str = "") -> None:
    """Size every class-dependent head of a model config (box, mask heads; not the
    class-agnostic RPN) for `count` classes."""
    if isinstance(node, dict):
        if "num_classes" in node and key != "rpn_head":
            node["num_classes"] = count
        for child_key, child in node.items():
            _set_num_classes(child, count, child_key)
    elif isinstance(node, (list, tuple)):
        for child in node:
            _set_num_classes(child, count, key)


def set_classes(cfg: Config, classes) -> None:
    """Make `cfg` a model of `classes`: its `metainfo` (names, palette, ids: what the
    checkpoints record), every dataloader's and the heads' sizes."""
    # tuples, as `configs/_base_/cardd.py` writes them: mmengine prints lists of lists
    # one number per line, and this goes into every checkpoint's config text four times
    meta = {
        "classes": tuple(classes.names),
        "palette": [tuple(c) for c in classes.palette],
        "category_ids": tuple(classes.ids),
    }
    cfg.metainfo = meta
    if "num_classes" in cfg:
        cfg.num_classes = len(classes)
    _set_num_classes(cfg.model, len(classes))
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if loader is not None and "dataset" in loader:
            loader.dataset.metainfo = dict(meta)


def set_split_files(cfg: Config, split: str, files) -> None:
    """Point `cfg`'s dataloader (and evaluator) of `split` at `files` (a `SplitFiles`):
    absolute paths, so nothing depends on `data_root`."""
    loader = cfg.get(f"{split}_dataloader")
    if loader is None or "dataset" not in loader:
        return
    loader.dataset.data_root = ""
    loader.dataset.ann_file = str(files.annotations.resolve())
    loader.dataset.data_prefix = dict(img=str(files.images.resolve()).rstrip("/") + "/")
    evaluator = cfg.get(f"{split}_evaluator")
    if evaluator is not None and "ann_file" in evaluator:
        evaluator.ann_file = str(files.annotations.resolve())


def drop_split(cfg: Config, split: str) -> None:
    """A run without `split`: mmengine wants its loader, loop and evaluator all None."""
    for key in (f"{split}_dataloader", f"{split}_cfg", f"{split}_evaluator"):
        cfg[key] = None
