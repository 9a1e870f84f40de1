"""Whole-network fine-tuning for a fixed number of SGD iterations (low-shot), resumable
through the engine's loop.

The network gets a fresh classification head (`reset_top_layer`), every trunk parameter is
trained (the Sobel filter stays fixed), BN in train mode. Held-out (or val) accuracy is
measured every `eval_every` iterations; the state is checkpointed at those points.

Under torchrun each rank loads its contiguous slice of every stream batch and the gradients
are all-reduced weighted by rows (`core.dist_eval.sync_gradients`: the global batch's
gradient), rank 0's BN statistics broadcast after each step (as DDP does); `top1` reads a
shard of the images and sums the counts. BN normalises with the statistics of the whole
stream batch (`bn_sync: global`, `core.sync_bn`; `rank`: each rank's slice). The crops,
flips and dropout masks of a slice are drawn from the step's seed on each rank, so N
processes train the same protocol with other random draws (docs/fidelity.md item 32).
`top1_hits` also returns the per-image hits, gathered in dataset order (low-shot's
per-item outcomes).

Images are read through `data.pipeline.image_loader` (`pipeline` = the protocol's
`input_pipeline`): with `dali` the stream batches and the evaluation passes are decoded and
cropped by DALI with the crops dcbench draws in this thread, so the stream, the crops, the
flips and the labels are the PIL path's for the same seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from dcbench.core.dist_eval import (
    broadcast_buffers,
    gather_objects,
    sum_over_ranks,
    sync_gradients,
)
from dcbench.core.sync_bn import apply_bn_sync, syncs_batch_stats
from dcbench.data.pipeline import image_loader
from dcbench.engine.inference import eval_mode, inference_batches
from dcbench.engine.resumable import LoopCheckpoint, ResumableLoop, StateBundle
from dcbench.engine.sharded import shard_positions
from dcbench.protocols.metrics import average_crops, top_hits
from dcbench.protocols.probe.batch_sources import epoch_generator

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """SGD settings of one fine-tuning run."""

    lr: float
    weight_decay: float
    momentum: float
    iterations: int
    eval_every: int
    batch_size: int
    eval_batch_size: int
    seed: int


def stream_batch(dataset: Any, positions: np.ndarray, batch_size: int, seed: int, index: int,
                 *, pipeline: str = "cpu", device: torch.device | str = "cpu",
                 graphs: dict[int, Any] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Batch `index` of an endless stream of reshuffled passes over `positions`, computed from
    the index alone (so a resumed run continues the very stream it was killed in): pass
    p = index // batches-per-pass has an order fixed by (seed, p); the crops and flips of the
    batch draw from torch's RNG, which the caller seeds by (seed, index). None when every
    image of the batch is undecodable. `pipeline` (and `device`) choose the input pipeline
    (`data.pipeline.image_loader`; the crops are drawn here, in the calling thread);
    `graphs` keeps the DALI graphs of a run by batch size, so one is built per size, not
    per step (building one opens decoders: milliseconds on CPU, more with nvJPEG)."""
    n = len(positions)
    size = min(batch_size, n)
    per_pass = -(-n // size)
    epoch, slot = divmod(int(index), per_pass)
    order = torch.randperm(n, generator=epoch_generator(seed, epoch)).numpy()
    chosen = np.asarray(positions)[order[slot * size:(slot + 1) * size]]
    chosen = shard_positions(chosen)  # under torchrun: this rank's slice of the batch
    if not len(chosen):
        return None
    loader = image_loader(Subset(dataset, chosen.tolist()), len(chosen), pipeline=pipeline,
                          device=device)
    reuse = graphs is not None and hasattr(loader, "graph")  # a DaliLoader, no prefetch
    if reuse:
        loader.graph = graphs.get(len(chosen))  # type: ignore[union-attr]
    batch = next(iter(loader))
    if reuse:
        graphs[len(chosen)] = loader.graph  # type: ignore[index, union-attr]
    return (batch.images, batch.labels) if len(batch) else None


def _step_seed(seed: int, index: int) -> int:
    """The torch seed of stream batch `index` (its crops, flips and dropout masks)."""
    return int(torch.randint(2**62, (1,), generator=epoch_generator(seed, index, 1)))


def _image_shapes(batch: tuple[torch.Tensor, torch.Tensor] | None) -> list[tuple[int, ...]]:
    """The (C, H, W) of every rank's batch that has images (none: no rank has one), so a
    rank without images can run the empty forward that its global BatchNorms need."""
    mine = None if batch is None else tuple(batch[0].shape[1:])
    return [shape for shape in gather_objects(mine) if shape is not None]


def crop_averaged_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits of a batch; (B, crops, C, H, W) 10-crop views give softmax-averaged scores."""
    if images.dim() == 5:
        n, crops = images.shape[:2]
        return average_crops(model(images.flatten(0, 1)).view(n, crops, -1))
    return model(images)


def top1(model: nn.Module, dataset: Any, positions: np.ndarray | None, batch_size: int,
         device: str, *, pipeline: str = "cpu") -> float:
    """Top-1 (percent) of `model` logits; 5-D batches are 10-crop views (softmax averaged).
    `pipeline`: the input pipeline reading the images (`data.pipeline.image_loader`)."""
    return top1_hits(model, dataset, positions, batch_size, device, pipeline=pipeline)[0]


def top1_hits(model: nn.Module, dataset: Any, positions: np.ndarray | None, batch_size: int,
              device: str, *, pipeline: str = "cpu") -> tuple[float, np.ndarray]:
    """`top1` and the per-image top-1 hits behind it (bool, the decodable images of
    `positions` in order; under torchrun every rank's contiguous shard gathered in rank
    order, so the same array as one process)."""
    positions = np.arange(len(dataset)) if positions is None else positions
    data = Subset(dataset, shard_positions(positions).tolist())  # all of them in one process
    correct = total = 0
    parts: list[np.ndarray] = []
    with eval_mode(model):
        loader = image_loader(data, batch_size, pipeline=pipeline, device=device)
        for batch, scores in inference_batches(loader,
                                               lambda x: crop_averaged_logits(model, x),
                                               device=device):
            hits = top_hits(scores.cpu(), batch.labels, 1)[:, 0]
            correct += int(hits.sum())
            total += len(batch)
            parts.append(hits.numpy())
    correct, total = sum_over_ranks([correct, total])  # torchrun: every image counted once
    mine = np.concatenate(parts) if parts else np.zeros(0, bool)
    return 100.0 * correct / max(total, 1), np.concatenate(gather_objects(mine))


def finetune(
    model: Backbone,
    num_classes: int,
    train_set: Any,
    train_positions: np.ndarray,
    settings: FinetuneSettings,
    evaluate: Callable[[nn.Module], float],
    *,
    device: str,
    checkpoint: Path | None = None,
    progress: bool = False,
    desc: str = "fine-tune",
    pipeline: str = "cpu",
    bn_sync: str = "global",
) -> list[tuple[int, float]]:
    """Fine-tune `model` in place in the engine's resumable loop; returns
    [(iteration, evaluate(model))] at each eval point (the checkpoint is saved there too, and
    removed at the end). The batch stream and every random draw of a step (crops, flips,
    dropout) are fixed by the seed and the step's place in the stream, which the checkpoint
    saves: a run killed and resumed ends with the same weights as an uninterrupted one.
    `pipeline`: the input pipeline of the stream batches (`stream_batch`). `bn_sync`
    (`core.sync_bn.apply_bn_sync`): under torchrun, `global` normalises every BN layer with
    the statistics of the whole stream batch, `rank` with each rank's slice."""
    generator = torch.Generator().manual_seed(settings.seed)
    model.reset_top_layer(num_classes, generator)
    apply_bn_sync(model, bn_sync)  # before `to`, which drops the traced extractors
    model.to(device)
    params = [p for p in model.trunk_parameters()] + list(model.top_layer.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    ckpt = LoopCheckpoint(checkpoint) if checkpoint is not None else None
    loop = ResumableLoop(settings.iterations, state=StateBundle(model=model, optimizer=optimizer),
                         checkpoint=ckpt, every=settings.eval_every, desc=desc, unit="it",
                         progress=progress, extra={"curve": []})
    start = loop.resume()
    curve: list[list[float]] = loop.extra["curve"]
    index = int(loop.position.get("batch", start))  # the stream position (saved with the state)
    graphs: dict[int, Any] = {}  # the run's DALI graphs (input_pipeline dali)
    for it in loop:
        model.train()
        synced = syncs_batch_stats(model)  # bn_sync global under torchrun: BN collectives
        with torch.random.fork_rng(devices=[]):  # step randomness fixed by (seed, batch index)
            while True:  # a batch of only undecodable images (on every rank) is passed over
                torch.manual_seed(_step_seed(settings.seed, index))
                batch = stream_batch(train_set, train_positions, settings.batch_size,
                                     settings.seed, index, pipeline=pipeline, device=device,
                                     graphs=graphs)
                index += 1
                shapes = _image_shapes(batch) if synced else []
                if shapes or (not synced and sum_over_ranks([float(batch is not None)])[0]):
                    break
            optimizer.zero_grad(set_to_none=True)
            rows, value = 0, 0.0
            if batch is not None:  # (None: this rank's slice is empty or undecodable)
                images, labels = batch
                loss = nn.functional.cross_entropy(model(images.to(device)), labels.to(device))
                loss.backward()
                rows, value = len(labels), float(loss.detach())
            elif synced:  # the global BN statistics count this rank's (empty) slice too
                model(torch.zeros((0, *shapes[0]), device=device)).sum().mul(0.0).backward()
            _, value = sync_gradients(params, rows, value)  # torchrun: the global batch's
            broadcast_buffers(model)
            optimizer.step()
        loop.position["batch"] = index
        loop.set_postfix(loss=f"{value:.3f}")
        done = it + 1
        if done % settings.eval_every == 0 or done == settings.iterations:
            curve.append([done, evaluate(model)])
    if ckpt is not None:
        ckpt.discard()
    return [(int(done), float(score)) for done, score in curve]
