"""Where probe batches come from: cached tensors (`--fast`) or images through the frozen network.

Both sources speak dataset *positions* (indices into the dataset's sample list), so the
held-out split, the training set and the evaluation set are defined once for both modes.

Under torchrun (`core.distributed.current()` active) every rank draws the same global
batches and keeps its contiguous slice of each (maybe empty: every rank still yields one
batch per global batch, so the heads' gradient all-reduce lines up), and evaluation reads
a contiguous shard of the positions (each image once; `heads.evaluate` sums the counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import RandomSampler, Subset

from dcbench.core.distributed import current, shard
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import image_loader
from dcbench.data.samplers import GlobalBatchSlices
from dcbench.engine.inference import inference_batches
from dcbench.engine.sharded import shard_positions
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.pooling import PoolSpec, pool_features
from dcbench.protocols.probe.splits import with_transform

TrainBatch = tuple[dict[str, torch.Tensor], torch.Tensor]
EvalBatch = tuple[dict[str, torch.Tensor], torch.Tensor, int]


def epoch_generator(seed: int, *parts: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, *parts): the same epoch always sees the same order."""
    state = np.random.SeedSequence([int(seed), *map(int, parts)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _to_device(x: torch.Tensor, device: str) -> torch.Tensor:
    """A host tensor on `device` without waiting for the device's queue: a blocking
    host-to-GPU copy synchronises the stream, i.e. once per batch and layer it would wait
    for every head step queued before it (a pageable source is staged by CUDA at once, so
    the copy is safe)."""
    return x.to(device, non_blocking=True)


class TensorSource:
    """Batches from cached pooled features (`FeatureSet` per layer, rows aligned)."""

    def __init__(self, features: dict[str, FeatureSet], device: str = "cpu") -> None:
        first = next(iter(features.values()))
        for feats in features.values():
            if not torch.equal(feats.indices, first.indices):
                raise ValueError("cached feature sets of one dataset must share their rows")
        self.features = {k: v.features for k, v in features.items()}
        self.labels = first.labels
        self.positions = first.indices.long()
        self.row_of = {int(p): r for r, p in enumerate(first.indices.tolist())}
        self.device = device

    def rows(self, positions: np.ndarray | None) -> torch.Tensor:
        """Feature rows for dataset positions (undecodable images have no row and are skipped)."""
        if positions is None:
            return torch.arange(self.labels.numel())
        return torch.tensor([self.row_of[int(p)] for p in positions if int(p) in self.row_of],
                            dtype=torch.long)

    def _take(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: _to_device(v[rows], self.device) for k, v in self.features.items()}

    def train_batches(self, positions: np.ndarray | None, epoch: int, seed: int,
                      batch_size: int, *, with_positions: bool = False) -> Iterator[Any]:
        """Shuffled mini-batches (order fixed by seed and epoch), last partial batch kept;
        `with_positions`: (feats, labels, dataset positions of the rows) triples."""
        rows = self.rows(positions)
        order = rows[torch.randperm(rows.numel(), generator=epoch_generator(seed, epoch))]
        info = current()
        for start in range(0, order.numel(), batch_size):
            chunk = order[start:start + batch_size]
            if info.active:  # this rank's slice of the global batch
                first, stop = shard(chunk.numel(), info)
                chunk = chunk[first:stop]
            batch = (self._take(chunk), _to_device(self.labels[chunk], self.device))
            yield (*batch, self.positions[chunk]) if with_positions else batch

    def eval_batches(self, positions: np.ndarray | None, batch_size: int = 1024
                     ) -> Iterator[EvalBatch]:
        """Batches in dataset order, one view per image."""
        rows = torch.from_numpy(shard_positions(self.rows(positions).numpy()))
        for start in range(0, rows.numel(), batch_size):
            chunk = rows[start:start + batch_size]
            yield self._take(chunk), _to_device(self.labels[chunk], self.device), 1


class ImageSource:
    """Batches of images through the frozen `featurize`, pooled per layer (faithful mode).

    `eval_crops` is 10 for 10-crop testing (the eval transform returns (10, C, H, W)).
    """

    def __init__(
        self,
        dataset: Any,
        *,
        featurize: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        specs: dict[str, PoolSpec],
        train_transform: Callable | None,
        eval_transform: Callable,
        eval_crops: int,
        device: str,
        workers: int = 0,
        progress: bool = False,
        report: DecodeReport | None = None,
        pipeline: str = "cpu",
    ) -> None:
        self.train_set = with_transform(dataset, train_transform)
        self.eval_set = with_transform(dataset, eval_transform)
        self.featurize = featurize
        self.specs = specs
        self.eval_crops = eval_crops
        self.device = device
        self.workers = workers
        self.progress = progress
        self.report = report
        self.pipeline = pipeline  # the input_pipeline reading the images (data.pipeline)

    def _pooled(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() == 5:  # (B, crops, C, H, W): the crops flattened into the batch
            images = images.flatten(0, 1)
        out = self.featurize(images)
        return {layer: pool_features(out[layer], spec) for layer, spec in self.specs.items()}

    def train_batches(self, positions: np.ndarray | None, epoch: int, seed: int,
                      batch_size: int, *, with_positions: bool = False) -> Iterator[Any]:
        """Augmented, shuffled batches; order and augmentation fixed by (seed, epoch);
        `with_positions`: (feats, labels, dataset positions of the rows) triples."""
        dataset = self.train_set if positions is None else Subset(self.train_set,
                                                                  positions.tolist())
        generator = epoch_generator(seed, epoch)
        info = current()
        if info.active:  # the global order of one process, this rank's slice of each batch
            slices = GlobalBatchSlices(RandomSampler(dataset, generator=generator), batch_size,
                                       info.rank, info.world_size)
            loader = image_loader(dataset, batch_size, batch_sampler=slices,
                                  generator=generator, workers=self.workers,
                                  pipeline=self.pipeline, device=self.device)
        else:
            loader = image_loader(dataset, batch_size, shuffle=True, generator=generator,
                                  workers=self.workers, pipeline=self.pipeline,
                                  device=self.device)
        with torch.random.fork_rng(devices=[]):
            # Transforms in the main process (workers=0) draw from the global RNG: pin it.
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            # bad = dataset positions of the full training set
            for batch, pooled in inference_batches(loader, self._pooled, device=self.device,
                                                   dataset=self.train_set, report=self.report,
                                                   keep_empty=info.active):
                labels = _to_device(batch.labels, self.device)
                pooled = {} if pooled is None else pooled
                yield (pooled, labels, batch.indices) if with_positions else (pooled, labels)

    def eval_batches(self, positions: np.ndarray | None, batch_size: int = 128
                     ) -> Iterator[EvalBatch]:
        """Evaluation views (center crop, or 10 crops flattened into the batch)."""
        if positions is None:
            positions = np.arange(len(self.eval_set))
        dataset = Subset(self.eval_set, shard_positions(positions).tolist())
        loader = image_loader(dataset, batch_size, workers=self.workers,
                              pipeline=self.pipeline, device=self.device)
        for batch, pooled in inference_batches(loader, self._pooled, device=self.device,
                                               progress=self.progress, desc="evaluate",
                                               total=len(dataset)):
            yield pooled, _to_device(batch.labels, self.device), self.eval_crops
