"""Release-like zips for the dataset tests."""

import hashlib
import zipfile


def snapshot(folder):
    """Every path under `folder` with its content hash: "exactly as it was"."""
    if not folder.exists():
        return None
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(folder.rglob("*"))
    }


def release_zip_of(path, dataset_root, prefix="CarDD_release/", extra=()):
    """Zip a CarDD_COCO folder the way the release does (plus a CarDD_SOD entry)."""
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(dataset_root.rglob("*")):
            if file.is_file():
                zf.write(file, prefix + "CarDD_COCO/" + file.relative_to(dataset_root).as_posix())
        zf.writestr(prefix + "CarDD_SOD/CarDD-TR/CarDD-TR-Image/000001.jpg", b"sod")
        for name, data in extra:
            zf.writestr(name, data)
    return path
