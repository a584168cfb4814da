"""Where a dataset's splits are: the CarDD layout, or a dataset description file.

A description file is YAML, in the spirit of Ultralytics' `data.yaml`: per split
a COCO annotation file and an image folder, relative to `path` (itself relative
to the file; default: the file's folder). Splits that are not listed do not
exist (a dataset without a test split), and say so when asked for:

    path: .                      # optional
    train:
      annotations: annotations/train.json
      images: images/train
    val:
      annotations: annotations/val.json
      images: images/val
    # test: ...                  # optional

The classes are not written here: they are the annotation files' `categories`,
which every split must list alike (`DatasetSpec.classes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError
from cardd.structures.classes import SPLITS, ClassSet, annotation_file, image_folder

if TYPE_CHECKING:
    from mmengine.config import Config

#: The splits a description file may list, in the order they are used.
SPLIT_NAMES = SPLITS
_TOP_KEYS = {"path", *SPLIT_NAMES}
_SPLIT_KEYS = {"annotations", "images"}


@dataclass(frozen=True)
class SplitFiles:
    """One split: its COCO annotation file and the folder its `file_name`s are in."""

    annotations: Path
    images: Path


@dataclass
class DatasetSpec:
    """A dataset's splits, and where the description came from (for messages)."""

    source: str
    splits: dict[str, SplitFiles]
    _classes: ClassSet | None = field(default=None, repr=False)

    def split(self, name: str) -> SplitFiles:
        """The files of split `name`.

        Raises:
            CarddError: the dataset has no such split (the message lists those it has).
        """
        if name not in self.splits:
            raise CarddError(
                f"{self.source} has no {name} split (it has: {', '.join(self.splits)})"
            )
        return self.splits[name]

    def classes(self) -> ClassSet:
        """The dataset's classes: its annotation files' `categories`, the same in every
        split (same ids, names and order), read once.

        Raises:
            CarddError: an annotation file is missing or unreadable, its categories are
                malformed, or two splits list different categories.
        """
        if self._classes is None:
            found: list[tuple[str, ClassSet]] = []
            for name, files in self.splits.items():
                found.append((name, read_categories(files.annotations, image_names=True)))
            first_split, first = found[0]
            for name, other in found[1:]:
                if not other.same_classes(first):
                    raise CarddError(
                        f"{self.source}: the {name} split lists other categories than the "
                        f"{first_split} split ({other.describe()}; {first.describe()}); "
                        "every split needs the same `categories` list"
                    )
            self._classes = first
        return self._classes


def read_categories(ann_file: Path, image_names: bool = False) -> ClassSet:
    """The `ClassSet` of one COCO annotation file; with `image_names`, every image's
    `file_name` is checked too (before a loader joins it to an image folder).

    Raises:
        CarddError: missing, not JSON, not COCO, malformed categories, or (with
            `image_names`) an image whose `file_name` could lead outside its folder.
    """
    try:
        with open(ann_file, "rb") as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise CarddError(f"annotation file {ann_file} does not exist") from None
    except OSError as error:
        raise CarddError(f"cannot read {ann_file}: {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CarddError(f"{ann_file} is not JSON ({error})") from None
    if not isinstance(coco, dict):
        raise CarddError(f"{ann_file} is not a COCO annotation file (a JSON object)")
    classes = ClassSet.from_categories(coco.get("categories"), str(ann_file))
    if image_names:
        from cardd.core.files import unsafe_file_name

        images = coco.get("images")
        if not isinstance(images, list):
            raise CarddError(f"{ann_file}: no `images` list")
        for image in images:
            name = image.get("file_name") if isinstance(image, dict) else None
            problem = unsafe_file_name(name)
            if problem:
                where = image.get("id") if isinstance(image, dict) else "?"
                raise CarddError(f"{ann_file}: image {where} file_name {name!r} {problem}")
    return classes


def cardd_layout(root: Path) -> DatasetSpec:
    """The three splits of a folder in the CarDD release's layout (`annotations/
    instances_<split>2017.json`, `<split>2017/`); a split whose annotation file is
    absent does not exist."""
    splits = {
        split: SplitFiles(root / annotation_file(split), root / image_folder(split))
        for split in SPLITS
        if (root / annotation_file(split)).is_file()
    }
    if not splits:
        raise CarddError(
            f"no dataset at {root} (no {annotation_file('train')}): fetch CarDD with "
            "`cardd download-data`, synthesize one with `cardd synth-data`, or describe "
            "your own with `cardd init-data`"
        )
    return DatasetSpec(source=str(root), splits=splits)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CarddError(f"{where} must be a path (text), got {value!r}")
    return value


def read_yaml(path: Path, what: str) -> object:
    """A YAML file's data (safe_load: no Python objects), or one line saying why not.

    Raises:
        CarddError: `<what> <path> does not exist`, unreadable, or not YAML (with the line).
    """
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise CarddError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise CarddError(f"cannot read {path}: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise CarddError(f"{path} is not valid YAML{line}") from None
    except RecursionError:
        raise CarddError(f"{what} {path} is nested too deep to be a {what}") from None


def load_data_file(path: Path) -> DatasetSpec:
    """A dataset description file -> its splits (paths resolved against the file).

    Raises:
        CarddError: unreadable YAML, unknown or missing keys (named), or no train split.
    """
    data = read_yaml(path, "dataset description")
    if not isinstance(data, dict):
        raise CarddError(f"{path}: expected keys {', '.join(sorted(_TOP_KEYS))}, got no mapping")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise CarddError(
            f"{path}: unknown key {unknown[0]!r} (the keys are path, train, val, test)"
        )
    base = path.parent / _text(data.get("path", "."), f"{path}: path")
    splits = {}
    for split in SPLIT_NAMES:
        entry = data.get(split)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise CarddError(f"{path}: {split} must have `annotations` and `images`")
        unknown = sorted(str(k) for k in entry if k not in _SPLIT_KEYS)
        missing = sorted(_SPLIT_KEYS - set(entry))
        if unknown or missing:
            what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
            raise CarddError(f"{path}: {split} has {what} (it takes annotations, images)")
        splits[split] = SplitFiles(
            annotations=base / _text(entry["annotations"], f"{path}: {split}.annotations"),
            images=base / _text(entry["images"], f"{path}: {split}.images"),
        )
    if "train" not in splits:
        raise CarddError(f"{path}: no train split")
    return DatasetSpec(source=str(path), splits=splits)


def resolve_dataset(data: Path | None, data_root: Path | None, default_root: Path) -> DatasetSpec:
    """The dataset a command's `--data FILE` / `--data-root DIR` name (one of them at
    most), else the CarDD layout at `default_root`.

    Raises:
        CarddUsageError: both given.
    """
    from cardd.core.errors import CarddUsageError

    if data is not None and data_root is not None:
        raise CarddUsageError("--data and --data-root both name the dataset: pass one")
    if data is not None:
        if data.is_dir():
            raise CarddError(
                f"{data} is a folder: --data takes a description file "
                f"(write one with `cardd init-data {data}`), --data-root a CarDD_COCO folder"
            )
        return load_data_file(data)
    return cardd_layout(data_root if data_root is not None else default_root)


def config_dataset(cfg: Config) -> DatasetSpec:
    """The splits a config's dataloaders read (the CarDD layout for cardd's configs);
    a split whose annotation file does not exist is left out."""
    splits = {}
    for split in SPLIT_NAMES:
        loader = cfg.get(f"{split}_dataloader")
        if not loader or "dataset" not in loader:
            continue
        dataset = loader.dataset
        root = Path(dataset.get("data_root") or "")
        ann = root / dataset.ann_file
        prefix = (dataset.get("data_prefix") or {}).get("img", "")
        if ann.is_file():
            splits[split] = SplitFiles(ann, root / prefix)
    root = cfg.get("data_root") or "the config's data_root"
    if "train" not in splits:
        train = cfg.get("train_dataloader", {}).get("dataset", {})
        ann = Path(train.get("data_root") or "") / train.get("ann_file", "")
        raise CarddError(
            f"no dataset at {root} ({ann} missing): fetch it with `cardd download-data`, "
            "make the toy subset with `cardd reduce-data`, synthesize one with "
            "`cardd synth-data` (then pass --data-root), or pass your own with --data FILE"
        )
    return DatasetSpec(source=str(root), splits=splits)


def apply_dataset(
    cfg: Config, spec: DatasetSpec, classes: ClassSet, set_files: bool = True
) -> None:
    """Make `cfg` train and test on `spec`: every split's files (unless `set_files`
    is off: the config's own folders), the classes and the heads' sizes.

    Without a val split there is no validation. Without a test split the test
    dataloader stays, on the val split (else train): it also defines the model's
    inference pipeline, which every model file must carry.
    """
    from cardd.models.configs import drop_split, set_classes, set_split_files

    for split in SPLIT_NAMES:
        if split in spec.splits:
            if set_files:
                set_split_files(cfg, split, spec.splits[split])
        elif split == "val":
            drop_split(cfg, split)
        elif split == "test":
            stand_in = spec.splits.get("val") or spec.splits["train"]
            set_split_files(cfg, split, stand_in)
    set_classes(cfg, classes)
