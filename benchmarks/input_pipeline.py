"""Input pipelines side by side: PIL workers vs torchvision's batch JPEG decoder vs DALI.

The three backends of `input_pipeline` read the same generated JPEGs (`data.synthetic_jpeg`,
`sizes="imagenet"`: ImageNet's mix of sizes, some progressive, some CMYK, some EXIF-rotated)
for the two jobs every run does: DeepCluster training crops (RandomResizedCrop 224 + flip)
and centre-crop features (Resize 256 + CenterCrop 224). Figures are images per second of
finished, normalised batches (no network), best of `repeat` alternating passes in one run:

- `PIL workers` (the baseline, `input_pipeline=cpu`): `data.pipeline.image_loader` with N
  DataLoader workers decoding and transforming with PIL/torchvision;
- `torchvision decode_jpeg batch (CPU)`: the `input_pipeline=gpu` path (`data.gpu_decode`)
  on the CPU: workers read bytes, `torchvision.io.decode_jpeg` decodes the batch, crops by
  `roi_align`; on a GPU this is the nvJPEG path, here it is torchvision's CPU decoder;
- `DALI (CPU backend)`: `input_pipeline=dali` with N DALI threads decoding (`device="cpu"`;
  on CUDA it would be `"mixed"`, whose speed is the library's and is not measured here) and
  N DataLoader workers reading the files and drawing the crops (as `workers: N` runs it).

N = the machine's CPU count (at most 8): the same cores for every backend. On a machine
with CUDA the torchvision rows run nvJPEG and the DALI rows `device="mixed"` (then the
figures are GPU figures; the README's table is the CPU run).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Row

SEED = 0


def _count(loader: Iterable[Any], device: torch.device) -> int:
    seen = sum(len(batch) for batch in loader)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen


def _loaders(root: Path, job: str, batch: int, cores: int, device: torch.device
             ) -> dict[str, Callable[[], Any]]:
    """Fresh loaders per pass for the three backends (same crops drawn by PIL and DALI)."""
    from dcbench.data import transforms as T
    from dcbench.data.dali_pipeline import DaliLoader, dali_available
    from dcbench.data.folders import ImageFolderDataset
    from dcbench.data.gpu_decode import BatchDecoder, DecodingLoader, EncodedImages
    from dcbench.data.pipeline import image_loader

    transform = T.deepcluster_train(224) if job == "train" else T.center_crop(224, 256)
    dataset = ImageFolderDataset(root, transform)
    encoded = EncodedImages(ImageFolderDataset(root))

    def decoder() -> BatchDecoder:
        return BatchDecoder(device, 224, T.IMAGENET_MEAN, T.IMAGENET_STD, mode=job, resize=256,
                            generator=torch.Generator().manual_seed(SEED))

    loaders: dict[str, Callable[[], Any]] = {
        "pil": lambda: image_loader(dataset, batch, pipeline="cpu", workers=cores),
        "torchvision": lambda: DecodingLoader(encoded, batch, decoder(), workers=cores),
    }
    if dali_available():
        def dali() -> Any:
            loader = image_loader(dataset, batch, pipeline="dali", workers=cores,
                                  device=device)
            assert isinstance(loader, DaliLoader)
            loader.threads = cores  # before the first batch builds the graph
            return loader

        loaders["dali"] = dali
    return loaders


def measure(root: Path, job: str, batch: int, cores: int, repeat: int,
            device: torch.device) -> dict[str, float]:
    """img/s per backend: one warm-up pass each, then `repeat` alternating passes, best."""
    loaders = _loaders(root, job, batch, cores, device)
    best = dict.fromkeys(loaders, 0.0)
    for make in loaders.values():
        _count(make(), device)  # warm-up: worker start, DALI graph build, page cache
    for _ in range(repeat):
        for name, make in loaders.items():
            torch.manual_seed(SEED)
            start = time.perf_counter()
            seen = _count(make(), device)
            best[name] = max(best[name], seen / (time.perf_counter() - start))
    return best


def run(quick: bool) -> list[Row]:
    """Training crops and centre-crop features through each backend, ratio vs PIL workers."""
    from dcbench.data.synthetic_jpeg import make_jpeg_folder

    cores = max(1, min(8, os.cpu_count() or 1))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tv = "torchvision nvJPEG batch (cuda)" if device.type == "cuda" else \
        "torchvision decode_jpeg batch (CPU)"
    dali = "DALI (mixed, cuda)" if device.type == "cuda" else "DALI (CPU backend)"
    per_class, repeat, batch = (2, 1, 4) if quick else (64, 2, 32)
    if device.type == "cuda" and not quick:
        repeat = 1  # after the warm-up pass: fits gpu_run.sh's 60 s step on 16 cores
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "jpeg", n_classes=4, per_class=per_class,
                                sizes="imagenet", seed=SEED, progressive=0.2, cmyk=0.05,
                                rotated=0.05)
        n = 4 * per_class
        for job, what in (("train", "training crops (RandomResizedCrop 224 + flip)"),
                          ("center", "centre-crop features (Resize 256 + CenterCrop 224)")):
            figures = measure(root, job, batch, cores, repeat, device)
            base = f"PIL workers ({cores})"
            common = f"{n} JPEGs, ImageNet size mix (20% progressive, 5% CMYK), batch {batch}"
            rows.append(Row(benchmark="input_pipeline", what=f"{what}: {tv}",
                            dcbench=figures["torchvision"], unit="img/s",
                            baseline_name=base, baseline=figures["pil"],
                            notes=f"{common}; input_pipeline=gpu on {device.type} ({cores} "
                            "workers read bytes)"))
            if "dali" in figures:
                rows.append(Row(benchmark="input_pipeline", what=f"{what}: {dali}",
                                dcbench=figures["dali"], unit="img/s", baseline_name=base,
                                baseline=figures["pil"],
                                notes=f"{common}; {cores} DALI threads + {cores} reader "
                                f"workers on {device.type}"))
    return rows
