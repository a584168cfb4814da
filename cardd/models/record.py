"""What a model file may say about its model: plain data, checked field by field.

A model file never carries a config to build. An export (and the checkpoints
`cardd train` writes) holds a *record*:

    {"format": 2,
     "architecture": "tiny_DCN_plus",          # a config shipped under configs/
     "classes": [...], "category_ids": [...], "palette": [[r, g, b], ...],
     "test_cfg": {...},                         # thresholds and detection limits
     "data_preprocessor": {"mean", "std", "bgr_to_rgb", "pad_size_divisor"},
     "test_resize": [w, h]}

Loading builds the shipped config and applies only these fields
(`config_from_record`). The shipped config is also the schema: a field must have
the shape of the shipped value it replaces (same keys, numbers for numbers, finite,
in range; a string only equal to the shipped one), and a record with any other key
is refused in one line before anything is built. What a constructor would do with
an expression, a URL or a path therefore never reaches one: no such value can be
written in a record.

A record is made by `record_of(cfg)`, and only when the shipped config plus the
record rebuilds `cfg`'s model and test pipeline exactly (what training alone uses,
its `train_cfg` (samplers, assigners) and `init_cfg`, does not count; the losses
do, since mmdet's heads read `loss_cls.use_sigmoid` at test time). A model trained from the
user's own config file has no record: it loads only with that file named
(`--config my.py`), the user's own code run knowingly.

Files made before records existed (a format-1 export's embedded config, a training
checkpoint's `meta.cfg`) are read as plain data, never executed (`configs.
config_from_text`), and accepted only when a record derived from them rebuilds
them exactly, as above; then that record, not the text, builds the model.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from cardd.core.errors import CarddError

if TYPE_CHECKING:
    from mmengine.config import Config

    from cardd.structures.classes import ClassSet

RECORD_FORMAT = 2
#: The key of the record in an export (`cardd_export["model"]`) and a checkpoint's `meta`.
FIELDS = (
    "format", "architecture", "classes", "category_ids", "palette", "test_cfg",
    "data_preprocessor", "test_resize",
)  # fmt: skip
PREPROCESSOR_FIELDS = ("mean", "std", "bgr_to_rgb", "pad_size_divisor")
#: Bounds of a record's numbers: detection limits, thresholds, sizes.
MAX_COUNT = 100_000
MAX_CLASSES = 1000
MAX_SIDE = 8192
#: Subtrees of a model config that only training uses: never compared, never recorded.
TRAINING_ONLY = ("train_cfg", "init_cfg")


class RecordError(CarddError):
    """A model file's record that cardd will not build."""


def _plain(value: Any) -> Any:
    """Tuples to lists, ConfigDicts to dicts: the JSON form two configs are compared in."""
    return json.loads(json.dumps(value, default=str))


def _inference_part(node: Any) -> Any:
    """A model config without what only training uses (`train_cfg`: samplers and
    assigners; `init_cfg`): the part that decides what the model computes at test time.
    The losses stay: a head's `loss_cls.use_sigmoid` sets its output size and whether
    its scores are sigmoids or a softmax."""
    if isinstance(node, dict):
        return {k: _inference_part(v) for k, v in node.items() if k not in TRAINING_ONLY}
    if isinstance(node, list):
        return [_inference_part(v) for v in node]
    return node


def _test_pipeline(cfg: Config) -> list:
    loader = cfg.get("test_dataloader") or {}
    dataset = loader.get("dataset") or {}
    return list(dataset.get("pipeline") or cfg.get("test_pipeline") or [])


def _view(cfg: Config) -> dict:
    """What must be equal for two configs to make the same predictions."""
    pipeline = [
        {k: v for k, v in dict(step).items() if k != "backend_args"}
        for step in _test_pipeline(cfg)
    ]
    return _plain({"model": _inference_part(cfg.to_dict()["model"]), "pipeline": pipeline})


def _buildable(cfg: Config) -> dict:
    """What building a model file's model and pipeline builds: the model but its
    `init_cfg` (the weights come from the file), and the test pipeline."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "init_cfg"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return _plain({"model": strip(cfg.to_dict()["model"]), "pipeline": _test_pipeline(cfg)})


def _resize_steps(cfg: Config) -> list:
    """Every `Resize` step of the test and validation pipelines (the same in cardd's
    configs), where `test_resize` applies."""
    steps = []
    for pipeline in (
        cfg.get("test_pipeline"),
        ((cfg.get("test_dataloader") or {}).get("dataset") or {}).get("pipeline"),
        ((cfg.get("val_dataloader") or {}).get("dataset") or {}).get("pipeline"),
    ):
        for step in pipeline or []:
            if isinstance(step, dict) and step.get("type") == "Resize" and "scale" in step:
                steps.append(step)
    return steps


# --- checking one value against the shipped value it replaces -------------------------


def _number(value: Any, shipped: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where} is {value!r}, not a number")
    if isinstance(shipped, int) and not isinstance(value, int):
        raise RecordError(f"{where} is {value!r}, not a whole number")
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT:
        raise RecordError(f"{where} is {value!r}, not a number in 0..{MAX_COUNT}")
    return value


def _like(value: Any, shipped: Any, where: str) -> Any:
    """`value` if it has the shape of `shipped` (a dict with a subset of its keys, a list of
    the same length, a number for a number, a bool for a bool, the same string)."""
    if isinstance(shipped, dict):
        if not isinstance(value, dict):
            raise RecordError(f"{where} is a {type(value).__name__}, not a mapping")
        unknown = sorted(str(k) for k in value if k not in shipped)
        if unknown:
            raise RecordError(f"{where}: unknown key {unknown[0]!r}; refused")
        return {k: _like(v, shipped[k], f"{where}.{k}") for k, v in value.items()}
    if isinstance(shipped, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(shipped):
            raise RecordError(f"{where} is {value!r}, not a list of {len(shipped)}")
        pairs = enumerate(zip(value, shipped, strict=True))
        return [_like(v, s, f"{where}[{i}]") for i, (v, s) in pairs]
    if isinstance(shipped, bool):
        if not isinstance(value, bool):
            raise RecordError(f"{where} is {value!r}, not true or false")
        return value
    if isinstance(shipped, (int, float)):
        return _number(value, shipped, where)
    if value != shipped:
        raise RecordError(f"{where} is {value!r}; only the shipped {shipped!r} is accepted")
    return value


def _classes(record: dict, where: str) -> ClassSet:
    from cardd.structures.classes import ClassSet

    names, ids, palette = record.get("classes"), record.get("category_ids"), record.get("palette")
    if not (
        isinstance(names, list)
        and 0 < len(names) <= MAX_CLASSES
        and all(isinstance(n, str) and 0 < len(n) <= 200 for n in names)
    ):
        raise RecordError(f"{where}: `classes` is not a list of 1..{MAX_CLASSES} names")
    if not (
        isinstance(ids, list)
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in ids)
    ):
        raise RecordError(f"{where}: `category_ids` is not a list of integers in 0..2^31")
    if not (
        isinstance(palette, list)
        and all(
            isinstance(c, list)
            and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            for c in palette
        )
    ):
        raise RecordError(f"{where}: `palette` is not a list of [r, g, b] in 0..255")
    try:
        return ClassSet(tuple(names), tuple(ids), tuple(tuple(c) for c in palette))
    except CarddError as error:
        raise RecordError(f"{where}: {error}") from None


def config_from_record(record: object, where: str) -> tuple[Config, ClassSet]:
    """The shipped config a record names with the record's fields applied, and its classes.

    Raises:
        RecordError: one line: a key that is not a field, a field of the wrong shape or
            range, an architecture cardd does not ship.
    """
    from cardd.models.configs import available_configs, load_config, set_classes

    if not isinstance(record, dict):
        raise RecordError(f"{where}: its model record is a {type(record).__name__}, not a mapping")
    unknown = sorted(str(k) for k in record if k not in FIELDS)
    if unknown:
        raise RecordError(f"{where}: its model record has an unknown field {unknown[0]!r}; refused")
    if record.get("format") != RECORD_FORMAT:
        raise RecordError(
            f"{where}: model record format {record.get('format')!r}; this cardd reads "
            f"{RECORD_FORMAT}: re-export it with this version"
        )
    architecture = record.get("architecture")
    if not isinstance(architecture, str) or architecture not in available_configs():
        raise RecordError(
            f"{where}: architecture {architecture!r} is not one cardd ships "
            f"({', '.join(available_configs())}); a model of your own config loads with "
            "--config YOUR_CONFIG.py"
        )
    classes = _classes(record, where)
    cfg = load_config(architecture)
    shipped_test = _plain(cfg.model.get("test_cfg") or {})
    test_cfg = _like(record.get("test_cfg", shipped_test), shipped_test, f"{where}: test_cfg")
    shipped_pre = {
        k: v for k, v in _plain(cfg.model.get("data_preprocessor") or {}).items()
        if k in PREPROCESSOR_FIELDS
    }  # fmt: skip
    pre = _like(record.get("data_preprocessor", shipped_pre), shipped_pre,
                f"{where}: data_preprocessor")  # fmt: skip
    if "std" in pre and any(v <= 0 for v in pre["std"]):
        raise RecordError(f"{where}: data_preprocessor.std must be positive")
    if "pad_size_divisor" in pre and not 1 <= pre["pad_size_divisor"] <= 128:
        raise RecordError(f"{where}: data_preprocessor.pad_size_divisor is not in 1..128")
    resize = record.get("test_resize")
    steps = _resize_steps(cfg)
    if resize is not None:
        if not (
            isinstance(resize, list)
            and len(resize) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in resize)
            and all(32 <= v <= MAX_SIDE for v in resize)
        ):
            raise RecordError(f"{where}: test_resize is {resize!r}, not [w, h] in 32..{MAX_SIDE}")
        if not steps:
            raise RecordError(f"{where}: test_resize given, but {architecture} has no Resize")
    set_classes(cfg, classes)
    cfg.model.test_cfg = _merge(shipped_test, test_cfg)
    cfg.model.data_preprocessor.update(pre)
    for step in steps if resize is not None else []:
        step["scale"] = tuple(resize)
    return cfg, classes


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return merged


def _record_fields(cfg: Config, architecture: str, classes: ClassSet) -> dict:
    """The record of `cfg` if it were `architecture` plus these fields (unchecked)."""
    model = _plain(cfg.to_dict()["model"])
    steps = _resize_steps(cfg)
    scale = steps[0]["scale"] if steps else None
    pre = model.get("data_preprocessor") or {}
    record = {
        "format": RECORD_FORMAT,
        "architecture": architecture,
        **{k: _plain(v) for k, v in classes.meta().items() if k != "classes"},
        "classes": list(classes.names),
        "test_cfg": model.get("test_cfg") or {},
        "data_preprocessor": {k: v for k, v in pre.items() if k in PREPROCESSOR_FIELDS},
    }
    if scale is not None:
        record["test_resize"] = [int(v) for v in scale]
    return record


def record_of(cfg: Config, classes: ClassSet, hint: str | None = None) -> dict | None:
    """The record that rebuilds `cfg`'s model and test pipeline from a shipped config,
    else None (a model of the user's own config). `hint`: the architecture to try first.
    """
    from cardd.models.configs import available_configs

    names = available_configs()
    if hint in names:
        names.remove(hint)
        names.insert(0, hint)
    wanted = _view(cfg)
    for name in names:
        record = _record_fields(cfg, name, classes)
        try:
            rebuilt, _ = config_from_record(record, name)
        except CarddError:
            continue
        if _view(rebuilt) == wanted:
            return record
    return None


def check_plain_model(cfg: Config, where: str) -> None:
    """The second wall, for a config about to be built for a model file: every `type` in
    its model and test pipeline is one the shipped configs use, and no string there is
    a URL or a path.

    Raises:
        RecordError: the key path and the value.
    """
    allowed = shipped_types()
    view = _buildable(cfg)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "type" in node and node["type"] not in allowed:  # the outermost first
                raise RecordError(
                    f"{where}: {path}.type = {node['type']!r} is not a class cardd ships"
                )
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")
        elif isinstance(node, str) and ("://" in node or "/" in node or "\\" in node):
            raise RecordError(f"{where}: {path} = {node!r} is a URL or a path; refused")

    walk(view, "config")


_SHIPPED_TYPES: set[str] = set()


def shipped_types() -> set[str]:
    """Every `type` the shipped configs' models and test pipelines use (read once)."""
    from cardd.models.configs import available_configs, load_config

    if not _SHIPPED_TYPES:
        for name in available_configs():
            found: set[str] = set()

            def collect(node: Any, into: set[str] = found) -> None:
                if isinstance(node, dict):
                    if isinstance(node.get("type"), str):
                        into.add(node["type"])
                    for value in node.values():
                        collect(value)
                elif isinstance(node, list):
                    for value in node:
                        collect(value)

            collect(_buildable(load_config(name)))
            _SHIPPED_TYPES.update(found)
    return _SHIPPED_TYPES
