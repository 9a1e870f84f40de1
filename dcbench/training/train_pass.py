"""One DeepCluster training pass: cross-entropy on pseudo-labels, body SGD with momentum (state
kept across epochs), top layer with its own momentum-free SGD, optionally SGT (thesis 4.7).

SGT ("stochastic gradient over targets") scores and updates only a subset of the top
layer's rows per batch: the rows of the targets present in the batch, plus random other rows
up to a budget (256, 512, ...). The softmax is then over that subset only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dcbench.core.distributed import DistInfo, average_gradients, reduce_mean, sync_buffers
from dcbench.core.faults import inject_fault
from dcbench.data.loader import DecodeReport
from dcbench.models.backbone import Backbone
from dcbench.training.precision import autocast, to_device


def sgt_rows(targets: torch.Tensor, n_rows: int, budget: int, generator: torch.Generator
             ) -> torch.Tensor:
    """Sorted rows to update: every target in the batch, then random others up to `budget`."""
    present = torch.unique(targets)
    extra = max(0, min(budget, n_rows) - len(present))
    if extra:
        mask = torch.ones(n_rows, dtype=torch.bool)
        mask[present] = False
        others = torch.nonzero(mask).flatten()
        pick = others[torch.randperm(len(others), generator=generator)[:extra]]
        present = torch.cat([present, pick])
    return torch.sort(present).values


@torch.no_grad()
def sgd_rows(layer: torch.nn.Linear, rows: torch.Tensor | None, lr: float, wd: float) -> None:
    """Momentum-free SGD with weight decay on the given rows of a Linear layer (all if None):
    p <- p - lr (grad + wd p), exactly torch.optim.SGD(momentum=0)'s update."""
    for param in (layer.weight, layer.bias):
        if param.grad is None:
            continue
        if rows is None:
            param.add_(param.grad.add(param, alpha=wd), alpha=-lr)
        else:
            step = param.grad[rows].add(param[rows], alpha=wd)
            param[rows] = param[rows].add(step, alpha=-lr)


@dataclass
class PassSettings:
    """What a pass needs besides the model and data."""

    lr: float
    weight_decay: float
    sgt: int = 0
    batches_done: int = 0  # global batch counter (for the fault hook)
    precision: str = "fp32"  # fp32 | bf16 (autocast; see dcbench.training.precision)
    trunk_ddp: torch.nn.Module | None = None  # DDP-wrapped HeadInput under torchrun


# the loss is read on the host (a device synchronisation) only every this many steps
LOSS_READ_EVERY = 50


def train_pass(
    backbone: Backbone,
    loader: DataLoader,
    pseudo_labels: np.ndarray,
    body_optimizer: torch.optim.Optimizer,
    settings: PassSettings,
    device: torch.device,
    info: DistInfo,
    generator: torch.Generator,
    report: DecodeReport | None = None,
    progress: Callable[[int, float | None], None] | None = None,
    loss_every: int = LOSS_READ_EVERY,
) -> float:
    """Train one pass over `loader`; returns the mean batch loss (averaged over ranks).

    Nothing in the loop waits for the device (issue 18): the pseudo-labels live on the
    device, the batch and its targets are copied `non_blocking` (from pinned memory on
    CUDA), and the losses are summed on the device; `progress(n_images, loss)` gets the
    current loss every `loss_every` steps (None in between). With SGT the row subset is
    drawn on the host (`torch.unique`), which does wait for the targets."""
    top = backbone.top_layer
    assert top is not None, "reset_top_layer must be called before train_pass"
    targets_of = torch.from_numpy(np.asarray(pseudo_labels, dtype=np.int64))
    pin = device.type == "cuda"
    ddp = settings.trunk_ddp
    # with DDP the trunk's gradients are reduced in backward; only the top layer's here
    params = [p for p in (top.parameters() if ddp is not None else backbone.parameters())
              if p.requires_grad]
    backbone.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for batch in loader:
        if report is not None and batch.bad:
            report.add(batch.bad, loader.dataset)
        if len(batch) == 0:
            continue
        images = to_device(batch.images, device, settings.precision)
        targets = targets_of[batch.indices]
        targets = (targets.pin_memory() if pin else targets).to(device, non_blocking=True)
        if ddp is None:
            sync_buffers(backbone, info)
        with autocast(device, settings.precision):
            loss, rows = _loss(backbone, ddp, images, targets, settings, info, generator)
        body_optimizer.zero_grad(set_to_none=True)
        top.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(params, info)
        body_optimizer.step()
        sgd_rows(top, rows, settings.lr, settings.weight_decay)
        settings.batches_done += 1
        inject_fault("batch", settings.batches_done)
        total += loss.detach().double()
        count += 1
        if progress is not None:
            read = count % max(loss_every, 1) == 0
            progress(len(batch), float(loss.item()) if read else None)
    return reduce_mean(float(total.item()) / max(count, 1), info, device)


def _loss(backbone: Backbone, ddp: torch.nn.Module | None, images: torch.Tensor,
          targets: torch.Tensor, settings: PassSettings, info: DistInfo,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cross-entropy of one batch and the top-layer rows it updates (None: all; with SGT the
    softmax is over the rows of the targets of every rank's batch plus random others)."""
    top = backbone.top_layer
    assert top is not None
    hidden = ddp(images) if ddp is not None else None
    if not settings.sgt:
        logits = backbone(images) if hidden is None else top(hidden)
        return F.cross_entropy(logits.float(), targets), None
    all_targets = targets
    if info.active:
        gathered: list[torch.Tensor | None] = [None] * info.world_size
        dist.all_gather_object(gathered, targets.cpu())
        all_targets = torch.cat([t for t in gathered if t is not None])
    rows = sgt_rows(all_targets.cpu(), top.out_features, settings.sgt, generator).to(images.device)
    hidden = backbone.head_input(images) if hidden is None else hidden
    logits = hidden @ top.weight[rows].T + top.bias[rows]
    return F.cross_entropy(logits.float(), torch.searchsorted(rows, targets)), rows
