"""Region descriptors of every image of a retrieval set, saved in shards for resuming.

One image at a time (sizes differ): resized image -> frozen conv map -> R-MAC region
descriptors (R_i, C). Shard j holds the images [j*S, (j+1)*S) as `regions` (sum R_i, C),
`counts` (S_j,) and `index` (S_j,) (undecodable images have count 0) and is written
atomically, so an interrupted run restarts at the first missing shard. Under torchrun
rank r computes shards r, r + N, r + 2N, ... (each image read once), every rank receives
all of them in order, and rank 0 writes the new ones; a resume may use another number of
processes (the shards do not depend on it). The images are read through
`data.pipeline.image_loader` (`pipeline`; with `dali` each image is decoded, resized and
box-cropped by DALI with the PIL path's geometry, `data.item_plans`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from dcbench.core.dist_eval import check_all, gather_objects
from dcbench.core.distributed import current
from dcbench.core.files import write_with
from dcbench.data.pipeline import image_loader
from dcbench.protocols.rmac.regions import RegionGrid, region_descriptors


def _load_shard(path: Path, n: int) -> list[torch.Tensor | None] | None:
    try:
        data = load_file(str(path))
    except (OSError, SafetensorError):
        return None
    counts = data["counts"].tolist()
    if len(counts) != n:
        return None
    out, start = [], 0
    for count in counts:
        out.append(data["regions"][start:start + count] if count else None)
        start += count
    return out


def _save_shard(path: Path, descriptors: list[torch.Tensor | None], channels: int) -> None:
    counts = torch.tensor([0 if d is None else d.shape[0] for d in descriptors])
    kept = [d for d in descriptors if d is not None]
    regions = torch.cat(kept) if kept else torch.zeros(0, channels)
    write_with(path, lambda tmp: save_file(
        {"regions": regions.float().contiguous(), "counts": counts}, str(tmp)))


@torch.no_grad()
def extract_regions(
    featurize: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    *,
    levels: int,
    grid: RegionGrid = "float64",
    shard_dir: Path | None,
    shard_size: int,
    device: str,
    progress: bool,
    desc: str,
    pipeline: str = "cpu",
) -> list[torch.Tensor | None]:
    """Per-image (R_i, C) region descriptors (None for an undecodable image), resumable.

    Undecodable images are not raised: the caller lists the None entries (also after a
    resume, when the shards are all that is left of the first pass). `pipeline`: the input
    pipeline reading the images (`data.pipeline.image_loader`, batch 1).
    """
    n = len(dataset)
    info = current()
    starts = list(range(0, n, shard_size))
    done: dict[int, tuple[list[torch.Tensor | None], int, bool]] = {}
    bar = tqdm(total=n, desc=desc, disable=not progress, file=sys.stderr, leave=False)
    error = None
    try:
        # under torchrun rank r takes shards r, r + N, ...: each image is read once
        for number in range(info.rank, len(starts), info.world_size):
            start = starts[number]
            stop = min(n, start + shard_size)
            path = _shard_path(shard_dir, start, shard_size)
            cached = _load_shard(path, stop - start) if path is not None and path.is_file() \
                else None
            fresh = cached is None
            channels = 0
            if cached is None:
                cached = [None] * (stop - start)
                loader = image_loader(Subset(dataset, list(range(start, stop))), 1,
                                      pipeline=pipeline, device=device)
                for offset, batch in enumerate(loader):
                    if len(batch) == 0:
                        continue
                    fmap = featurize(batch.images.to(device))[0].float().cpu()
                    channels = fmap.shape[0]
                    cached[offset] = region_descriptors(fmap, levels, grid)
            done[start] = (cached, channels, fresh)
            bar.update(stop - start)
    except Exception as err:  # agreed below: every rank stops with this message
        error = err
    bar.close()
    check_all(error, info)
    if info.active:  # every rank's shards on every rank
        done = {k: v for part in gather_objects(done, info) for k, v in part.items()}
    out: list[torch.Tensor | None] = []
    for start in starts:
        cached, channels, fresh = done[start]
        path = _shard_path(shard_dir, start, shard_size)
        if fresh and path is not None:
            _save_shard(path, cached, channels)  # rank 0 writes (core.files)
        out += cached
    return out


def _shard_path(shard_dir: Path | None, start: int, shard_size: int) -> Path | None:
    """The file of the shard that starts at image `start` (None without a shard dir)."""
    return shard_dir / f"shard_{start // shard_size:05d}.safetensors" if shard_dir else None
