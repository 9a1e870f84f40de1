"""EXIF orientation (issue 27): the tag read from JPEG bytes and applied to a decoded tensor
gives what `PIL.ImageOps.exif_transpose` gives, for every Orientation value 1-8 and both
TIFF byte orders; `open_image` (the PIL path) honours all eight too."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from dcbench.data.decode import open_image
from dcbench.data.exif import jpeg_orientation, orient

_DISPLAYED = {1: (24, 40), 2: (24, 40), 3: (24, 40), 4: (24, 40),  # (height, width) shown
              5: (40, 24), 6: (40, 24), 7: (40, 24), 8: (40, 24)}


def asymmetric(h: int = 24, w: int = 40) -> np.ndarray:
    """An image no flip or rotation maps onto itself (smooth: JPEG keeps it recognisable)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6, y * 10, (x * y) % 97 + 50], -1).clip(0, 255).astype(np.uint8)


def exif_block(orientation: int, big_endian: bool = False) -> bytes:
    """A minimal EXIF block (IFD0 with a Make tag then Orientation), written by hand."""
    e = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    make = struct.pack(e + "HHI4s", 0x010F, 2, 4, b"dcb\x00")
    tag = struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"Exif\x00\x00" + head + struct.pack(e + "H", 2) + make + tag + struct.pack(e + "I", 0)


def jpeg_with(orientation: int, *, big_endian: bool = False, pil_exif: bool = True) -> bytes:
    buf = io.BytesIO()
    if pil_exif:  # PIL's own writer (little-endian)
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(asymmetric()).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
        return buf.getvalue()
    Image.fromarray(asymmetric()).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    block = exif_block(orientation, big_endian)
    app1 = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    return data[:2] + app1 + data[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("writer", ["pil", "little", "big"])
def test_orient_equals_pil_exif_transpose(orientation: int, writer: str) -> None:
    data = jpeg_with(orientation, big_endian=writer == "big", pil_exif=writer == "pil")
    assert jpeg_orientation(data) == orientation
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        stored = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
        shown = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    got = orient(stored, orientation)
    assert tuple(got.shape[-2:]) == _DISPLAYED[orientation]
    assert torch.equal(got.permute(1, 2, 0), torch.from_numpy(shown.copy()))


def test_no_or_broken_exif_reads_as_one() -> None:
    plain = io.BytesIO()
    Image.fromarray(asymmetric()).save(plain, "JPEG")
    assert jpeg_orientation(plain.getvalue()) == 1
    assert jpeg_orientation(b"") == 1 and jpeg_orientation(b"\x89PNG\r\n") == 1
    data = jpeg_with(6)
    start = data.index(b"Exif\x00\x00")
    assert jpeg_orientation(data[: start + 12]) == 1  # cut inside the EXIF block
    bad_value = jpeg_with(6, pil_exif=False).replace(struct.pack("<HHIH", 0x0112, 3, 1, 6),
                                                     struct.pack("<HHIH", 0x0112, 3, 1, 9))
    assert jpeg_orientation(bad_value) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_open_image_applies_every_orientation(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(jpeg_with(orientation))
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    got = open_image(path)
    assert got is not None and np.array_equal(np.asarray(got), expected)
