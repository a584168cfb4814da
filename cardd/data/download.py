"""`cardd download-data`: fetch the CarDD release, extract it safely, check it."""

from __future__ import annotations

import os
from pathlib import Path

from cardd.core.download import download, partial_path
from cardd.core.errors import CarddError, CarddUsageError
from cardd.data.check import CheckReport, check_dataset
from cardd.data.extract import extract_release
from cardd.data.layout import DATASET_DIR
from cardd.data.options import DOWNLOAD_DEST

#: The official release: a Google Drive file of about 4,000 images.
GDRIVE_FILE_ID = "1bbyqVCKZX5Ur5Zg-uKj0jD0maWAVeOLx"
RELEASE_ZIP = "CarDD_release.zip"


def cache_dir() -> Path:
    """Where downloads accumulate (and resume) outside the checkout."""
    return Path(os.environ.get("CARDD_CACHE", Path.home() / ".cache" / "cardd"))


def _download_gdrive(file_id: str, target: Path) -> Path:
    """Fetch a Google Drive file, with its large-file confirmation page handled by gdown."""
    import gdown

    target.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(target)
    try:
        result = gdown.download(id=file_id, output=str(part), quiet=False, resume=True, retries=3)
    except Exception as error:  # gdown raises plain exceptions for quota, offline, etc.
        text = str(error)
        if "NameResolutionError" in text or "Name or service not known" in text:
            raise CarddError(
                "cannot reach drive.google.com: are you offline? Download the CarDD release "
                "by hand and pass --zip, or use --url with a mirror"
            ) from None
        raise CarddError(
            f"Google Drive download failed ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "download the zip by hand and pass --zip, or use --url with a mirror"
        ) from None
    if result is None:
        raise CarddError("Google Drive download failed; try --zip or --url")
    os.replace(part, target)
    return target


def download_data(
    dest: Path = DOWNLOAD_DEST.default,
    zip_path: Path | None = None,
    url: str | None = None,
    keep_sod: bool = False,
    force: bool = False,
    redownload: bool = False,
) -> CheckReport:
    """Put the CarDD release at `<dest>/CarDD_COCO` and check it.

    Args:
        dest: folder to hold `CarDD_COCO/`.
        zip_path: a release zip already on disk (fully offline); never modified.
        url: a mirror of the release zip (http/https), instead of Google Drive.
        keep_sod: also extract `CarDD_SOD/` (salient-object masks, unused here).
        force: replace an existing `<dest>/CarDD_COCO`, extracting the release zip
            already in the cache when there is one (downloads only land there whole).
        redownload: fetch the release zip again even if the cache holds one (and
            replace the dataset in place).

    Returns:
        The check report of the dataset in place.
    """
    if zip_path is not None and (url is not None or redownload):
        raise CarddUsageError("pass --zip alone: not with --url or --redownload")
    target = dest / DATASET_DIR
    force = force or redownload
    if target.exists() and not force:
        print(f"{target} is already in place; nothing changed (use --force to replace it)")
        return check_dataset(target)
    if zip_path is None:
        zip_path = cache_dir() / "downloads" / RELEASE_ZIP
        if redownload or not zip_path.is_file():
            if url is not None:
                download(url, zip_path)
            else:
                _download_gdrive(GDRIVE_FILE_ID, zip_path)
        else:
            print("extracting the release zip downloaded earlier (--redownload fetches it again)")
        print(f"release zip: {zip_path} (kept, so --force can re-extract without downloading)")
    elif not zip_path.is_file():
        raise CarddError(f"--zip {zip_path}: no such file")
    extract_release(zip_path, dest, keep_sod=keep_sod, force=force)
    return check_dataset(target)
