"""Generated JPEG folders for the input-pipeline tests and benchmark (no download needed).

`make_jpeg_folder` writes `out/CLASS/NNNN.JPEG` with a seeded mix of image sizes: `imagenet`
follows the shape of ImageNet's train set (most images about 500x375 or 375x500 and other
aspect ratios around them, a tail of small ones and of multi-megapixel photos), `small`
the same aspect mix at 40-160 px for fast tests; a share of the files is progressive, a
share CMYK, a share carries an EXIF orientation tag (2-8). `add_bad_files` adds the bad
files every input path must skip or decode exactly as PIL does: 0-byte, truncated,
corrupt, a PNG named .jpg, a 16-bit PNG, a pixel bomb header, a grayscale JPEG.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

_EXIF_ORIENTATION = 0x0112


def _size(rng: np.random.Generator, sizes: str) -> tuple[int, int]:
    """(width, height) drawn from the named mix."""
    r = rng.random()
    if r < 0.55:  # the common 500 x 375 / 333 / 281 landscape and its portrait
        w, h = 500, int(rng.choice([375, 333, 281, 400, 350]))
        if rng.random() < 0.3:
            w, h = h, w
    elif r < 0.85:  # any aspect 1:2 .. 2:1 around a 250-500 short side
        short = int(rng.integers(250, 501))
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        w, h = (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
    elif r < 0.95:  # small thumbnails
        w, h = int(rng.integers(80, 250)), int(rng.integers(80, 250))
    else:  # large photos
        w, h = int(rng.integers(1200, 2600)), int(rng.integers(900, 1900))
    if sizes == "small":
        scale = 160 / max(w, h)
        w, h = max(40, round(w * scale)), max(40, round(h * scale))
    return w, h


def _pixels(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour field with edges and a little noise (JPEG-realistic content)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = rng.uniform(0.005, 0.05, 2)
    phase = rng.uniform(0, 6.28, 3)
    base = [127 + 100 * np.sin(fx * xx * (c + 1) + fy * yy + phase[c]) for c in range(3)]
    arr = np.stack(base, -1)
    cx, cy, rad = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 200)
    arr[(xx - cx) ** 2 + (yy - cy) ** 2 < rad ** 2] = rng.uniform(0, 255, 3)
    arr += rng.normal(0, 6, arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def jpeg_bytes(arr: np.ndarray, *, progressive: bool = False, cmyk: bool = False,
               orientation: int | None = None, quality: int = 90) -> bytes:
    """Encode an (H, W, 3) uint8 array as JPEG (optionally progressive, CMYK, EXIF-tagged)."""
    img = Image.fromarray(arr)
    if cmyk:
        img = img.convert("CMYK")
    kwargs: dict = {"quality": quality, "progressive": progressive}
    if orientation is not None:
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION] = orientation
        kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def make_jpeg_folder(out: str | Path, *, n_classes: int = 4, per_class: int = 8,
                     sizes: str = "small", seed: int = 0, progressive: float = 0.2,
                     cmyk: float = 0.05, rotated: float = 0.1) -> Path:
    """Write `out/cNN/NNNN.JPEG` (labelled ImageFolder layout); returns `out`."""
    if sizes not in ("small", "imagenet"):
        raise ValueError("sizes must be 'small' or 'imagenet'")
    out = Path(out)
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        folder = out / f"c{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = _size(rng, sizes)
            kind = rng.random()
            data = jpeg_bytes(
                _pixels(rng, w, h), progressive=kind < progressive,
                cmyk=progressive <= kind < progressive + cmyk,
                orientation=int(rng.integers(2, 9)) if rng.random() < rotated else None)
            (folder / f"{i:04d}.JPEG").write_bytes(data)
    return out


def add_bad_files(folder: str | Path, seed: int = 0) -> list[str]:
    """Bad and awkward files in `folder` (names returned). PIL decodes the grayscale JPEG,
    the CMYK JPEG and the PNG named .jpg; it skips the others."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    good = jpeg_bytes(_pixels(rng, 120, 90))
    gray = io.BytesIO()
    Image.fromarray(_pixels(rng, 90, 70)[..., 0]).save(gray, "JPEG")
    png = io.BytesIO()
    Image.fromarray(_pixels(rng, 64, 48)).save(png, "PNG")
    png16 = io.BytesIO()
    Image.fromarray((rng.random((40, 50)) * 65535).astype(np.uint16)).save(png16, "PNG")
    bomb = bytearray(good)
    sof = bomb.find(b"\xff\xc0")
    bomb[sof + 5:sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    corrupt = bytearray(good)
    corrupt[2:40] = b"\x00" * 38  # markers destroyed
    files = {"empty.jpg": b"", "truncated.jpg": good[: len(good) // 2],
             "corrupt.jpg": bytes(corrupt), "bomb.jpg": bytes(bomb),
             "gray.jpg": gray.getvalue(), "png_named.jpg": png.getvalue(),
             "deep16.png": png16.getvalue(),
             "cmyk.jpg": jpeg_bytes(_pixels(rng, 80, 60), cmyk=True),
             "rotated.jpg": jpeg_bytes(_pixels(rng, 100, 60), orientation=6)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(files)


__all__ = ["add_bad_files", "jpeg_bytes", "make_jpeg_folder"]
