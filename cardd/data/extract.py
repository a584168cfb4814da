"""Safe extraction of the CarDD release zip.

Every entry is validated before anything is written: absolute paths, `..`
components and symbolic links are refused (zip-slip), and the free space is
checked. Only the `CarDD_COCO` tree (and `CarDD_SOD` on request) is extracted,
into a staging folder that is renamed into place at the end.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from cardd.core.errors import CarddError
from cardd.data.layout import DATASET_DIR, staged_folder

SOD_DIR = "CarDD_SOD"


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def validate_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Refuse archives with entries that would land outside the destination."""
    entries = archive.infolist()
    for info in entries:
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise CarddError(f"unsafe zip: entry {info.filename!r} has an absolute path")
        if ".." in path.parts:
            raise CarddError(f"unsafe zip: entry {info.filename!r} climbs out with '..'")
        if _is_symlink(info):
            raise CarddError(f"unsafe zip: entry {info.filename!r} is a symbolic link")
    return entries


def find_tree(entries: list[zipfile.ZipInfo], folder: str) -> str | None:
    """The archive prefix (e.g. `CarDD_release/CarDD_COCO/`) of the shallowest `folder`."""
    prefixes = set()
    for info in entries:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if folder in parts[:-1] or (info.is_dir() and parts and parts[-1] == folder):
            index = parts.index(folder)
            prefixes.add("/".join(parts[: index + 1]) + "/")
    if not prefixes:
        return None
    return min(prefixes, key=lambda p: (p.count("/"), p))


def open_zip(zip_path: Path) -> zipfile.ZipFile:
    """The archive, or one line saying it cannot be read as a zip."""
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CarddError(f"{zip_path} is not a readable zip file: {error}") from None


def check_free_space(needed: int, dest: Path) -> None:
    """Refuse an extraction of `needed` bytes that would not fit where `dest` goes."""
    probe = dest if dest.exists() else next(p for p in dest.parents if p.exists())
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise CarddError(
            f"not enough disk space in {probe}: extraction needs {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB free"
        )


def extract_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path,
                  relative: str) -> None:  # fmt: skip
    """One entry's bytes to `dest/relative`, streamed. `dest` is a staging folder this
    run made (`staged_folder`: moved into place whole), and the name must stay inside
    it (`cardd.core.files.safe_relative`), whatever `validate_entries` let through."""
    from cardd.core.files import inside

    out = inside(dest, relative)
    out.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tree(
    archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], prefix: str, dest: Path
) -> int:
    count = 0
    for info in entries:
        name = info.filename.replace("\\", "/")
        if not name.startswith(prefix) or info.is_dir():
            continue
        extract_entry(archive, info, dest, name[len(prefix) :])
        count += 1
    return count


def extract_release(
    zip_path: Path, dest: Path, keep_sod: bool = False, force: bool = False
) -> Path:
    """Extract `CarDD_COCO` from the release zip into `<dest>/CarDD_COCO`.

    Works with both `CarDD_release/CarDD_COCO/...` and the double-nested
    `CarDD_release/CarDD_release/CarDD_COCO/...`. A broken zip, a zip without
    `CarDD_COCO`, or a full disk leaves `dest` as it was.

    Returns:
        The extracted `CarDD_COCO` folder.
    """
    target = dest / DATASET_DIR
    if target.exists() and not force:
        raise CarddError(f"{target} already exists; pass --force to replace it")
    with open_zip(zip_path) as archive:
        entries = validate_entries(archive)
        coco_prefix = find_tree(entries, DATASET_DIR)
        if coco_prefix is None:
            raise CarddError(f"{zip_path} holds no {DATASET_DIR}/ folder: is it the CarDD release?")
        sod_prefix = find_tree(entries, SOD_DIR) if keep_sod else None
        if keep_sod and sod_prefix is None:
            raise CarddError(f"{zip_path} holds no {SOD_DIR}/ folder (--keep-sod)")
        wanted = [coco_prefix] + ([sod_prefix] if sod_prefix else [])
        needed = sum(
            info.file_size for info in entries if any(info.filename.startswith(p) for p in wanted)
        )
        check_free_space(needed, dest)
        try:
            with staged_folder(target, force=force) as staging:
                count = _extract_tree(archive, entries, coco_prefix, staging)
                if not (staging / "annotations").is_dir():
                    raise CarddError(f"{zip_path}: {coco_prefix} has no annotations/ folder")
            if sod_prefix:
                with staged_folder(dest / SOD_DIR, force=force) as staging:
                    _extract_tree(archive, entries, sod_prefix, staging)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as error:
            # zipfile reports damaged members in several ways (bad CRC, bad
            # header, "encrypted" or unknown flags read from garbage).
            raise CarddError(f"{zip_path} is corrupt: {error}") from None
        except OSError as error:
            raise CarddError(f"extraction into {dest} failed: {error}") from None
    print(f"extracted {count} files from {zip_path.name} into {target}")
    return target
