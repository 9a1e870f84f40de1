"""Pooled frozen features of a whole dataset: one pass of the engine's inference loop, the
taps pooled per the pooling table, optionally read from / written to the `FeatureCache`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from dcbench.core.dist_eval import check_all, gather_objects
from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.core.faults import raise_fault
from dcbench.data import transforms as T
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import effective_pipeline, image_loader
from dcbench.engine.inference import inference_batches
from dcbench.engine.resumable import status
from dcbench.engine.sharded import gather_in_order, shard_of, share_report
from dcbench.protocols.probe.feature_cache import (
    CacheKey,
    FeatureCache,
    FeatureSet,
    dataset_fingerprint,
    fits_dataset,
)
from dcbench.protocols.probe.pooling import PoolSpec, model_pool_specs, pool_features
from dcbench.protocols.probe.splits import Sizes, with_transform

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


def extract_pooled(
    featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    dataset: Any,
    specs: dict[str, PoolSpec],
    *,
    batch_size: int,
    device: str,
    progress: bool,
    report: DecodeReport | None = None,
    desc: str = "features",
    workers: int = 0,
    pipeline: str = "cpu",
) -> dict[str, FeatureSet]:
    """One pass over `dataset`: featurize each batch, pool each tap, keep them on the CPU.
    `pipeline` is the `input_pipeline` that reads the images (`data.pipeline`).

    Under torchrun each rank reads its contiguous shard (`engine.sharded`) and every rank
    ends with the whole dataset's rows in dataset order; a rank that fails stops them all
    with its message (`check_all`), and undecodable files are reported once."""
    info = current()
    part = shard_of(dataset, info)
    loader = image_loader(part, batch_size, pipeline=pipeline, device=device, workers=workers)
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in specs}
    labels, indices = [], []

    def pooled(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = featurize(images)
        return {layer: pool_features(out[layer], spec).float().cpu()
                for layer, spec in specs.items()}

    error = None
    try:
        raise_fault("eval-rank", info.rank)
        for batch, out in inference_batches(loader, pooled, device=device, dataset=dataset,
                                            report=report, progress=progress, desc=desc,
                                            total=len(part)):
            for layer in specs:
                chunks[layer].append(out[layer])
            labels.append(batch.labels)
            indices.append(batch.indices)
    except Exception as err:  # agreed below: every rank stops with this message
        error = err
    check_all(error, info)
    share_report(report, info)
    local = {layer: torch.cat(parts) if parts else torch.zeros(0)
             for layer, parts in chunks.items()}
    local["labels"] = torch.cat(labels).long() if labels else torch.zeros(0, dtype=torch.long)
    idx = torch.cat(indices).long() if indices else torch.zeros(0, dtype=torch.long)
    merged, idx = gather_in_order(local, idx, info)
    if not len(idx):
        raise UserError(f"no image of {getattr(dataset, 'root', 'the dataset')} could be decoded")
    lab = merged.pop("labels")
    return {layer: FeatureSet(merged[layer], lab, idx) for layer in specs}


def tap_featurizer(model: Backbone, layers: Sequence[str]
                   ) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """images -> {tap: activation} with the frozen backbone in eval mode (BN statistics)."""
    layers = list(layers)

    def featurize(images: torch.Tensor) -> dict[str, torch.Tensor]:
        model.eval()
        return model.forward_features(images, layers)

    return featurize


def cached_features(
    model: Backbone,
    dataset: Any,
    specs: dict[str, PoolSpec],
    transform_desc: str,
    *,
    cache: FeatureCache | None,
    batch_size: int,
    device: str,
    progress: bool,
    report: DecodeReport | None = None,
    featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None,
    desc: str = "features",
    pipeline: str = "cpu",
) -> dict[str, FeatureSet]:
    """Pooled features per tap, read from `cache` when present; missing taps extracted in one pass.

    `dataset.transform` must be the pipeline that `transform_desc` names (no randomness).
    Pass `featurize` for inputs that are not plain taps (its keys must match `specs`).
    """
    keys = {}
    found: dict[str, FeatureSet] = {}
    if effective_pipeline(dataset, pipeline, device) == "dali":  # not the PIL path's pixels
        transform_desc += "|dali"
    if cache is not None:
        targets = list(dataset.targets)
        fingerprint = dataset_fingerprint(dataset.paths, targets)
        sha = model.weights_sha256()
        for layer, spec in specs.items():
            keys[layer] = CacheKey(sha, layer, spec.describe(), fingerprint, transform_desc)
            hit = cache.load(keys[layer])
            if hit is not None and fits_dataset(hit, targets):
                found[layer] = hit
                if report is not None:  # a hit still reports the files the entry lacks
                    kept = set(hit.indices.tolist())
                    report.add([i for i in range(len(dataset)) if i not in kept], dataset)
    # under torchrun a tap is a hit only when every rank found it (one pass, run by all)
    agreed = set.intersection(*(set(hits) for hits in gather_objects(sorted(found))))
    missing = {layer: spec for layer, spec in specs.items() if layer not in agreed}
    if missing:
        fn = featurize or tap_featurizer(model, list(missing))
        extracted = extract_pooled(fn, dataset, missing, batch_size=batch_size, device=device,
                                   progress=progress, report=report, desc=desc,
                                   pipeline=pipeline)
        for layer, feats in extracted.items():
            if cache is not None:
                cache.save(keys[layer], feats)
            found[layer] = feats
    return {layer: found[layer] for layer in specs}


def frozen_features(
    model: Backbone,
    dataset: Any,
    layers: Sequence[str],
    *,
    use_cache: bool,
    batch_size: int,
    device: str,
    progress: bool,
    pooling: str = "dc2018",
    desc: str = "features",
    pipeline: str = "cpu",
) -> dict[str, FeatureSet]:
    """Center-crop features of `layers` (pooled per `pooling` table) for a whole dataset.

    With `use_cache` the shared feature cache is read and filled (the entries linear-conv
    `--fast` uses for the same taps); otherwise features are extracted fresh.
    """

    model.check_layers(list(layers))
    model.to(device).eval()
    sizes = Sizes.for_model(model)
    center = T.center_crop(sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
    specs = model_pool_specs(model, list(layers), sizes.crop, pooling)
    report = DecodeReport()
    out = cached_features(model, with_transform(dataset, center), specs,
                          sizes.describe("center_crop"),
                          cache=FeatureCache() if use_cache else None, batch_size=batch_size,
                          device=device, progress=progress, report=report, desc=desc,
                          pipeline=pipeline)
    if report.count:
        status(report.summary())
    return out
