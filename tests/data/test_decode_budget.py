"""One pixel-and-bytes budget for every format, read from the header before decoding
(issue 19): files that are small on disk and plausible by pixel count but cost a gigabyte
to decode and convert are refused; ordinary 16-bit and 32-bit images still decode.

The files are written by hand here (PNG chunks with a streamed zlib body, a TIFF whose
IFD is patched), so they stay a few hundred KB on disk.
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcbench.data.decode import MAX_DECODE_BYTES, decode_image


def gray16_png(path: Path, width: int, height: int) -> Path:
    """A valid, all-black 16-bit greyscale PNG, compressed row by row (never in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + 2 * width)  # filter byte 0 + the row's 16-bit samples
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def int32_tiff_claiming(path: Path, width: int, height: int, pad: int) -> Path:
    """A small int32 TIFF whose width/height tags are rewritten to `width` x `height`,
    padded with `pad` bytes (a file of plausible size for its header)."""
    Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8), mode="I").save(path)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength (SHORT or LONG)
            value = width if tag == 256 else height
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, value)
    path.write_bytes(bytes(data) + bytes(pad))
    return path


def test_16bit_png_of_7900x7900_is_refused_before_decoding(tmp_path: Path) -> None:
    path = gray16_png(tmp_path / "wide.png", 7900, 7900)
    assert path.stat().st_size < 300_000  # small on disk, 62 Mpx (under the pixel cap)
    with Image.open(path) as img:  # what the header says, read by PIL
        assert (img.size, img.mode) == ((7900, 7900), "I;16")
    # a plain count of the work: 2 bytes/px decoded + float64 conversion >> the budget
    assert MAX_DECODE_BYTES < 7900 * 7900 * (2 + 8)
    t0 = time.perf_counter()
    result = decode_image(path)
    assert result.image is None and "too large to decode" in result.problem, result.problem
    assert time.perf_counter() - t0 < 0.5  # refused from the header, nothing decoded


def test_int32_tiff_of_a_gigabyte_is_refused_before_decoding(tmp_path: Path) -> None:
    path = int32_tiff_claiming(tmp_path / "deep.tif", 8000, 8000, pad=240_000)
    with Image.open(path) as img:
        assert img.size == (8000, 8000) and img.mode.startswith("I")
    t0 = time.perf_counter()
    result = decode_image(path)
    assert result.image is None and "too large to decode" in result.problem, result.problem
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("size", [(64, 48), (1024, 768)])
def test_ordinary_16bit_png_still_decodes(tmp_path: Path, size: tuple[int, int]) -> None:
    result = decode_image(gray16_png(tmp_path / "ok.png", *size))
    assert result.problem is None and result.image.size == size
    assert np.asarray(result.image).max() == 0  # all black, as written


def test_ordinary_int32_tiff_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "ok.tif"
    Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8), mode="I").save(path)
    result = decode_image(path)
    assert result.problem is None and result.image.size == (8, 8)
