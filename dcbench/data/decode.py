"""Robust image decoding: every file either becomes an RGB `PIL.Image` or a named problem.

Real datasets hold zero-byte files, truncated JPEGs, CMYK scans, 16-bit PNGs, palette
images with transparency and the odd 20000x20000 panorama. A training run over a million
images must not die on one of them, and it must not silently change PIL's process-wide
settings either. So:

- truncated files are re-read with `ImageFile.LOAD_TRUNCATED_IMAGES` only when the header
  decoded and the pixel stream ran short (the official DeepCluster code sets the flag
  globally; here it is scoped, under a lock, to that one retry);
- images over `max_pixels` are decoded at reduced scale with JPEG `draft` (cheap: the
  decoder skips DCT coefficients) or, for other formats, skipped with a clear reason;
- every mode is mapped to 8-bit RGB explicitly (16-bit and float images are rescaled,
  transparency is composited on white).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMG_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".pgm",
    ".pbm",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)
MAX_PIXELS: int = 64_000_000
"""Images with more pixels are downscaled with JPEG draft mode, or skipped (other formats)."""

_PIL_FLAGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Decoded:
    """The outcome of decoding one file: an RGB image, or `None` plus the reason."""

    image: Image.Image | None
    problem: str | None = None
    partial: bool = False  # True when a truncated file was decoded with its tail missing


def is_image_file(name: str) -> bool:
    """True for names with a known image extension (case-insensitive), hidden files excluded."""
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


@contextmanager
def _relaxed_pil(*, truncated: bool = False, unlimited: bool = False) -> Iterator[None]:
    """Temporarily relax PIL's global safety flags, serialised by a lock (plain loads,
    the common case, take no lock so threaded decoding stays parallel)."""
    if not (truncated or unlimited):
        yield
        return
    with _PIL_FLAGS_LOCK:
        old_trunc, old_max = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
        try:
            if truncated:
                ImageFile.LOAD_TRUNCATED_IMAGES = True
            if unlimited:
                Image.MAX_IMAGE_PIXELS = None
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = old_trunc, old_max


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without clipping 16-bit data or keeping alpha."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 0..65535 -> 0..255
        else:  # 32-bit int or float: no fixed range, stretch min..max
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK (PIL undoes Adobe inversion), YCbCr, LAB, HSV


def _is_jpeg(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(3) == b"\xff\xd8\xff"


def _load(path: Path, max_pixels: int, *, truncated: bool, unlimited: bool) -> Decoded:
    with _relaxed_pil(truncated=truncated, unlimited=unlimited), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                if img.format != "JPEG":
                    return Decoded(
                        None,
                        f"too large ({width}x{height} {img.format}, over "
                        f"{max_pixels} pixels; only JPEG can be downscaled)",
                    )
                scale = (max_pixels / (width * height)) ** 0.5
                img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            img.load()
            return Decoded(to_rgb(img), partial=truncated)


def decode_image(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, allow_truncated: bool = True
) -> Decoded:
    """Decode `path` to RGB, or say why it cannot be decoded. Never raises for bad files."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return Decoded(None, "empty file (0 bytes)")
    except OSError as err:
        return Decoded(None, f"cannot read: {err.strerror or err}")
    unlimited = False
    for _ in range(3):  # at most: plain, then unlimited (huge JPEG), then truncated
        try:
            return _load(path, max_pixels, truncated=False, unlimited=unlimited)
        except UnidentifiedImageError:
            return Decoded(None, "not a readable image (unknown format or truncated header)")
        except Image.DecompressionBombError as err:
            if unlimited or not _is_jpeg(path):
                return Decoded(None, f"too large (decompression bomb guard): {err}")
            unlimited = True  # JPEG: reopen without the guard, `draft` keeps memory bounded
        except OSError as err:
            if "image file is truncated" not in str(err):
                return Decoded(None, f"corrupt: {err}")
            if not allow_truncated:
                return Decoded(None, f"truncated: {err}")
            try:  # header fine, pixel stream short: decode what is there
                return _load(path, max_pixels, truncated=True, unlimited=unlimited)
            except Exception as err2:  # any decoder failure here means "skip"
                return Decoded(None, f"truncated and undecodable: {err2}")
        except (ValueError, SyntaxError, MemoryError, EOFError) as err:
            return Decoded(None, f"corrupt: {type(err).__name__}: {err}")
    return Decoded(None, "undecodable")


def open_image(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, allow_truncated: bool = True
) -> Image.Image | None:
    """Open `path` as an RGB PIL image, or return `None` if it cannot be decoded."""
    return decode_image(path, max_pixels=max_pixels, allow_truncated=allow_truncated).image
