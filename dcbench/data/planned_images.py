"""The worker side of the DALI input pipeline: file bytes + dcbench-drawn crops per image.

`PlannedImages` wraps a dcbench image dataset (`.samples` = [(path, label)], `.transform` =
a v2 pipeline that `crop_plan.plan_transform` can express). An item is, in the DataLoader
worker that the PIL path would have used:

- `Encoded(bytes, draws)` for a JPEG that DALI decodes exactly as PIL does (`sniff_jpeg`:
  8-bit baseline/extended/progressive, 1 or 3 components, ends with EOI, only markers
  libjpeg accepts after the first scan, EXIF orientation 1-8, within the pixel budget and
  density limit of `data.decode`); its crops are drawn
  from torch's global RNG by the plan, as the PIL transform would draw them;
- otherwise the wrapped dataset's own item (PIL decode + the same transform: the same
  draws, the same tensor), or `None` for a file PIL cannot decode (counted as bad).

So the random numbers are consumed exactly as on the PIL path, image after image (a file
PIL skips draws nothing on both paths), whatever the number of workers: each worker's
global RNG is seeded by the DataLoader as on the PIL path. `seed_item` reproduces datasets
that reseed the RNG per item (the VOC fine-tunes' `SeededView`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dcbench.data.crop_plan import CropPlan, Draws, Unexpressible
from dcbench.data.decode import MAX_PIXELS, MAX_PIXELS_PER_BYTE
from dcbench.data.loader import _stack_labels

_SOF_OK = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive (Huffman)
_EXIF_ORIENTATION = 0x0112


class Encoded(NamedTuple):
    """A JPEG for DALI: its bytes and the crops dcbench drew for it."""

    data: np.ndarray
    draws: Draws


def _sof(data: bytes) -> tuple[int, int, int] | None:
    """(SOF marker, sample precision, components) of a JPEG, None when it does not parse."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 10 > len(data):
                return None
            return marker, data[pos + 4], data[pos + 9]
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


_SEGMENTS = {0xC4, 0xDB, 0xDA, 0xDD, 0xDC, 0xFE, *range(0xE0, 0xF0)}  # length-prefixed
_NOT_MARKERS = np.array([0x00, 0xFF, *range(0xD0, 0xD8)], dtype=np.uint8)  # stuffing, fill, RSTn


def scan_markers_ok(data: bytes) -> bool:
    """True when every marker after the first scan is one libjpeg accepts there (tables,
    another scan, restart, APPn/COM, EOI). An unknown or misplaced marker inside the scan
    data is an error for PIL (the file is skipped) but DALI may decode it: such files take
    the PIL path."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ff = np.flatnonzero(arr[:-1] == 0xFF)
    markers = ff[~np.isin(arr[ff + 1], _NOT_MARKERS)]
    sos = int(np.searchsorted(markers, 0))
    while sos < len(markers) and arr[markers[sos] + 1] != 0xDA:
        sos += 1
    pos = int(markers[sos]) if sos < len(markers) else len(arr)
    while True:
        i = int(np.searchsorted(markers, pos))
        if i >= len(markers):
            return False  # no EOI
        at = int(markers[i])
        marker = int(arr[at + 1])
        if marker == 0xD9:
            return True
        if marker not in _SEGMENTS or at + 4 > len(arr):
            return False
        pos = at + 2 + int.from_bytes(data[at + 2:at + 4], "big")  # skip the segment


def sniff_jpeg(data: bytes) -> tuple[int, int] | None:
    """(height, width) after EXIF orientation of a JPEG that DALI decodes as PIL does, or
    None: anything else (other formats, CMYK/YCCK, 12-bit, lossless/arithmetic, truncated,
    bad markers in the scan data, pixel bombs, odd orientation tags) takes the PIL path,
    which decides it exactly."""
    if data[:3] != b"\xff\xd8\xff" or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None
    sof = _sof(data[:65536])
    if sof is None or sof[0] not in _SOF_OK or sof[1] != 8 or sof[2] not in (1, 3):
        return None
    if not scan_markers_ok(data):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                    return None
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # any header PIL refuses: the PIL path reports it
        return None
    pixels = width * height
    if not (0 < pixels <= MAX_PIXELS and pixels <= MAX_PIXELS_PER_BYTE * len(data)):
        return None
    if orientation not in range(1, 9):
        return None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def read_jpeg(path: str) -> tuple[bytes, tuple[int, int] | None]:
    """A file's bytes (empty when unreadable) and, for a JPEG DALI can take, its oriented
    (height, width) (`sniff_jpeg`; None: the item takes the PIL path)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        data = b""
    return data, sniff_jpeg(data) if data else None


@contextmanager
def seeded(seed_item: Callable[[int], int] | None, index: int) -> Iterator[None]:
    """torch's CPU RNG seeded for one item (restored afterwards), as `SeededView` does."""
    if seed_item is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed_item(index))
        yield


class PlannedImages(Dataset):
    """Items `(Encoded | tensor | None, label, index)` of `base` (see the module docstring)."""

    def __init__(self, base: Any, plan: CropPlan,
                 seed_item: Callable[[int], int] | None = None) -> None:
        self.base = base
        self.plan = plan
        self.seed_item = seed_item
        self.samples: list[tuple[str, Any]] = list(base.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def draw(self, index: int, height: int, width: int) -> Any:
        """Item `index`'s crops: the plan's draw (datasets with per-item geometry, such as
        retrieval's query boxes, override this; `data.item_plans`)."""
        return self.plan.draw(height, width)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        path, label = self.samples[index]
        data, shape = read_jpeg(path)
        with seeded(self.seed_item, index):
            if shape is not None:
                state = torch.get_rng_state()
                try:
                    draws = self.draw(index, *shape)
                    return Encoded(np.frombuffer(data, dtype=np.uint8), draws), label, index
                except Unexpressible:  # e.g. a crop larger than this image: PIL pads it
                    torch.set_rng_state(state)
            return self.base[index]


class PlannedBatch(NamedTuple):
    """A collated batch: per good item an `Encoded` or a finished tensor, their labels and
    dataset indices, and the indices PIL could not decode."""

    items: list[Encoded | torch.Tensor]
    labels: torch.Tensor | list[Any]
    indices: torch.Tensor
    bad: list[int]


def collate_planned(items: Sequence[tuple[Any, Any, int]]) -> PlannedBatch:
    """Keep the items as they are (bytes travel as numpy arrays), drop the undecodable."""
    good = [item for item in items if item[0] is not None]
    return PlannedBatch([item[0] for item in good],
                        _stack_labels([item[1] for item in good]) if good
                        else torch.empty(0, dtype=torch.int64),
                        torch.as_tensor([int(item[2]) for item in good], dtype=torch.int64),
                        [int(item[2]) for item in items if item[0] is None])


__all__ = ["Encoded", "PlannedBatch", "PlannedImages", "collate_planned", "read_jpeg", "seeded",
           "sniff_jpeg"]
