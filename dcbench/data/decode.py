"""Robust image decoding: every file either becomes an RGB `PIL.Image` or a named problem.

Real datasets hold zero-byte files, truncated JPEGs, CMYK scans, 16-bit PNGs, palette
images with transparency and the odd 20000x20000 panorama. A training run over a million
images must not die on one of them, and it must not silently change PIL's process-wide
settings either. So:

- truncated files are bad files (skipped and counted), unlike the official DeepCluster code
  which sets `ImageFile.LOAD_TRUNCATED_IMAGES` globally and trains on grey tails; with
  `allow_truncated` they are re-read with the flag scoped, under a lock, to that one retry;
- images over `max_pixels` are decoded at reduced scale with JPEG `draft` (cheap: the
  decoder skips DCT coefficients; the cap holds for the size `draft` actually gives) or,
  for other formats, skipped with a clear reason; a header that promises far more pixels
  than the file's bytes can hold is refused before decoding;
- EXIF orientation is applied (`ImageOps.exif_transpose`), as torchvision's readers do;
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
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
MAX_PIXELS_PER_BYTE: int = 10_000
"""A header promising more pixels per byte of file than this (above `_DENSITY_FLOOR` pixels)
is a truncated file or a decompression bomb: refused before any pixel is decoded. Real
photos hold well under 100 pixels per byte; a flat-colour PNG about 1,000 (deflate's limit)."""
_DENSITY_FLOOR = 4_000_000
MAX_DECODE_BYTES: int = 8 * MAX_PIXELS
"""Memory budget of one decode, counted from the header before any pixel is decoded: pixels x
the bytes per pixel of decoding that mode and converting it to RGB (`decode_cost`). An 8-bit
RGB image of `MAX_PIXELS` fits exactly; a 7900x7900 16-bit PNG (1.4 GB of work) does not."""
_RGB_OUT = 4  # PIL keeps an RGB pixel in 4 bytes
# bytes per pixel of PIL's decoded buffer, by mode (1-band 8-bit modes take 1, others 4)
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_WIDE_WORK = 16  # `to_rgb` of I/F modes: a float64 copy plus one float64 temporary
_DRAFT_SCALES = (2, 4, 8)  # the reductions libjpeg can decode directly

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


def decode_cost(mode: str) -> int:
    """Bytes of memory per pixel to decode an image of PIL `mode` and convert it to RGB."""
    wide = mode.startswith("I") or mode == "F"
    return _DECODED_BYTES.get(mode, 4) + (_WIDE_WORK if wide else 0) + _RGB_OUT


def _header_problem(img: Image.Image, n_bytes: int, max_pixels: int) -> str | None:
    """Why the header alone rules the file out (None when it may be decoded)."""
    width, height = img.size
    pixels = width * height
    if pixels > _DENSITY_FLOOR and pixels > MAX_PIXELS_PER_BYTE * n_bytes:
        return (f"implausible header ({width}x{height} in {n_bytes} bytes): truncated file or "
                "decompression bomb")
    cost = pixels * decode_cost(img.mode)
    if cost > MAX_DECODE_BYTES and img.format != "JPEG":  # JPEG: `draft` reduces it below
        return (f"too large to decode ({width}x{height} {img.mode} {img.format}: "
                f"{cost / 2**20:.0f} MiB of work, over the {MAX_DECODE_BYTES / 2**20:.0f} MiB "
                "budget)")
    if pixels > max_pixels:
        if img.format != "JPEG":
            return (f"too large ({width}x{height} {img.format}, over {max_pixels} pixels; "
                    "only JPEG can be downscaled)")
        if pixels > max_pixels * _DRAFT_SCALES[-1] ** 2:
            return (f"too large ({width}x{height} JPEG: over {max_pixels} pixels even at "
                    f"1/{_DRAFT_SCALES[-1]} scale)")
    return None


def _draft_to_cap(img: Image.Image, max_pixels: int) -> None:
    """Ask libjpeg for the least reduction (1/2, 1/4, 1/8) that fits under `max_pixels`.

    `draft` picks the smallest reduction whose result is at least the requested size, so the
    request is the exact reduced size (a proportional request would round up past the cap).
    """
    width, height = img.size
    for factor in _DRAFT_SCALES:
        size = (-(-width // factor), -(-height // factor))
        if size[0] * size[1] <= max_pixels:
            img.draft("RGB", size)
            return


def _load(path: Path, max_pixels: int, *, truncated: bool, unlimited: bool) -> Decoded:
    n_bytes = path.stat().st_size
    with _relaxed_pil(truncated=truncated, unlimited=unlimited), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            problem = _header_problem(img, n_bytes, max_pixels)
            if problem:
                return Decoded(None, problem)
            if img.size[0] * img.size[1] > max_pixels:
                _draft_to_cap(img, max_pixels)
            width, height = img.size  # what the decoder will produce (after draft)
            if width * height > max_pixels:
                return Decoded(None, f"too large ({width}x{height} after draft, over "
                                     f"{max_pixels} pixels)")
            img.load()
            return Decoded(to_rgb(ImageOps.exif_transpose(img)), partial=truncated)


def decode_image(
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, allow_truncated: bool = False
) -> Decoded:
    """Decode `path` to RGB (EXIF orientation applied), or say why it cannot be decoded.

    Never raises for bad files. A truncated file is a bad file unless `allow_truncated`
    (`dcbench data check` uses it to tell how much of such a file survives).
    """
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
    path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, allow_truncated: bool = False
) -> Image.Image | None:
    """Open `path` as an RGB PIL image, or return `None` if it cannot be decoded."""
    return decode_image(path, max_pixels=max_pixels, allow_truncated=allow_truncated).image
