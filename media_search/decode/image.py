"""Decode an image file to RGB pixels with Pillow.

EXIF orientation is applied; every Pillow mode (P, LA, CMYK, I;16, animated
GIF's first frame, ...) becomes 8-bit RGB, transparency composited on white.
A decompression-bomb guard checks the declared size before any pixel is
decoded. JPEGs much larger than the model input are decoded at a reduced
scale (``draft``), which is several times faster and does not change what the
model sees beyond resampling noise. ``prepare`` brings a picture to the image
model's input (``load_prepared``: a file, decoded and prepared).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embed.models import RESNET50
from ..errors import DecodeError, UnsupportedMediaError, reason
from . import refuse_empty

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MAX_PIXELS", "INPUT_SIZE", "open_image", "prepare", "load_prepared"]

#: The side of the square picture the image model takes (``embed.models.RESNET50``).
INPUT_SIZE = RESNET50.input_size

#: The largest image (width x height) we agree to decode: 12k x 12k.
MAX_PIXELS = 144_000_000


def open_image(path: str | Path, *, min_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an 8-bit RGB Pillow image, upright.

    ``min_side``: the caller needs at least this many pixels on the shorter
    side; a JPEG may then be decoded at a reduced scale (``draft``).
    """
    from PIL import Image, UnidentifiedImageError

    p = os.fspath(path)
    if os.path.isdir(p):
        raise UnsupportedMediaError(f"{p} is a directory, not an image: give an image file.", path=p)
    if _photo_formats(p):  # camera RAW: its embedded preview
        from .raw import raw_preview

        return _to_rgb(raw_preview(p, max_pixels=max_pixels))
    try:
        refuse_empty(p, os.path.getsize(p), "image")
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's warning between its 89 MP and 179 MP marks.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _open(p, min_side, max_pixels)
    except DecodeError:
        raise
    except UnidentifiedImageError as e:
        raise UnsupportedMediaError(f"{p} is not an image Pillow can read: give a JPEG, PNG, GIF, WebP, TIFF, BMP, HEIC or AVIF file.", path=p) from e
    except Image.DecompressionBombError as e:  # Pillow's own guard fires first past ~179 MP
        raise DecodeError(
            f"{p} declares more pixels than the {max_pixels // 1_000_000} megapixel limit: "
            "refusing to decode it (possible decompression bomb).",
            path=p,
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DecodeError(f"{p} is a damaged or truncated image ({reason(e)}): copy or export it again.", path=p) from e


def _photo_formats(path: str) -> bool:
    """Register HEIC/HEIF reading (pillow-heif; AVIF is Pillow's own); True when ``path`` is camera RAW."""
    global _heif_registered
    if not _heif_registered:
        _heif_registered = True
        try:
            from pillow_heif import register_heif_opener
        except ImportError:  # declared, but a HEIC then reads as unsupported rather than crashing
            pass
        else:
            register_heif_opener()
    from .raw import is_raw

    return is_raw(path)


_heif_registered = False

#: Modes ``Image.reduce`` averages correctly (not palette indices or 1-bit).
_REDUCIBLE = frozenset({"RGB", "RGBA", "RGBX", "L", "LA", "CMYK"})


def _open(p: str, min_side: int | None, max_pixels: int) -> Image.Image:
    from PIL import Image, ImageOps

    with Image.open(p) as im:
        w, h = im.size
        if w <= 0 or h <= 0 or w * h > max_pixels:
            raise DecodeError(
                f"{p} declares {w}x{h} pixels, more than the {max_pixels // 1_000_000} "
                "megapixel limit: refusing to decode it (possible decompression bomb).",
                path=p,
            )
        if min_side and im.format == "JPEG":
            # Pillow picks a scale of 1/2, 1/4 or 1/8 keeping both sides >= min_side.
            im.draft("RGB", (min_side, min_side))
        im.seek(0)
        im.load()
        small: Image.Image = im
        factor = min(im.width, im.height) // min_side if min_side and im.format != "JPEG" else 1
        if factor >= 2 and im.mode in _REDUCIBLE:
            # Other formats decode whole; shrink by a box average before anything else runs on it
            # (a 100 MP PNG panorama would otherwise be converted, transposed and searched at full size).
            small = im.reduce(factor)
            small.info = dict(im.info)
            if "exif" not in small.info:
                small.info["exif"] = im.getexif().tobytes()
        out = _to_rgb(ImageOps.exif_transpose(small))
        return out.copy() if out is im else out


def _to_rgb(im: Image.Image) -> Image.Image:
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype("uint8"), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def prepare(picture: Image.Image | np.ndarray) -> np.ndarray:
    """A picture (Pillow RGB image or HxWx3 uint8 array) as a 224x224x3 uint8 array."""
    from PIL import Image

    im = Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture
    if im.mode != "RGB":
        im = im.convert("RGB")
    if im.size != (INPUT_SIZE, INPUT_SIZE):
        im = im.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(im, dtype=np.uint8)


def load_prepared(path: str | Path) -> np.ndarray:
    """Decode an image file and prepare it for the model (the image decode stage)."""
    return prepare(open_image(path, min_side=INPUT_SIZE))
