"""Photos in: any supported input to a BGR uint8 array, EXIF orientation applied,
decompression bombs refused from the header, one line for every bad file; and the
one set of image suffixes cardd reads and writes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

    ImageInput = str | Path | np.ndarray | PILImage

#: The image files cardd reads (inputs, datasets, uploads) and may write pictures as.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image_name(path: Path | PurePosixPath | str) -> bool:
    """Whether a file name has one of `IMAGE_SUFFIXES` (any case)."""
    return PurePosixPath(str(path)).suffix.lower() in IMAGE_SUFFIXES


class UnreadableImage(CarddError):
    """An input that is not a decodable image (`too_large`: more pixels than allowed)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


#: Pixels above which an image is refused from its header, before decoding: a
#: decompression bomb (a few KB of PNG that decode to gigabytes) stops here.
MAX_PIXELS = 178_956_970  # PIL's own error threshold (2 x Image.MAX_IMAGE_PIXELS)


def _decode(opened, name: str, max_pixels: int):
    """A PIL image opened lazily -> RGB PIL image, refusing too many pixels first."""
    from PIL import ImageOps

    _check_pixels(opened, name, max_pixels)
    opened.load()  # raises on truncated files
    return ImageOps.exif_transpose(opened).convert("RGB")


def _check_pixels(opened, name: str, max_pixels: int) -> None:
    width, height = opened.size
    if width * height > max_pixels:
        raise UnreadableImage(
            f"{name}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}",
            too_large=True,
        )


def _orientation(opened) -> int:
    try:
        return int(opened.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block: PIL's exif_transpose ignores it too
        return 1


@contextlib.contextmanager
def _image_errors(name: str, max_pixels: int):
    """PIL's exceptions about a file -> `UnreadableImage` with a one-line reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except FileNotFoundError:
        raise UnreadableImage(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"{name}: not an image file") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImage(
            f"{name}: over the limit of {max_pixels} pixels ({error})", too_large=True
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(f"{name}: {error}") from None


def decode_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "image"):
    """An image file's bytes -> a BGR uint8 array, EXIF orientation applied; the
    pixel count is checked from the header before anything is decoded.

    A photo is decoded once, into the array returned: an 8-bit JPEG or PNG (what
    phones and browsers send) by OpenCV, straight to BGR, turned by its EXIF
    orientation as PIL turns it. Anything else goes through PIL, which makes three
    intermediate copies (144 MB each at 48 MP).

    Raises:
        UnreadableImage: empty, truncated, not an image, or too many pixels.
    """
    import io

    import numpy as np
    from PIL import Image

    if not data:
        raise UnreadableImage(f"{name}: empty file")
    with _image_errors(name, max_pixels), Image.open(io.BytesIO(data)) as opened:
        _check_pixels(opened, name, max_pixels)
        if not _opencv_decodes_as_pil(opened):
            return _pil_to_bgr(_decode(opened, name, max_pixels))
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is not None:
        return bgr
    return decode_image_bytes_with_pil(data, max_pixels, name)  # truncated...: PIL says why


def decode_image_bytes_with_pil(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "image"):
    """`decode_image_bytes` through PIL alone: the reference the OpenCV path matches."""
    import io

    from PIL import Image

    with _image_errors(name, max_pixels), Image.open(io.BytesIO(data)) as opened:
        return _pil_to_bgr(_decode(opened, name, max_pixels))


def _pil_to_bgr(rgb):
    import numpy as np

    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _opencv_decodes_as_pil(opened) -> bool:
    """Whether OpenCV decodes this file to what PIL would: an 8-bit RGB or grayscale
    JPEG (OpenCV applies the EXIF orientation of JPEGs), or such a PNG without an
    orientation to apply."""
    if opened.mode not in ("RGB", "L"):
        return False
    return opened.format == "JPEG" or (opened.format == "PNG" and _orientation(opened) == 1)


def load_image(image: ImageInput):
    """Any supported input -> a BGR uint8 array (H, W, 3), EXIF orientation applied.

    Raises:
        UnreadableImage: missing, truncated, empty or not an image.
    """
    import numpy as np
    from PIL import Image, ImageOps

    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.size == 0:
            raise UnreadableImage(f"array of shape {image.shape} is not an HxWx3 BGR image")
        if image.dtype != np.uint8:
            # a cast would make a [0, 1] float image black and wrap a uint16 one
            raise UnreadableImage(
                f"array of dtype {image.dtype}: pass 8-bit BGR pixels (uint8 0..255), e.g. "
                "(image * 255).round().astype(np.uint8) for floats in [0, 1]"
            )
        return np.ascontiguousarray(image[:, :, :3])
    if isinstance(image, (str, Path)):
        with _image_errors(str(image), MAX_PIXELS), Image.open(image) as opened:
            rgb = _decode(opened, str(image), MAX_PIXELS)
    elif hasattr(image, "convert"):  # a PIL image
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    else:
        raise UnreadableImage(f"unsupported image input of type {type(image).__name__}")
    return _pil_to_bgr(rgb)
