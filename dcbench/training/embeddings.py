"""Embeddings for clustering: the backbone's embedding tap (fc7 before its ReLU, or the pooled
ResNet output) on center crops, in eval mode, for the whole dataset or a subset.

Under torchrun each rank extracts a contiguous shard of the requested indices and the
shards are gathered in order, so every rank ends with the same (N, D) matrix as a single
process would. Images that fail to decode get a zero row, are marked invalid and are
recorded in the `DecodeReport`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from dcbench.core.distributed import DistInfo, gather_rows, shard
from dcbench.data.loader import DecodeReport, make_loader
from dcbench.engine.inference import eval_mode, inference_batches
from dcbench.models.backbone import Backbone


def extract_embeddings(
    backbone: Backbone,
    dataset: Dataset,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    info: DistInfo | None = None,
    report: DecodeReport | None = None,
    progress: object | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, len(indices) x D) of `dataset[indices]` and a bool mask of the rows
    whose image decoded. `progress(n)` is called with the number of images done per batch."""
    info = info or DistInfo()
    indices = np.asarray(indices, dtype=np.int64)
    start, stop = shard(len(indices), info)
    mine = indices[start:stop]
    tap = backbone.embedding_tap
    feats = torch.zeros(len(mine), backbone.embedding_dim, dtype=torch.float32)
    valid = torch.zeros(len(mine), dtype=torch.bool)
    position = {int(idx): pos for pos, idx in enumerate(mine.tolist())}
    loader = make_loader(Subset(dataset, mine.tolist()), batch_size, workers=workers)
    with eval_mode(backbone):
        # Subset re-indexes; the dataset's own indices (third item) map back to rows
        for batch, out in inference_batches(
                loader, lambda x: backbone.forward_features(x, [tap])[tap], device=device,
                dataset=dataset, report=report, progress=progress):
            rows = torch.tensor([position[int(i)] for i in batch.indices])
            feats[rows] = out.float().cpu()
            valid[rows] = True
    gathered = gather_rows(feats, len(indices), info, device)
    mask = gather_rows(valid.to(torch.uint8), len(indices), info, device).bool()
    return gathered.numpy(), mask.numpy()
