"""`cardd download-data --dataset carparts`: Ultralytics' Carparts-Seg, as a cardd dataset.

Carparts-Seg (23 car parts, YOLO polygons, about 4,200 photos; originally a
Roboflow Universe project) is the parts dataset `cardd assess --parts-model`
was made for. Ultralytics distributes it as one zip in its assets release; its
dataset YAML in the ultralytics package (`cfg/datasets/carparts-seg.yaml`) names
the classes and states "Ultralytics AGPL-3.0 License": check that its terms fit
your use before training on it. The zip holds no data.yaml, so the class names
below are those of that file.

The zip is downloaded into cardd's cache (resumed, renamed into place whole),
validated like CarDD's (absolute paths, `..` and links refused, free space
checked), its `train/`, `valid/`, `test/` extracted into `<dest>/carparts-seg`
(YOLO, with a data.yaml written beside them), then converted with
`cardd convert yolo` into `<dest>/carparts` (COCO and a description file).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import write_file

CARPARTS_URL = "https://github.com/ultralytics/assets/releases/download/v0.0.0/carparts-seg.zip"
CARPARTS_ZIP = "carparts-seg.zip"
YOLO_DIR, COCO_DIR = "carparts-seg", "carparts"
CARPARTS_NAMES = (
    "back_bumper", "back_door", "back_glass", "back_left_door", "back_left_light",
    "back_light", "back_right_door", "back_right_light", "front_bumper", "front_door",
    "front_glass", "front_left_door", "front_left_light", "front_light", "front_right_door",
    "front_right_light", "hood", "left_mirror", "object", "right_mirror", "tailgate", "trunk",
    "wheel",
)  # fmt: skip
_SPLITS = {"train": "train", "val": "valid", "test": "test"}


def _extract(zip_path: Path, target: Path, force: bool) -> None:
    """The zip's split folders into `target` (staged; whole or not at all)."""

    import yaml

    from cardd.data.extract import (
        check_free_space,
        extract_entry,
        find_tree,
        open_zip,
        validate_entries,
    )
    from cardd.data.layout import staged_folder

    with open_zip(zip_path) as archive:
        entries = validate_entries(archive)
        prefix = find_tree(entries, "train")
        if prefix is None:
            raise CarddError(f"{zip_path} holds no train/ folder: is it Carparts-Seg?")
        root = prefix[: -len("train/")]
        needed = sum(info.file_size for info in entries if info.filename.startswith(root))
        check_free_space(needed, target.parent)
        try:
            with staged_folder(target, force=force) as staging:
                for info in entries:
                    name = info.filename.replace("\\", "/")
                    if info.is_dir() or not name.startswith(root):
                        continue
                    relative = name[len(root) :]
                    if relative.split("/", 1)[0] not in _SPLITS.values():
                        continue
                    extract_entry(archive, info, staging, relative)
                data = {"path": "."}
                for split, folder in _SPLITS.items():
                    if (staging / folder / "images").is_dir():
                        data[split] = f"{folder}/images"
                data["names"] = dict(enumerate(CARPARTS_NAMES))
                write_file(
                    staging / "data.yaml",
                    "# Carparts-Seg (Ultralytics' assets release; its YAML says AGPL-3.0)\n"
                    + yaml.safe_dump(data, sort_keys=False)
                )
        except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
            raise CarddError(f"{zip_path} is corrupt: {error}") from None


def download_carparts(
    dest: Path = Path("data"),
    zip_path: Path | None = None,
    url: str | None = None,
    force: bool = False,
    redownload: bool = False,
):
    """Put Carparts-Seg at `<dest>/carparts-seg` (YOLO) and `<dest>/carparts` (COCO).

    Returns:
        The `ConvertReport` of the conversion (bad label lines are left out and counted).
    """
    from cardd.core.download import download
    from cardd.data.convert import convert_yolo
    from cardd.data.download import cache_dir

    yolo, coco = dest / YOLO_DIR, dest / COCO_DIR
    force = force or redownload
    if not force and (yolo.exists() or coco.exists()):
        raise CarddError(f"{yolo if yolo.exists() else coco} already exists; pass --force")
    if zip_path is None:
        zip_path = cache_dir() / "downloads" / CARPARTS_ZIP
        if redownload or not zip_path.is_file():  # --force alone re-extracts the cached zip
            download(url or CARPARTS_URL, zip_path)
    elif not zip_path.is_file():
        raise CarddError(f"--zip {zip_path}: no such file")
    _extract(zip_path, yolo, force)
    return convert_yolo(yolo / "data.yaml", coco, skip_bad=True, force=force)
