"""An input pipeline that keeps a GPU fed: workers read bytes, the GPU decodes and augments.

PIL decoding in 16 workers gave 2,304 img/s on the H200 machine, nvjpeg through
`torchvision.io.decode_jpeg(list, device="cuda")` 7,703 img/s (issue 15). Here:

- `EncodedImages` wraps an image dataset (anything with `.samples` = [(path, label)]): an
  item is the file's bytes when it is a JPEG the device decodes, else the pixels the CPU
  decoder (`decode.decode_image`, the path of today's datasets) made of it right there, in
  the DataLoader workers, in parallel (issue 27): non-JPEG formats, CMYK/YCCK and
  progressive JPEGs (torchvision hands those to nvjpeg's hybrid decoder, whose Huffman
  stage runs on the host in the calling thread: one file after another in the producer),
  files without an
  end-of-image marker (truncated: bad, as today), over-large ones (downscaled with draft
  there). `collate_bytes` joins a batch into ONE uint8 tensor + offsets for the files and
  one for the pixels (issue 18: 256 small tensors per batch cost 3x more to ship between
  processes, and `torchvision.io.read_file`'s memory-mapped storages could not be shipped
  at all: the worker's feeder thread died and the main process waited forever), plus each
  JPEG's EXIF orientation (`data.exif`), read there from the bytes;
- `BatchDecoder` decodes the batch's JPEGs at once on its device and applies their EXIF
  orientation (nvjpeg ignores it; PIL's path applies it); a JPEG the device decoder still
  rejects is decoded by the CPU decoder in a small thread pool. A file the CPU decoder
  cannot read is dropped and reported in `Batch.bad`, exactly as the CPU pipeline does;
- the crops of a batch run in a few kernels and no device synchronisation, whatever the
  size mix (`data.gpu_crops`: one atlas, one `roi_align`): Resize(short side) +
  CenterCrop for the clustering pass, RandomResizedCrop (torchvision's sampling rule,
  vectorised, from a seeded generator) + horizontal flip for the training pass, all boxes
  resampled by `roi_align`; then Normalize;
- `DecodingLoader` runs decoding and cropping in a background thread (`data.prefetch`, a
  side CUDA stream on a GPU), so batch i+1 is prepared while step i trains; on CUDA the
  byte buffers are pinned and every copy is `non_blocking`.

On CPU the default pipeline stays the PIL one; this one runs on CPU too (for tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from dcbench.data.decode import MAX_PIXELS, decode_image
from dcbench.data.exif import jpeg_orientation, orient
from dcbench.data.gpu_crops import center_boxes, crop_batch, rrc_boxes
from dcbench.data.loader import Batch, DataLoader, loader_timeout
from dcbench.data.prefetch import Prefetcher

# baseline and extended Huffman: what nvjpeg's batched (hardware) decoder takes. Progressive
# JPEGs went through its hybrid decoder, whose Huffman stage runs on the host in the calling
# (producer) thread, one file after another: they take the CPU decoder in the workers.
_SOF = {0xC0, 0xC1}
_POOL_THREADS = 4


def resolve_pipeline(name: str, device: torch.device) -> str:
    """`cpu` (PIL in workers) or `gpu` (this module) for `input_pipeline: auto|cpu|gpu`;
    auto = gpu on a CUDA device, cpu otherwise (`gpu` on a CPU device decodes there)."""
    if name == "auto":
        return "gpu" if device.type == "cuda" else "cpu"
    return name


class EncodedItem(NamedTuple):
    """One file as a worker ships it: the bytes of a JPEG the device decodes (`data`), or
    the RGB pixels (H, W, 3 uint8) the CPU decoder made of anything else (`pixels`), or
    neither (unreadable, or undecodable: `tried_cpu` says whether the CPU decoder ran)."""

    data: bytes | None
    pixels: np.ndarray | None
    label: int
    index: int
    tried_cpu: bool = False


class EncodedImages(Dataset):
    """Items (`EncodedItem`) of a dataset with `.samples`: a JPEG the device decoder takes
    stays bytes (its EXIF orientation is applied after decoding); every other file (PNG,
    CMYK, progressive, truncated, over-large) is decoded right here by the CPU decoder
    (`decode.decode_image`, the PIL path's), so in DataLoader workers those decode in
    parallel processes instead of one by one in the producer thread (issue 27)."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.samples: list[tuple[str, int]] = list(base.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> np.ndarray:
        """Labels as int64 (-1 for unlabelled images), like the wrapped dataset's."""
        return np.asarray([label for _, label in self.samples], dtype=np.int64)

    def __getitem__(self, index: int) -> EncodedItem:
        path, label = self.samples[index]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        if not data:
            return EncodedItem(None, None, label, index)
        if device_decodable(data):
            return EncodedItem(data, None, label, index)
        image = decode_image(path).image
        pixels = None if image is None else np.asarray(image.convert("RGB"), dtype=np.uint8)
        return EncodedItem(None, pixels, label, index, tried_cpu=True)


class EncodedBatch(NamedTuple):
    """A batch as the workers ship it. Kept images in batch order: `labels`, `indices`,
    `device_ok` (True: the next device file, False: the next CPU-decoded image) and
    `orientation` (EXIF 1-8 of the device files; 1 for CPU-decoded ones, already applied).
    Device files: all bytes in one uint8 tensor (file i is `data[offsets[i]:offsets[i+1]]`);
    CPU-decoded images: all pixels in one uint8 tensor (`pixels`, image j of
    `shapes[j]` = (h, w) from `pixel_offsets[j]`, H x W x 3). `bad`: indices of files
    that cannot be used; `cpu_decoded`: how many files the CPU decoder took (bad ones too)."""

    data: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    bad: list[int]
    device_ok: torch.Tensor
    orientation: torch.Tensor
    pixels: torch.Tensor
    pixel_offsets: torch.Tensor
    shapes: torch.Tensor
    cpu_decoded: int = 0

    def files(self) -> list[torch.Tensor]:
        """One uint8 view per device file (no copy)."""
        bounds = self.offsets.tolist()
        return [self.data[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]

    def decoded(self, device: torch.device) -> list[torch.Tensor]:
        """The CPU-decoded images as uint8 (3, H, W) views of ONE copy of `pixels` on
        `device` (non-blocking from pinned memory on CUDA)."""
        if not len(self.shapes):
            return []
        moved = self.pixels.to(device, non_blocking=True)
        starts = self.pixel_offsets.tolist()
        return [moved[s : s + h * w * 3].view(h, w, 3).permute(2, 0, 1)
                for s, (h, w) in zip(starts, self.shapes.tolist(), strict=True)]


def _join(blobs: Sequence[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """One uint8 tensor (a plain, torch-allocated storage: it crosses the worker boundary
    like any collated tensor) + int64 offsets (n + 1) holding `blobs` end to end."""
    sizes = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = torch.empty(int(offsets[-1]), dtype=torch.uint8)
    data.numpy()[:] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return data, torch.from_numpy(offsets)


def collate_bytes(items: Sequence[EncodedItem]) -> EncodedBatch:
    """Join a batch's device files into one uint8 tensor + offsets and its CPU-decoded
    images into another; unusable files go to `bad`. Runs in the DataLoader workers, so the
    header and EXIF reads cost the main process nothing."""
    good = [it for it in items if it.data is not None or it.pixels is not None]
    device = [it for it in good if it.data is not None]
    cpu = [it for it in good if it.data is None]
    data, offsets = _join([it.data for it in device])  # type: ignore[misc]
    pixels, pixel_offsets = _join([it.pixels.tobytes() for it in cpu])  # type: ignore[union-attr]
    orientation = [jpeg_orientation(it.data) if it.data is not None else 1 for it in good]
    return EncodedBatch(
        data, offsets,
        torch.as_tensor([int(it.label) for it in good], dtype=torch.int64),
        torch.as_tensor([int(it.index) for it in good], dtype=torch.int64),
        [int(it.index) for it in items if it.data is None and it.pixels is None],
        torch.as_tensor([it.data is not None for it in good], dtype=torch.bool),
        torch.as_tensor(orientation, dtype=torch.uint8),
        pixels, pixel_offsets[:-1].clone(),
        torch.as_tensor([it.pixels.shape[:2] for it in cpu],  # type: ignore[union-attr]
                        dtype=torch.int64).reshape(-1, 2),
        sum(1 for it in items if it.tried_cpu))


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


def device_decodable(data: bytes | torch.Tensor, max_pixels: int = MAX_PIXELS) -> bool:
    """True for a complete 8-bit baseline (or extended) JPEG with 1 or 3 components and at most
    `max_pixels` pixels (anything else takes the CPU decoder, which handles it as today)."""
    raw = data.numpy().tobytes() if isinstance(data, torch.Tensor) else bytes(data)
    header = jpeg_header(raw[:65536])
    if header is None:
        return False
    marker, components, height, width = header
    complete = raw.rstrip(b"\x00").endswith(b"\xff\xd9")
    return (marker in _SOF and components in (1, 3) and complete
            and 0 < height * width <= max_pixels)


@dataclass
class BatchDecoder:
    """Decode + crop + normalise an `EncodedBatch` on `device` into a `Batch`.

    `mode="center"`: Resize(`resize`, short side) + CenterCrop(`size`); `mode="train"`:
    RandomResizedCrop(`size`, `scale`, `ratio`) + flip (p=0.5), drawn for the whole batch
    from `generator` (host-side, no synchronisation). `fallbacks` counts the files that took
    the CPU decoder (for the benchmark and tests).
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
    _threads: ThreadPoolExecutor | None = field(default=None, repr=False, compare=False)

    def decode(self, batch: EncodedBatch, samples: Sequence[tuple[str, int]]
               ) -> tuple[list[torch.Tensor | None], list[int]]:
        """uint8 (3, H, W) images on the device, EXIF orientation applied (None where
        undecodable), and the bad ids. A file the device decoder rejects after all is
        decoded by the CPU decoder in a thread pool (PIL releases the GIL)."""
        device_ok = batch.device_ok.tolist()
        images: list[torch.Tensor | None] = [None] * len(device_ok)
        fast = [i for i, ok in enumerate(device_ok) if ok]
        slow = [i for i, ok in enumerate(device_ok) if not ok]
        self.fallbacks += batch.cpu_decoded
        for i, img in zip(slow, batch.decoded(self.device), strict=True):
            images[i] = img
        orientation = batch.orientation.tolist()
        rejected = []
        if fast:
            decoded = self._device_decode(batch.files())
            for i, img in zip(fast, decoded, strict=True):
                if img is None:
                    rejected.append(i)
                else:
                    images[i] = orient(img, orientation[i])
        bad = list(batch.bad)
        indices = batch.indices.tolist()
        if rejected:
            self.fallbacks += len(rejected)
            paths = [samples[indices[i]][0] for i in rejected]
            for i, got in zip(rejected, self._pool().map(decode_image, paths), strict=True):
                if got.image is None:
                    bad.append(indices[i])
                    continue
                array = np.array(got.image.convert("RGB"), dtype=np.uint8)  # writable copy
                images[i] = torch.from_numpy(array).permute(2, 0, 1).to(self.device)
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

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="dcbench-decode")
        return self._threads

    def boxes(self, shapes: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop boxes (n, 4: top, left, h, w) and flip flags (n,) for images of `shapes`,
        drawn on the host for the whole batch."""
        heights = [h for h, _ in shapes]
        widths = [w for _, w in shapes]
        if self.mode == "center":
            return (center_boxes(heights, widths, self.resize, self.size),
                    torch.zeros(len(shapes), dtype=torch.bool))
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(0)
        g = self.generator
        boxes = rrc_boxes(torch.tensor(heights), torch.tensor(widths), self.scale, self.ratio, g)
        flips = torch.rand(len(shapes), generator=g) < 0.5
        return boxes, (flips if self.flip else torch.zeros_like(flips))

    def __call__(self, batch: EncodedBatch, samples: Sequence[tuple[str, int]]) -> Batch:
        images, bad = self.decode(batch, samples)
        keep = [i for i, img in enumerate(images) if img is not None]
        if not keep:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.int64),
                         torch.empty(0, dtype=torch.int64), sorted(bad))
        kept: list[torch.Tensor] = [images[i] for i in keep]  # type: ignore[misc]
        boxes, flips = self.boxes([(int(im.shape[-2]), int(im.shape[-1])) for im in kept])
        out = crop_batch(kept, boxes, self.size, flips)
        out = TF.normalize(out.div_(255.0), list(self.mean), list(self.std))
        idx = torch.as_tensor(keep)
        return Batch(out, batch.labels[idx], batch.indices[idx], sorted(bad))


class DecodingLoader:
    """Iterates a bytes DataLoader and yields decoded `Batch`es, prepared one batch ahead in
    a background thread (the train/feature loops' contract: `.dataset` has `.samples`,
    `len()` is the number of batches). Workers > 0 get a loader timeout: a stuck worker
    raises instead of hanging the run."""

    def __init__(self, dataset: Dataset, batch_size: int, decoder: BatchDecoder, *,
                 sampler: Sampler | None = None, workers: int = 0,
                 generator: torch.Generator | None = None, prefetch: int = 2) -> None:
        self.dataset = dataset
        self.decoder = decoder
        self.prefetch = prefetch
        base = getattr(dataset, "dataset", dataset)  # a Subset's underlying dataset
        self.samples: list[tuple[str, int]] = list(base.samples)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                 num_workers=workers, collate_fn=collate_bytes,
                                 generator=generator, timeout=loader_timeout(workers),
                                 pin_memory=decoder.device.type == "cuda")

    def __len__(self) -> int:
        return len(self.loader)

    def _prepare(self, encoded: EncodedBatch) -> Batch:
        return self.decoder(encoded, self.samples)

    def __iter__(self) -> Iterator[Batch]:
        if self.prefetch <= 0:
            for encoded in self.loader:
                yield self._prepare(encoded)
            return
        yield from Prefetcher(self.loader, self._prepare, self.decoder.device, self.prefetch)


__all__ = ["BatchDecoder", "DecodingLoader", "EncodedBatch", "EncodedImages", "EncodedItem",
           "collate_bytes",
           "device_decodable", "jpeg_header", "resolve_pipeline"]
