"""Probe heads on frozen features: the heads, their schedules, a multi-head trainer, and the
resumable training phase (the engine's loop, one checkpoint per epoch).

All heads of a `ProbeSet` see the same batches, so one backbone forward serves every layer
and every weight-decay candidate (each head has its own optimizer and schedule, exactly as
separate runs of `eval_linear.py` would, up to the shared data order).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcbench.core.dist_eval import sum_over_ranks, sync_gradient_groups
from dcbench.core.faults import inject_fault
from dcbench.core.files import append_line
from dcbench.core.progress import progress_bar
from dcbench.core.sync_bn import syncs_batch_stats
from dcbench.core.tracking import active
from dcbench.engine.resumable import LoopCheckpoint, ResumableLoop, StateBundle, status
from dcbench.protocols.metrics import average_crops, top_hits
from dcbench.protocols.probe.item_track import ItemTrack

# (features by layer, labels) or (features, labels, rows): `rows` = ProbeSet.train_step's masks
Batches = Iterable[tuple[Any, ...]]


class LinearHead(nn.Module):
    """The linear probe: `Linear(D, C)` (dc2018 RegLog) or, with `bn`, an affine-free
    per-channel BatchNorm on the pooled (C, H, W) map before it (goyal2019: Goyal et al.'s
    SpatialBN / VISSL's BatchNorm2d without affine), then the Linear layer.

    Inputs are the flattened pooled features (N, C*H*W); `shape` = (C, H, W) says how to
    view them for the per-channel statistics ((D,) or None: D channels of 1x1).
    """

    def __init__(self, in_dim: int, num_classes: int, bn: bool = False,
                 shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.in_dim = in_dim
        shape = tuple(shape) if shape is not None else (in_dim,)
        self.shape = shape + (1, 1) if len(shape) == 1 else shape
        if math.prod(self.shape) != in_dim:
            raise ValueError(f"pooled shape {shape} does not hold {in_dim} features")
        self.norm = nn.BatchNorm2d(self.shape[0], affine=False) if bn else None
        self.linear = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x.view(x.shape[0], *self.shape)).flatten(1)
        return self.linear(x)


def lr_factor(schedule: str, lr0: float, weight_decay: float, iters_per_epoch: int,
              milestones: tuple[int, ...] = (), gamma: float = 0.1) -> Callable[[int], float]:
    """Multiplier of lr0 at global iteration t.

    `sqrt` (eval_linear.py, Bottou): 1 / sqrt(1 + lr0 * wd * t); `step`: gamma ** (number of
    milestones <= epoch); `constant`: 1.
    """
    if schedule == "sqrt":
        return lambda t: 1.0 / math.sqrt(1.0 + lr0 * weight_decay * t)
    if schedule == "step":
        return lambda t: gamma ** sum(t // max(iters_per_epoch, 1) >= m for m in milestones)
    if schedule == "constant":
        return lambda t: 1.0
    raise ValueError(f"unknown schedule {schedule!r}; valid: sqrt, step, constant")


@dataclasses.dataclass
class HeadSpec:
    """One head to train: a module reading feature `layer`, with its own lr and weight decay."""

    name: str
    layer: str
    module: nn.Module
    lr: float
    weight_decay: float


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    """SGD settings shared by the heads of a ProbeSet."""

    momentum: float = 0.9
    schedule: str = "sqrt"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


class ProbeSet(nn.Module):
    """Several heads trained side by side on the same batches, each with its own SGD."""

    def __init__(self, heads: list[HeadSpec], optim: OptimSettings, iters_per_epoch: int) -> None:
        super().__init__()
        self.specs = {h.name: h for h in heads}
        # ModuleDict keys cannot hold '.', which head names (e.g. 'wd=1e-07') may.
        self._keys = {h.name: f"head{i}" for i, h in enumerate(heads)}
        self._modules_by_key = nn.ModuleDict({self._keys[h.name]: h.module for h in heads})
        self.heads = {h.name: h.module for h in heads}
        self.optimizers = {}
        self.schedulers = {}
        for h in heads:
            opt = torch.optim.SGD(h.module.parameters(), lr=h.lr, momentum=optim.momentum,
                                  weight_decay=h.weight_decay)
            factor = lr_factor(optim.schedule, h.lr, h.weight_decay, iters_per_epoch,
                               optim.milestones, optim.gamma)
            self.optimizers[h.name] = opt
            self.schedulers[h.name] = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def train_step(self, feats: dict[str, torch.Tensor], labels: torch.Tensor,
                   rows: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """One SGD step for every head; returns the mean loss over the heads that stepped, as
        a 0-dim float64 tensor that is not read here (one process: on the features' device,
        so a step never waits for the device; the caller reads it once per epoch).

        `rows[name]` (a bool mask over the batch) restricts a head to those rows: it sees only
        them (forward, loss mean, BatchNorm statistics), so the other rows cannot reach its
        parameters. A mask on the CPU costs no device sync (its row count is known on the
        host); one on the device costs one per distinct mask. A head with no row in the
        (global) batch takes no SGD step; a masked one still advances its LR schedule:
        schedules count the iterations of the pass (one-pass selection, see
        probe/one_pass.py).

        Under torchrun `feats`/`labels` are this rank's slice of the global batch (maybe
        empty): every head's forward and backward run first, then `sync_heads` turns every
        gradient into the global batch's in one collective, whatever this rank's slice holds.
        A head with a global BatchNorm (`core.sync_bn`, goyal2019's head with
        `bn_sync: global`) also runs forward and backward on an empty slice, since its
        statistics are summed over the ranks (one more collective per such head)."""
        self.train()
        groups = []
        picked: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        masked: dict[tuple[str, int], torch.Tensor] = {}
        for name, head in self.heads.items():
            layer = self.specs[name].layer
            x, y, n = feats.get(layer), labels, int(labels.numel())
            mask = rows.get(name) if rows is not None else None
            if mask is not None and n:
                if id(mask) not in picked:  # heads sharing a mask share its rows
                    picked[id(mask)] = _mask_rows(mask, labels)
                index, y, n = picked[id(mask)]
                key = (layer, id(mask))
                if key not in masked:  # ... and, on one layer, the copy of those rows
                    masked[key] = x.index_select(0, index)
                x = masked[key]
            self.optimizers[name].zero_grad(set_to_none=True)
            loss = None
            if n:
                loss = nn.functional.cross_entropy(head(x), y)
                loss.backward()
            elif syncs_batch_stats(head):  # its BatchNorm is a collective: an empty
                if x is None:  # slice takes part (bn_sync global); no image, no features
                    x = torch.zeros((0, head.in_dim), device=y.device)
                head(x).sum().mul(0.0).backward()
            groups.append((name, n, loss))
        totals, values = sync_heads([self.heads[name] for name, _, _ in groups],
                                    [(n, loss) for _, n, loss in groups])
        stepped = []
        for (name, _, _), total, value in zip(groups, totals, values, strict=True):
            if not total:  # no row of this global batch for this head: no step
                if rows is not None and rows.get(name) is not None:
                    with warnings.catch_warnings():  # "scheduler before optimizer": wanted
                        warnings.simplefilter("ignore", UserWarning)
                        self.schedulers[name].step()
                continue
            self.optimizers[name].step()
            self.schedulers[name].step()
            stepped.append(value)
        return _mean(stepped, labels.device)

    @torch.no_grad()
    def logits(self, feats: dict[str, torch.Tensor], names: Iterable[str] | None = None
               ) -> dict[str, torch.Tensor]:
        """Per-head logits in eval mode (of the heads in `names`, default all)."""
        self.eval()
        names = self.heads if names is None else names
        return {name: self.heads[name](feats[self.specs[name].layer]) for name in names}

    def checkpoint_state(self) -> StateBundle:
        """Weights, optimizer and scheduler states, as one `Stateful` for the resumable loop."""
        return StateBundle(heads=self._modules_by_key,
                           optimizers=StateBundle(**self.optimizers),
                           schedulers=StateBundle(**self.schedulers))


def sync_heads(heads: list[nn.Module], rows_losses: list[tuple[int, torch.Tensor | None]]
               ) -> tuple[list[int], list[torch.Tensor | None]]:
    """The one distributed hook of probe training, once per step for every head: after each
    rank's backward of every head on its rows, all-reduce the gradients (weighted by rows,
    so they are the global batch's mean loss gradient, as DDP's average is for equal
    slices) and take rank 0's BatchNorm statistics (DDP's `broadcast_buffers`), all in one
    collective and one host read (`core.dist_eval.sync_gradient_groups`). Returns per head
    (global rows, global mean loss or None); in one process (rows, loss) unchanged, with no
    collective and no host read."""
    groups = [(list(head.parameters()), n, loss)
              for head, (n, loss) in zip(heads, rows_losses, strict=True)]
    buffers = [buf for head in heads for buf in head.buffers()]
    return sync_gradient_groups(groups, buffers)


def _to_host(scores: dict[str, torch.Tensor], labels: torch.Tensor
             ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every head's scores and the labels on the CPU in one copy (one device sync a batch;
    the top-k stays on the CPU, so its tie rule is the one-process CPU one everywhere)."""
    parts = [*scores.values(), labels.to(torch.float64)]
    flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts]).cpu()
    out, offset = {}, 0
    for name, value in scores.items():
        out[name] = flat[offset:offset + value.numel()].view(value.shape).to(value.dtype)
        offset += value.numel()
    return out, flat[offset:].to(labels.dtype)


def _mask_rows(mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(row index on the labels' device, the kept labels, their count) of a bool mask; a
    host mask is resolved on the host, so the count needs no device sync."""
    index = mask.nonzero().squeeze(1)
    n = int(index.numel())
    index = index.to(labels.device, non_blocking=True)
    return index, labels.index_select(0, index), n


def _mean(values: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Sum / count of 0-dim float64 tensors, added in order (Python's `sum` of their floats,
    without reading them), where they are; 0 on `device` with none."""
    if not values:
        return torch.zeros((), dtype=torch.float64, device=device)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total / len(values)


@torch.no_grad()
def evaluate(probes: ProbeSet, batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor, int]],
             names: Iterable[str] | None = None,
             hits: dict[str, list[torch.Tensor]] | None = None) -> dict[str, dict[str, float]]:
    """Top-1/top-5 (percent) per head (of `names`, default all). Batches carry n_crops; crops
    are softmax-averaged. `hits`, when given, receives per head the per-item (top-1 hit,
    top-5 hit) pairs ((n, 2) bool) of this process's items, batch by batch (under torchrun:
    its shard)."""
    names = list(probes.heads if names is None else names)
    counts: dict[str, dict[int, int]] = {name: {1: 0, 5: 0} for name in names}
    if hits is not None:  # every head's entry, even on a rank whose shard is empty
        for name in names:
            hits.setdefault(name, [])
    total = 0
    num_classes = 0
    for feats, labels, n_crops in batches:
        scores = {}
        for name, logits in probes.logits(feats, names).items():
            num_classes = logits.shape[1]
            scores[name] = logits if n_crops == 1 else average_crops(
                logits.view(-1, n_crops, logits.shape[1]))
        scores, labels = _to_host(scores, labels)  # one device read per batch, not per head
        for name, head_scores in scores.items():
            top = top_hits(head_scores, labels, 5)
            counts[name][1] += int(top[:, 0].sum())
            counts[name][5] += int(top.any(dim=1).sum())
            if hits is not None:
                hits.setdefault(name, []).append(torch.stack([top[:, 0], top.any(dim=1)], 1))
        total += int(labels.numel())
    # torchrun: each rank evaluated its shard; the counts of every image are summed once
    names = list(counts)
    summed = sum_over_ranks([total, num_classes > 5] + [counts[n][k] for n in names
                                                         for k in (1, 5)])
    total, num_classes = int(summed[0]), 6 if summed[1] else num_classes
    for i, name in enumerate(names):
        counts[name] = {1: int(summed[2 + 2 * i]), 5: int(summed[3 + 2 * i])}
    out = {}
    for name, c in counts.items():
        metrics = {"top1": 100.0 * c[1] / max(total, 1)}
        if num_classes > 5:
            metrics["top5"] = 100.0 * c[5] / max(total, 1)
        out[name] = metrics
    return out


def train_phase(
    probes: ProbeSet,
    *,
    epochs: int,
    train_batches: Callable[[int], Batches],
    evaluate_fn: Callable[[], dict[str, dict[str, float]]],
    work_dir: Path | None,
    phase: str,
    progress: bool,
    batches_per_epoch: int | None = None,
    track: ItemTrack | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Train for `epochs`, evaluating after each, in the engine's resumable loop (checkpoint
    `work_dir/checkpoints/<phase>.pt` every epoch; a restarted run resumes from it). The
    epoch bar and, with `batches_per_epoch`, a batch bar inside it show totals and ETAs.

    Returns the per-head history: history[head][epoch] = {'top1': .., 'top5': ..}. With
    `track` (whose `sink()` `evaluate_fn` fills), the per-item hits of the reported epochs are
    checkpointed with the loop and left in `track.result[head]`.
    """
    ckpt = LoopCheckpoint(work_dir / "checkpoints" / f"{phase}.pt") if work_dir else None
    loop = ResumableLoop(epochs, state=probes.checkpoint_state(), checkpoint=ckpt,
                         desc=f"{phase} phase", unit="epoch", progress=progress,
                         extra={"history": {name: [] for name in probes.heads}})
    loop.resume()
    active().start_section(phase, loop.done + 1)  # TensorBoard steps = 1-based epochs
    history: dict[str, list[dict[str, float]]] = loop.extra["history"]
    for epoch in loop:
        inject_fault("probe-epoch", epoch)  # crash tests of resume (no-op without the env)
        bar = progress_bar(batches_per_epoch, f"{phase} epoch {epoch + 1}/{epochs}",
                           unit="batch", enabled=progress)
        summed, steps = None, 0  # the step losses stay on the device: read once an epoch
        for batch in train_batches(epoch):  # (feats, labels) or (feats, labels, rows)
            step_loss = probes.train_step(*batch)
            summed = step_loss if summed is None else summed + step_loss
            steps += 1
            bar.update(1)
        bar.close()
        loss = float(summed) / steps if steps else 0.0
        metrics = evaluate_fn()
        for name, values in metrics.items():
            history[name].append(values)
        active().scalars(phase, epoch + 1, phase_scalars(probes, phase, loss, metrics))
        if track is not None:
            track.update(loop.extra, epoch, metrics)
        best = max(metrics.items(), key=lambda kv: kv[1]["top1"])
        loop.set_postfix(loss=f"{loss:.3f}", top1=f"{best[1]['top1']:.2f}")
        status(f"{phase} epoch {epoch + 1}/{epochs}: loss {loss:.3f}, best head {best[0]} "
               f"top1 {best[1]['top1']:.2f}")
        if work_dir is not None:
            append_line(work_dir / "log.jsonl", json.dumps({
                "phase": phase, "epoch": epoch + 1, "loss": loss, "eval": metrics,
                "time": time.time()}))  # `dcbench status`: time per epoch, ETA
    if track is not None:
        track.result = {name: ItemTrack.read(loop.extra, name) for name in probes.heads}
        track.extra = loop.extra  # every kept epoch, for a choice made after the loop
    return history


def head_tag(spec: HeadSpec) -> str:
    """A head's name in TensorBoard / W&B tags: `LAYER_lrLR_wdWD` (TensorBoard keeps only
    letters, digits, '-', '_', '.' and '/')."""
    return f"{spec.layer}_lr{spec.lr:g}_wd{spec.weight_decay:g}"


def phase_scalars(probes: ProbeSet, phase: str, loss: float,
                  metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """One epoch of a phase as tags: `loss` and `SPLIT/METRIC/HEAD` (SPLIT = heldout for the
    selection heads, val for the final ones; the one-pass phase holds both, its selection
    heads named `select:...`)."""
    values = {"loss": loss}
    for name, head_metrics in metrics.items():
        selection = phase == "select" or name.startswith("select:")
        split = "heldout" if selection else "val"
        for metric, value in head_metrics.items():
            values[f"{split}/{metric}/{head_tag(probes.specs[name])}"] = value
    return values


def best_epoch(curve: list[dict[str, float]], metric: str = "top1") -> int:
    """Index of the best epoch (the earliest among ties)."""
    values = [point[metric] for point in curve]
    return max(range(len(values)), key=lambda i: (values[i], -i))
