"""`cardd train --from MODEL`: start a run from a cardd model's weights.

A damage model already knows photos of cars; fine-tuning it on a user's own
classes starts far closer than COCO's weights. Everything is loaded strictly
(a file for another architecture is refused), except the layers whose shape or
meaning depends on the classes (box classifier and regressor, mask logits):
when the file was trained for other classes those start afresh, and the one
line `load_start_weights` returns says which.

Which layers depend on the classes is not a list of names: each class-dependent
head of the config is built for N and N+1 classes, and the weights whose shapes
differ are the ones (`class_dependent_weights`), so any mmdet head is covered.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError
from cardd.models import checkpoints

if TYPE_CHECKING:
    import torch
    from mmengine.config import Config


def _read(path: Path, trust: bool) -> dict:
    if not path.is_file():
        raise CarddError(f"--from: {path} does not exist")
    with checkpoints.trusting(path if trust else None):
        contents, _ = checkpoints.read_checkpoint(path, map_location="cpu")
    weights = contents.get("state_dict", contents) if isinstance(contents, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise CarddError(f"--from: {path} holds no model weights")
    return contents


def check_start_model(path: Path, cfg: Config, trust: bool = False) -> None:
    """Fail before the run writes anything when the file cannot start this run's model
    (built on PyTorch's meta device: shapes only, no memory, no weights loaded)."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    contents = _read(path, trust)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    with torch.device("meta"):
        model = MODELS.build(copy.deepcopy(cfg.model))
    _plan(path, contents, {k: tuple(v.shape) for k, v in model.state_dict().items()}, cfg)


def _head_paths(node, prefix: str = "") -> list[tuple[str, dict]]:
    """(module path, config) of every class-dependent head in a model config."""
    found = []
    if isinstance(node, dict):
        if "num_classes" in node and "type" in node and not prefix.endswith("rpn_head"):
            found.append((prefix, node))
        else:
            for key, child in node.items():
                found += _head_paths(child, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, (list, tuple)):  # e.g. a cascade's list of box heads
        for index, child in enumerate(node):
            found += _head_paths(child, f"{prefix}.{index}")
    return found


def class_dependent_weights(cfg: Config) -> set[str]:
    """Names of the model's weights whose shape depends on the number of classes."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get("default_scope", "mmdet"))
    names = set()
    for path, head in _head_paths(cfg.to_dict()["model"]):
        shapes = []
        for count in (head["num_classes"], head["num_classes"] + 1):
            built = MODELS.build(dict(copy.deepcopy(head), num_classes=count))
            shapes.append({k: tuple(v.shape) for k, v in built.state_dict().items()})
        names |= {f"{path}.{k}" for k, shape in shapes[0].items() if shapes[1].get(k) != shape}
    return names


def _plan(path: Path, contents: dict, own: dict[str, tuple], cfg: Config):
    """Which of the file's weights go into a model with these weight shapes (`own`), and
    which of its weights start afresh: `(kept, fresh, file_classes, run_classes)`.

    Raises:
        CarddError: the file does not fit the model beyond its class layers.
    """
    from cardd.structures.classes import ClassSet

    weights = contents.get("state_dict", contents)
    weights = {k.removeprefix("module."): v for k, v in weights.items()}
    run_classes = ClassSet.from_meta(dict(cfg.metainfo), "the run's classes")
    try:
        file_classes = checkpoints.checkpoint_class_set(contents)
    except CarddError as error:
        raise CarddError(f"--from {path}: {error}") from None
    same = file_classes is not None and file_classes.same_classes(run_classes)
    fresh = set() if same else class_dependent_weights(cfg) & set(own)
    kept = {k: v for k, v in weights.items() if k not in fresh}
    misfits = [k for k, v in kept.items() if k in own and tuple(v.shape) != own[k]]
    if misfits:
        k = misfits[0]
        raise CarddError(
            f"--from {path} does not fit the run's model ({len(misfits)} weights of "
            f"another shape, e.g. {k}: {tuple(kept[k].shape)} in the file, {own[k]} in the "
            "model); pass the config it was trained with"
        )
    missing = sorted(set(own) - set(kept) - fresh)
    unexpected = sorted(set(kept) - set(own))
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which the model lacks"
        count = len(missing) + len(unexpected)
        raise CarddError(
            f"--from {path} does not fit the model ({count} weights differ: it {what}); "
            "pass the config it was trained with"
        )
    return kept, fresh, file_classes if not same else None, run_classes


def load_start_weights(
    model: torch.nn.Module, path: Path, cfg: Config, trust: Path | None = None
) -> str:
    """Put `path`'s weights into `model` (the run's, sized for its dataset): strictly,
    but for the class-dependent layers when the file's classes differ.

    Returns:
        One line for the person: what was loaded, what starts afresh.

    Raises:
        CarddError: the file does not fit the model beyond its class layers.
    """
    from mmengine.model import is_model_wrapper

    contents = _read(path, trust is not None)
    target = model.module if is_model_wrapper(model) else model
    own = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    kept, fresh, other_classes, run_classes = _plan(path, contents, own, cfg)
    target.load_state_dict(kept, strict=False)  # `_plan` proved it is all but `fresh`
    if not fresh:
        return f"fine-tuning from {path}: every weight loaded ({run_classes.describe(4)})"
    before = other_classes.describe(4) if other_classes else "classes it does not record"
    layers = sorted({name.rsplit(".", 1)[0] for name in fresh})
    return (
        f"fine-tuning from {path}: trained for {before}, now {run_classes.describe(4)}; "
        f"re-initialised {', '.join(layers)}, everything else loaded"
    )
