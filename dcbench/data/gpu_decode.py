"""An input pipeline that keeps a GPU fed: workers read bytes, the GPU decodes and augments.

PIL decoding in 16 workers gave 2,304 img/s on the H200 machine, nvjpeg through
`torchvision.io.decode_jpeg(list, device="cuda")` 7,703 img/s (issue 15). Here:

- `EncodedImages` wraps an image dataset (anything with `.samples` = [(path, label)]): an
  item is the file's bytes as a uint8 tensor (None for an empty or unreadable file), so
  DataLoader workers do no decoding;
- `BatchDecoder` decodes a batch of baseline/progressive 8-bit 1- or 3-channel JPEGs at once
  on its device; everything else goes through the CPU decoder (`decode.decode_image`, the
  path of today's datasets): non-JPEG formats, CMYK/YCCK JPEGs, files without an end-of-image
  marker (truncated: decoded partially there, as today), over-large ones (downscaled with
  draft there), and any JPEG the device decoder rejects. A file the CPU decoder cannot read
  is dropped and reported in `Batch.bad`, exactly as the CPU pipeline does;
- the crops run on the device with transforms v2 functionals: Resize(short side) +
  CenterCrop for the clustering pass, RandomResizedCrop (torchvision's sampling rule, from a
  seeded generator) + horizontal flip for the training pass; then float32 and Normalize.

On CPU the default pipeline stays the PIL one; this one runs on CPU too (for tests).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as TF

from dcbench.data.decode import MAX_PIXELS, decode_image
from dcbench.data.loader import Batch

_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman (what nvjpeg decodes)


def resolve_pipeline(name: str, device: torch.device) -> str:
    """`cpu` (PIL in workers) or `gpu` (this module) for `input_pipeline: auto|cpu|gpu`;
    auto = gpu on a CUDA device, cpu otherwise (`gpu` on a CPU device decodes there)."""
    if name == "auto":
        return "gpu" if device.type == "cuda" else "cpu"
    return name


class EncodedImages(Dataset):
    """Items `(uint8 bytes tensor | None, label, index)` of a dataset with `.samples`."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.samples: list[tuple[str, int]] = list(base.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> np.ndarray:
        """Labels as int64 (-1 for unlabelled images), like the wrapped dataset's."""
        return np.asarray([label for _, label in self.samples], dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int]:
        path, label = self.samples[index]
        try:
            data = read_file(path)
        except (OSError, RuntimeError):
            data = None
        return (data if data is not None and data.numel() else None), label, index


class EncodedBatch(NamedTuple):
    """Undecoded files of a batch: bytes, labels, dataset indices, the unreadable ones, and
    which files the device decoder may take (`device_decodable`, computed in the workers)."""

    data: list[torch.Tensor]
    labels: torch.Tensor
    indices: torch.Tensor
    bad: list[int]
    device_ok: list[bool]


def collate_bytes(items: Sequence[tuple[torch.Tensor | None, int, int]]) -> EncodedBatch:
    """Keep the byte tensors as a list; unreadable files go to `bad`. Runs in the DataLoader
    workers, so the header checks cost the main process nothing."""
    good = [item for item in items if item[0] is not None]
    data: list[torch.Tensor] = [item[0] for item in good]  # type: ignore[misc]
    return EncodedBatch(data,
                        torch.as_tensor([int(i[1]) for i in good], dtype=torch.int64),
                        torch.as_tensor([int(i[2]) for i in good], dtype=torch.int64),
                        [int(item[2]) for item in items if item[0] is None],
                        [device_decodable(d) for d in data])


def jpeg_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(SOF marker, components, height, width) of a JPEG, None when the header does not parse."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 10 > len(data):
                return None
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return marker, data[pos + 9], height, width
        pos += 2 + length
    return None


def device_decodable(data: torch.Tensor, max_pixels: int = MAX_PIXELS) -> bool:
    """True for a complete 8-bit baseline/progressive JPEG with 1 or 3 components and at most
    `max_pixels` pixels (anything else takes the CPU decoder, which handles it as today)."""
    raw = data.numpy().tobytes()
    header = jpeg_header(raw[:65536])
    if header is None:
        return False
    marker, components, height, width = header
    complete = raw.rstrip(b"\x00").endswith(b"\xff\xd9")
    return (marker in _SOF and components in (1, 3) and complete
            and 0 < height * width <= max_pixels)


def rrc_params(height: int, width: int, scale: tuple[float, float],
               ratio: tuple[float, float], generator: torch.Generator) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (top, left, h, w): torchvision's rule (10 tries of area and
    log-uniform aspect ratio, then a center crop clamped to the ratio range)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass
class BatchDecoder:
    """Decode + crop + normalise an `EncodedBatch` on `device` into a `Batch`.

    `mode="center"`: Resize(`resize`, short side) + CenterCrop(`size`); `mode="train"`:
    RandomResizedCrop(`size`, `scale`, `ratio`) + flip (p=0.5) drawn from `generator`.
    `fallbacks` counts the files that took the CPU decoder (for the benchmark and tests).
    """

    device: torch.device
    size: int
    mean: Sequence[float]
    std: Sequence[float]
    mode: str = "center"
    resize: int = 256
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    generator: torch.Generator | None = None
    fallbacks: int = 0

    def decode(self, batch: EncodedBatch, samples: Sequence[tuple[str, int]]
               ) -> tuple[list[torch.Tensor | None], list[int]]:
        """uint8 (3, H, W) images on the device (None where undecodable) and the bad ids."""
        images: list[torch.Tensor | None] = [None] * len(batch.data)
        fast = [i for i, ok in enumerate(batch.device_ok) if ok]
        if fast:
            decoded = self._device_decode([batch.data[i] for i in fast])
            for i, img in zip(fast, decoded, strict=True):
                images[i] = img
        bad = list(batch.bad)
        for i, img in enumerate(images):
            if img is not None:
                continue
            self.fallbacks += 1
            index = int(batch.indices[i])
            pil = decode_image(samples[index][0]).image
            if pil is None:
                bad.append(index)
                continue
            array = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy())
            images[i] = array.permute(2, 0, 1).to(self.device)
        return images, bad

    def _device_decode(self, data: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """One batched device decode; if it fails, one file at a time (None = rejected)."""
        dev = str(self.device)
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=dev))
        except RuntimeError:
            out: list[torch.Tensor | None] = []
            for d in data:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=dev))
                except RuntimeError:
                    out.append(None)
            return out

    def crop(self, img: torch.Tensor) -> torch.Tensor:
        """One uint8 image -> a (3, size, size) uint8 crop (center or random + flip)."""
        if self.mode == "center":
            img = TF.resize(img, [self.resize], antialias=True)
            return TF.center_crop(img, [self.size, self.size])
        g = self.generator or torch.Generator().manual_seed(0)
        self.generator = g
        top, left, h, w = rrc_params(img.shape[-2], img.shape[-1], self.scale, self.ratio, g)
        img = TF.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True)
        if self.flip and torch.rand(1, generator=g).item() < 0.5:
            img = TF.horizontal_flip(img)
        return img

    def __call__(self, batch: EncodedBatch, samples: Sequence[tuple[str, int]]) -> Batch:
        images, bad = self.decode(batch, samples)
        keep = [i for i, img in enumerate(images) if img is not None]
        if not keep:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.int64),
                         torch.empty(0, dtype=torch.int64), sorted(bad))
        stacked = torch.stack([self.crop(images[i]) for i in keep])  # type: ignore[arg-type]
        out = TF.normalize(TF.to_dtype(stacked, torch.float32, scale=True),
                           list(self.mean), list(self.std))
        idx = torch.as_tensor(keep)
        return Batch(out, batch.labels[idx], batch.indices[idx], sorted(bad))


class DecodingLoader:
    """Iterates a bytes DataLoader and yields decoded `Batch`es (the train/feature loops'
    contract: `.dataset` has `.samples`, `len()` is the number of batches)."""

    def __init__(self, dataset: Dataset, batch_size: int, decoder: BatchDecoder, *,
                 sampler: Sampler | None = None, workers: int = 0,
                 generator: torch.Generator | None = None) -> None:
        self.dataset = dataset
        self.decoder = decoder
        base = getattr(dataset, "dataset", dataset)  # a Subset's underlying dataset
        self.samples: list[tuple[str, int]] = list(base.samples)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                 num_workers=workers, collate_fn=collate_bytes,
                                 generator=generator, pin_memory=False)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for encoded in self.loader:
            yield self.decoder(encoded, self.samples)


__all__ = ["BatchDecoder", "DecodingLoader", "EncodedBatch", "EncodedImages", "collate_bytes",
           "device_decodable", "jpeg_header", "resolve_pipeline", "rrc_params"]
