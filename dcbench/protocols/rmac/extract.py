"""Region descriptors of every image of a retrieval set, saved in shards for resuming.

One image at a time (sizes differ): resized image -> frozen conv map -> R-MAC region
descriptors (R_i, C). Shard j holds the images [j*S, (j+1)*S) as `regions` (sum R_i, C),
`counts` (S_j,) and `index` (S_j,) (undecodable images have count 0) and is written
atomically, so an interrupted run restarts at the first missing shard.
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

from dcbench.core.files import write_with
from dcbench.data.loader import make_loader
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
) -> list[torch.Tensor | None]:
    """Per-image (R_i, C) region descriptors (None for an undecodable image), resumable.

    Undecodable images are not raised: the caller lists the None entries (also after a
    resume, when the shards are all that is left of the first pass).
    """
    n = len(dataset)
    out: list[torch.Tensor | None] = []
    bar = tqdm(total=n, desc=desc, disable=not progress, file=sys.stderr, leave=False)
    for start in range(0, n, shard_size):
        stop = min(n, start + shard_size)
        path = shard_dir / f"shard_{start // shard_size:05d}.safetensors" if shard_dir else None
        cached = _load_shard(path, stop - start) if path is not None and path.is_file() else None
        if cached is None:
            cached = [None] * (stop - start)
            channels = 0
            loader = make_loader(Subset(dataset, list(range(start, stop))), 1)
            for offset, batch in enumerate(loader):
                if len(batch) == 0:
                    continue
                fmap = featurize(batch.images.to(device))[0].float().cpu()
                channels = fmap.shape[0]
                cached[offset] = region_descriptors(fmap, levels, grid)
            if path is not None:
                _save_shard(path, cached, channels)
        out += cached
        bar.update(stop - start)
    bar.close()
    return out
