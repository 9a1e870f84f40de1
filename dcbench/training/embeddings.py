"""Embeddings for clustering: the backbone's embedding tap (fc7 before its ReLU, or the pooled
ResNet output) on center crops, in eval mode, for the whole dataset or a subset.

`embed_on_device` keeps the rows on the device they were computed on (bf16 under bf16
autocast, float32 otherwise; issue 18): no `.cpu()` per batch, no host copy, row positions
copied `non_blocking`. `compact_rows_` moves the decoded rows to the front in place, so
clustering sees a view, not a `feats[ok]` copy.

Under torchrun each rank extracts a contiguous shard of the requested indices.
`extract_embeddings` (numpy out, the evaluation helpers' and benchmarks' interface)
gathers the shards in order, so every rank ends with the same (N, D) matrix as a single
process would; with `gather=False` each rank keeps its own shard (for sharded clustering);
`gather_to_main` collects them on rank 0 only (the faiss backend under torchrun).
Images that fail to decode get a zero row, are marked invalid and are recorded in the
`DecodeReport`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset

from dcbench.core.distributed import DistInfo, gather_rows, shard
from dcbench.data.gpu_decode import BatchDecoder, DecodingLoader
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import image_loader
from dcbench.engine.inference import eval_mode, inference_batches
from dcbench.models.backbone import Backbone
from dcbench.training.precision import autocast, feature_dtype, to_device

_COMPACT_ROWS = 16384


def embed_on_device(
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
    precision: str = "fp32",
    decoder: BatchDecoder | None = None,
    pipeline: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shard `shard(len(indices), info)` of the embeddings of `dataset[indices]`,
    on `device` (`feature_dtype(precision)`), and a bool mask (on `device`) of the rows whose
    image decoded. With a `decoder`, `dataset` yields file bytes (`EncodedImages`) decoded
    and cropped on its device; otherwise `data.pipeline.image_loader` feeds it (`pipeline`
    cpu: a pinned, non-blocking PIL loader; dali: DALI with the PIL path's crops)."""
    info = info or DistInfo()
    indices = np.asarray(indices, dtype=np.int64)
    start, stop = shard(len(indices), info)
    mine = indices[start:stop]
    tap = backbone.embedding_tap
    feats = torch.zeros(len(mine), backbone.embedding_dim, dtype=feature_dtype(precision),
                        device=device)
    valid = torch.zeros(len(mine), dtype=torch.bool, device=device)
    order = np.argsort(mine, kind="stable")
    part = Subset(dataset, mine.tolist())
    pin = device.type == "cuda"
    loader = (image_loader(part, batch_size, pipeline=pipeline, device=device, workers=workers,
                           pin_memory=pin) if decoder is None
              else DecodingLoader(part, batch_size, decoder, workers=workers))

    def embed(images: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            return backbone.forward_features(to_device(images, device, precision), [tap])[tap]

    with eval_mode(backbone):
        # Subset re-indexes; the dataset's own indices (third item) map back to rows
        for batch, out in inference_batches(loader, embed, device=device, dataset=dataset,
                                            report=report, progress=progress):
            ids = batch.indices.numpy()
            rows = torch.from_numpy(order[np.searchsorted(mine, ids, sorter=order)])
            rows = (rows.pin_memory() if pin else rows).to(device, non_blocking=True)
            feats.index_copy_(0, rows, out.to(feats.dtype))
            valid.index_fill_(0, rows, True)
    return feats, valid


def compact_rows_(feats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The rows of `feats` where `valid`, in order, as a view of its first rows: moved there
    in place, chunk by chunk (row j goes to position <= j), instead of a `feats[valid]` copy."""
    ids = torch.nonzero(valid).flatten()
    if len(ids) == len(feats):
        return feats
    for s in range(0, len(ids), _COMPACT_ROWS):
        chunk = ids[s : s + _COMPACT_ROWS]
        feats[s : s + len(chunk)] = feats[chunk]
    return feats[: len(ids)]


def gather_to_main(local: torch.Tensor, n_total: int, info: DistInfo) -> torch.Tensor | None:
    """Every rank's rows (shards from `shard`, rank order) on rank 0, None on the others (the
    faiss backend clusters on rank 0 only: no rank needs a full copy but that one)."""
    if not info.active:
        return local
    sizes = [b - a for a, b in (shard(n_total, DistInfo(r, info.world_size))
                                for r in range(info.world_size))]
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes] if info.is_main else None
    dist.gather(padded, parts, dst=0)
    if parts is None:
        return None
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


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
    precision: str = "fp32",
    gather: bool = True,
    decoder: BatchDecoder | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, len(indices) x D) of `dataset[indices]` and a bool mask of the rows
    whose image decoded (this rank's shard `shard(len(indices), info)` only when `gather` is
    False), on the host. `progress(n)` is called with the number of images done per batch;
    `precision` bf16 runs the forward under bf16 autocast. See `embed_on_device`."""
    info = info or DistInfo()
    feats, valid = embed_on_device(backbone, dataset, indices, batch_size=batch_size,
                                   device=device, workers=workers, info=info, report=report,
                                   progress=progress, precision=precision, decoder=decoder)
    feats = feats.float()
    if not gather:
        return feats.cpu().numpy(), valid.cpu().numpy()
    n = len(np.asarray(indices))
    gathered = gather_rows(feats, n, info, device)
    mask = gather_rows(valid.to(torch.uint8), n, info, device).bool()
    return gathered.cpu().numpy(), mask.cpu().numpy()


__all__ = ["compact_rows_", "embed_on_device", "extract_embeddings", "gather_to_main"]
