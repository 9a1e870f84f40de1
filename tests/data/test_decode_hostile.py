"""Hostile files: header bombs, truncated streams, rotated photos (issue 14, item 2 and 5)."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dcbench.data.decode import decode_image


def _jpeg(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 frame size of a baseline JPEG (the classic tiny-file pixel bomb)."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def test_tiny_jpeg_claiming_60000x60000_is_refused_cheaply(tmp_path: Path) -> None:
    small = _jpeg(np.zeros((8, 8, 3), np.uint8))
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(claiming(small, 60000, 60000))
    assert bomb.stat().st_size < 1000
    t0 = time.perf_counter()
    result = decode_image(bomb)
    assert result.image is None and "implausible header" in result.problem
    assert time.perf_counter() - t0 < 0.5


def test_pixel_cap_holds_for_the_size_draft_produces(tmp_path: Path) -> None:
    # 1200x1000 with a cap of 200,000 px: a proportional draft request (~490x408) makes libjpeg
    # pick 1/2 (600x500 = 300,000 px, over the cap); the decoded size must respect the cap.
    rng = np.random.default_rng(0)
    path = tmp_path / "big.jpg"
    path.write_bytes(_jpeg(rng.integers(0, 256, (1000, 1200, 3), dtype=np.uint8)))
    img = decode_image(path, max_pixels=200_000).image
    assert img is not None and img.size[0] * img.size[1] <= 200_000
    assert img.size == (300, 250)
    over = decode_image(path, max_pixels=1000)  # even 1/8 (150x125) is over: refused
    assert over.image is None and "too large" in over.problem


def test_truncated_png_and_jpeg_are_bad(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    png = tmp_path / "cut.png"
    png.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    jpg = tmp_path / "cut.jpg"
    data = _jpeg(arr)
    jpg.write_bytes(data[: len(data) * 2 // 3])
    for path in (png, jpg):
        result = decode_image(path)
        assert result.image is None and result.problem, path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    img = decode_image(path).image
    assert img is not None and img.size == (20, 40)  # width and height swapped
    top = np.asarray(img)[:5].mean()
    assert top > 200  # the white left half is now on top
