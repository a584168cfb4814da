"""cardd: car-damage detection and segmentation on the CarDD dataset (MMDetection 3).

`from cardd import DamageDetector` gives the inference engine; it is imported
lazily so that `import cardd` (and `cardd --help`) stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["DamageDetector", "Detection", "__version__"]

if TYPE_CHECKING:
    from cardd.detector.predictor import DamageDetector, Detection


def __getattr__(name: str):
    if name in ("DamageDetector", "Detection"):
        from cardd.detector import predictor as detector

        return getattr(detector, name)
    raise AttributeError(f"module 'cardd' has no attribute {name!r}")
