"""cardd: car-damage detection, segmentation and claim assessment (MMDetection 3).

What a user needs, imported lazily so that `import cardd` (and `cardd --help`)
stays free of torch:

    from cardd import DamageDetector, ImageResult, Detection, ClassSet, load_image
    from cardd import assess_images, assess_video
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardd.openmmlab import ext_finder as _ext_finder

__version__ = "0.1.0"

# mmcv-lite (the `torch` extra) has no compiled kernels: mmcv.ops gets cardd's, in this
# process, unless a compiled `mmcv._ext` is installed (it is found first).
_ext_finder.install()

#: public name -> the module that defines it
_PUBLIC = {
    "DamageDetector": "cardd.detector.predictor",
    "ImageResult": "cardd.detector.results",
    "Detection": "cardd.structures.results",
    "ClassSet": "cardd.structures.classes",
    "load_image": "cardd.structures.images",
    "assess_images": "cardd.assess.pipeline",
    "assess_video": "cardd.assess.pipeline",
}
__all__ = [
    "DamageDetector", "ImageResult", "Detection", "ClassSet", "load_image", "assess_images",
    "assess_video", "__version__",
]  # fmt: skip

if TYPE_CHECKING:
    from cardd.assess.pipeline import assess_images, assess_video
    from cardd.detector.predictor import DamageDetector
    from cardd.detector.results import ImageResult
    from cardd.structures.classes import ClassSet
    from cardd.structures.images import load_image
    from cardd.structures.results import Detection


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cardd' has no attribute {name!r}")
