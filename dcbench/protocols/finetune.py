"""Whole-network fine-tuning for a fixed number of SGD iterations (low-shot), resumable.

The network gets a fresh classification head (`reset_top_layer`), every trunk parameter is
trained (the Sobel filter stays fixed), BN in train mode. Held-out (or val) accuracy is
measured every `eval_every` iterations; the state is checkpointed at those points.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset
from tqdm import tqdm

from dcbench.core.files import write_with
from dcbench.data.loader import make_loader
from dcbench.models.checkpoints import restore_state
from dcbench.protocols.metrics import average_crops, topk_correct
from dcbench.protocols.sources import epoch_generator

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


def endless_batches(dataset: Any, positions: np.ndarray, batch_size: int, seed: int
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Reshuffled passes over `positions`, forever; pass p's order and crops fixed by (seed, p)."""
    subset = Subset(dataset, positions.tolist())
    epoch = 0
    while True:
        generator = epoch_generator(seed, epoch)
        loader = make_loader(subset, min(batch_size, len(subset)), shuffle=True,
                             generator=generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            for batch in loader:
                if len(batch):
                    yield batch.images, batch.labels
        epoch += 1


@torch.no_grad()
def top1(model: nn.Module, dataset: Any, positions: np.ndarray | None, batch_size: int,
         device: str) -> float:
    """Top-1 (percent) of `model` logits; 5-D batches are 10-crop views (softmax averaged)."""
    model.eval()
    data = dataset if positions is None else Subset(dataset, positions.tolist())
    correct = total = 0
    for batch in make_loader(data, batch_size):
        if len(batch) == 0:
            continue
        images = batch.images.to(device)
        if images.dim() == 5:
            n, crops = images.shape[:2]
            scores = average_crops(model(images.flatten(0, 1)).view(n, crops, -1))
        else:
            scores = model(images)
        correct += topk_correct(scores.cpu(), batch.labels, (1,))[1]
        total += len(batch)
    return 100.0 * correct / max(total, 1)


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
) -> list[tuple[int, float]]:
    """Fine-tune `model` in place; returns [(iteration, evaluate(model))] at each eval point."""
    generator = torch.Generator().manual_seed(settings.seed)
    model.reset_top_layer(num_classes, generator)
    model.to(device)
    params = [p for p in model.trunk_parameters()] + list(model.top_layer.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    curve: list[tuple[int, float]] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        def apply(state: dict) -> tuple[list, int]:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            return [tuple(p) for p in json.loads(state["curve"])], int(state["iteration"])

        curve, start = restore_state(checkpoint, apply)
    batches = endless_batches(train_set, train_positions, settings.batch_size,
                              settings.seed * 7919 + start)
    bar = tqdm(range(start, settings.iterations), desc=desc, disable=not progress,
               file=sys.stderr, leave=False)
    for it in bar:
        model.train()
        images, labels = next(batches)
        loss = nn.functional.cross_entropy(model(images.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = it + 1
        if done % settings.eval_every == 0 or done == settings.iterations:
            curve.append((done, evaluate(model)))
            if checkpoint is not None:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "curve": json.dumps(curve), "iteration": done}
                write_with(checkpoint, lambda tmp, s=state: torch.save(s, tmp))
    if checkpoint is not None and checkpoint.is_file():
        checkpoint.unlink()
    return curve
