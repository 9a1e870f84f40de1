"""EXIF orientation for decoders that ignore it (issue 27): nvjpeg, torchvision's GPU path.

A camera stores a portrait photo as landscape pixels plus an EXIF `Orientation` tag (1-8);
PIL's path applies it (`ImageOps.exif_transpose` in `data.decode`), torchvision's device
decoder does not, so a rotated JPEG came out 200x100 there and 100x200 through PIL.
`jpeg_orientation` reads the tag from the file's bytes (the APP1 `Exif` segment's first IFD,
either byte order; 1 when absent or unreadable), cheap enough for the DataLoader workers;
`orient` applies it to a decoded (C, H, W) tensor (flips and a transpose), exactly
`exif_transpose`'s mapping. XMP-only orientation (no EXIF tag) is not read here.
"""

from __future__ import annotations

import torch

_TAG_ORIENTATION = 0x0112
_SHORT = 3


def _exif_orientation(tiff: bytes) -> int:
    """The Orientation of IFD0 of a TIFF-structured EXIF block, 1 when not there."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)  # type: ignore[arg-type]
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd : ifd + 2], order)  # type: ignore[arg-type]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            return 1
        tag = int.from_bytes(tiff[entry : entry + 2], order)  # type: ignore[arg-type]
        if tag != _TAG_ORIENTATION:
            continue
        kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)  # type: ignore[arg-type]
        value = int.from_bytes(tiff[entry + 8 : entry + 10], order)  # type: ignore[arg-type]
        return value if kind == _SHORT and 1 <= value <= 8 else 1
    return 1


def jpeg_orientation(data: bytes) -> int:
    """The EXIF Orientation (1-8) of a JPEG's bytes; 1 (as stored) when there is none."""
    if data[:2] != b"\xff\xd8":
        return 1
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more headers
            return 1
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return _exif_orientation(data[pos + 10 : pos + 2 + length])
        pos += 2 + length
    return 1


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """`image` (..., H, W) as displayed for EXIF `orientation` (PIL's exif_transpose)."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return image.transpose(-2, -1).flip(-1)  # 90 degrees clockwise
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return image.transpose(-2, -1).flip(-2)  # 90 degrees counter-clockwise
    return image


__all__ = ["jpeg_orientation", "orient"]
