"""The fine-tune base of the VOC protocols: shared config, `VOCFinetuneProtocol.run` (build ->
SGD -> the engine's resumable loop -> evaluate -> rows) and the seeded, resumable batches.

The VOC protocols are counted in SGD iterations (80k for VOC07 classification), not epochs,
and run for hours on a GPU, so the loop checkpoints model + optimizer + loop position +
RNG state atomically into the work dir every `every` iterations and resumes from there.

Resuming gives the same weights as an uninterrupted run (on CPU, bit for bit): the epoch
order comes from a generator seeded with (seed, epoch), each image's random augmentation
from a seed derived from (seed, stream, epoch, index) (`SeededView`), and the global RNG
that dropout and torchvision draw from is saved with the checkpoint.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from dcbench.core.bounds import MAX_COUNT, MAX_WORKERS, bounded
from dcbench.core.devices import resolve_device
from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.core.files import append_line, write_json
from dcbench.core.tracking import active
from dcbench.data.loader import Batch, DecodeReport
from dcbench.data.pipeline import image_loader, target_loader
from dcbench.data.samplers import GlobalBatchSlices
from dcbench.engine.resumable import LoopCheckpoint, ResumableLoop, StateBundle, status
from dcbench.engine.sharded import share_report
from dcbench.protocols.base import (
    Protocol,
    ProtocolConfig,
    Result,
    results_from_metrics,
    run_info,
)
from dcbench.protocols.voc.metrics import row_metrics
from dcbench.protocols.voc.nets import layer_label

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class VOCFinetuneConfig(ProtocolConfig):
    """What every VOC fine-tune shares: which layers train (`fc6-8` freezes the convs), the
    erratum switch (BN scales trained too), SGD momentum, checkpoint cadence, loader workers.
    Each protocol adds its own schedule, sizes and evaluation settings."""

    train_layers: Literal["fc6-8", "all"] = "fc6-8"
    train_bn_scales: bool = False
    momentum: float = bounded(0.9, ge=0, lt=1)
    checkpoint_every: int = bounded(1000, ge=1, le=MAX_COUNT)
    workers: int = bounded(4, ge=0, le=MAX_WORKERS)

    def resolved_iterations(self) -> int:
        """The number of fine-tuning iterations this config runs (a protocol whose count
        depends on other keys overrides it: voc07-cls), for plans and time estimates."""
        return int(getattr(self, "iterations"))  # noqa: B009 (each protocol declares it)


def item_seed(seed: int, stream: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one item of one pass (independent of workers/batching)."""
    state = np.random.SeedSequence([int(seed), int(stream), int(epoch), int(index)])
    return int(state.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class SeededView(torch.utils.data.Dataset):
    """`dataset[i]` with torch's RNG seeded from (seed, stream, epoch, i) during the call.

    Random transforms then draw the same crop for the same item of the same pass whatever
    the number of workers or where a resumed run restarts. The caller's RNG is restored.
    """

    def __init__(self, dataset: Any, seed: int, stream: int, epoch: int) -> None:
        self.dataset, self.seed, self.stream, self.epoch = dataset, seed, stream, epoch
        self.samples = getattr(dataset, "samples", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_seed(self, index: int) -> int:
        """The seed of item `index` (`data.pipeline` reproduces the view's draws with it)."""
        return item_seed(self.seed, self.stream, self.epoch, index)

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: transforms draw from it, CUDA dropout streams stay put
            torch.default_generator.manual_seed(
                item_seed(self.seed, self.stream, self.epoch, index))
            return self.dataset[index]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The dataset order of one training epoch (a seeded permutation, or 0..n-1)."""
    if not shuffle:
        return list(range(n))
    generator = torch.Generator().manual_seed(item_seed(seed, 0, epoch, 0))
    return torch.randperm(n, generator=generator).tolist()


def epoch_batches(dataset: Any, *, batch_size: int, seed: int, workers: int,
                  report: DecodeReport | None = None, shuffle: bool = True,
                  collate: Callable[[list], Any] | None = None, pipeline: str = "cpu",
                  device: torch.device | str = "cpu"
                  ) -> Callable[[int, int], Iterator[Any]]:
    """A factory `(epoch, first_batch) -> batches` for `train_iterations` (seeded, resumable);
    images read through `pipeline` (`data.pipeline`: `image_loader`, or `target_loader` with
    the protocol's `collate` when a target moves with the image)."""

    def batches(epoch: int, first_batch: int) -> Iterator[Any]:
        order = epoch_order(len(dataset), seed, epoch, shuffle)[first_batch * batch_size:]
        view = SeededView(dataset, seed, 1, epoch)
        # the loader draws its worker base seed from this generator, not the global RNG
        generator = torch.Generator().manual_seed(item_seed(seed, 2, epoch, first_batch))
        info = current()
        # torchrun: this rank's slice of every global batch (the items' crops are seeded per
        # item, so they are the crops one process draws)
        slices = (GlobalBatchSlices(order, batch_size, info.rank, info.world_size)
                  if info.active else None)
        if collate is None:
            loader = image_loader(view, batch_size, sampler=None if slices else order,
                                  workers=workers, generator=generator, pipeline=pipeline,
                                  device=device, batch_sampler=slices)
        else:  # the target moves with the image (masks, boxes): the protocol's collate
            loader = target_loader(view, batch_size, collate=collate,
                                   sampler=None if slices else order, workers=workers,
                                   generator=generator, pipeline=pipeline, device=device,
                                   batch_sampler=slices)
        for batch in loader:
            if report is not None and isinstance(batch, Batch):
                report.add(batch.bad, dataset)
            yield batch

    return batches


def sgd_param_groups(net: nn.Module, *, weight_decay: float, bias_lr_mult: float = 1.0,
                     bias_decay_mult: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters as SGD groups, with Caffe's per-parameter multipliers.

    Caffe scales the learning rate and weight decay of each parameter blob by its
    `lr_mult` / `decay_mult`; philkr/voc-classification `train_cls.py` gives Convolution and
    InnerProduct biases `lr_mult` 2 and `decay_mult` 1 (`setLR(t, 1, 2)`,
    `setDecay(t, 1, 1)`). Here the biases of `Conv2d` / `Linear` layers form a second group
    with `lr_mult` = `bias_lr_mult` and weight decay `weight_decay * bias_decay_mult`; every
    other parameter (weights, BN affine) keeps 1 and 1. With both multipliers at 1 there is
    one group, as a plain `SGD(params)`. `train_iterations` sets each group's lr to the
    scheduled lr times its `lr_mult`.
    """
    trainable = [p for p in net.parameters() if p.requires_grad]
    if bias_lr_mult == 1 and bias_decay_mult == 1:
        return [{"params": trainable, "lr_mult": 1.0, "weight_decay": weight_decay}]
    bias_ids = {id(m.bias) for m in net.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None}
    rest = [p for p in trainable if id(p) not in bias_ids]
    biases = [p for p in trainable if id(p) in bias_ids]
    groups = [{"params": rest, "lr_mult": 1.0, "weight_decay": weight_decay},
              {"params": biases, "lr_mult": float(bias_lr_mult),
               "weight_decay": weight_decay * float(bias_decay_mult)}]
    return [group for group in groups if group["params"]]


def step_lr(base_lr: float, iteration: int, stepsize: int, gamma: float) -> float:
    """Step decay: `base_lr * gamma ** (iteration // stepsize)` (the official x0.5 / 5000)."""
    return base_lr * gamma ** (iteration // max(int(stepsize), 1))


class ImageList(list):
    """Images of different sizes (detection, segmentation) as one batch's `images`: a list
    whose `.to(device)` moves every image, so the engine's inference loop can run on it."""

    def to(self, device: torch.device | str) -> list[torch.Tensor]:
        """The images on `device`, as a plain list."""
        return [image.to(device) for image in self]


def require_positive(config: Any, *names: str) -> None:
    """UserError naming the first config key that is not a positive number (None = unset)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise UserError(f"config key '{name}' must be positive, got {value!r}")


def _batch_stream(batches: Callable[[int, int], Iterable[Any]], position: dict[str, int],
                  steps: dict[str, int], desc: str) -> Iterator[Any]:
    """Batches from `position` (epoch, batch) on, across epochs; `position` follows along.

    An epoch that starts at its first batch and gives no usable step (`steps['n']` unchanged)
    means the training set has no decodable image.
    """
    while True:
        before, started_at = steps["n"], position["batch"]
        for batch in batches(position["epoch"], position["batch"]):
            position["batch"] += 1
            yield batch
        if steps["n"] == before and started_at == 0:
            raise UserError(f"{desc}: the training set yielded no usable batch")
        position["epoch"] += 1
        position["batch"] = 0


def train_iterations(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    batches: Callable[[int, int], Iterable[Any]],
    step: Callable[[Any], float | None],
    iterations: int,
    lr: float,
    stepsize: int,
    gamma: float,
    seed: int,
    checkpoint: LoopCheckpoint | None = None,
    every: int = 1000,
    progress: bool = False,
    desc: str = "fine-tune",
    log_path: Path | None = None,
    section: str = "finetune",
) -> dict[str, int]:
    """Run `iterations` optimizer steps of `step(batch)` in the engine's resumable loop.

    `batches(epoch, first_batch)` yields the batches of one epoch from `first_batch` on;
    `step` does forward/backward/update and returns the loss, or None for an empty batch
    (all images undecodable: not counted). The LR of every param group is set from
    `step_lr` (times the group's `lr_mult`, default 1) before each step. Runs under a
    forked RNG seeded by `seed`; the checkpoint
    (model, optimizer, position = iteration/epoch/batch, RNG) is the engine's format.
    Returns the final position. The loss and LR of every 20th iteration also go to the live
    view (section `section`, step = iterations done).
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        loop = ResumableLoop(iterations, state=StateBundle(model=model, optimizer=optimizer),
                             checkpoint=checkpoint, every=every, desc=desc, unit="it",
                             progress=progress, position={"epoch": 0, "batch": 0})
        loop.resume()
        active().start_section(section, loop.done + 1)
        model.train()
        steps = {"n": 0}
        stream = _batch_stream(batches, loop.position, steps, desc)
        try:
            for iteration in loop:
                current = step_lr(lr, iteration, stepsize, gamma)
                loss = None
                while loss is None:
                    batch = next(stream)
                    for group in optimizer.param_groups:
                        group["lr"] = current * group.get("lr_mult", 1.0)
                    loss = step(batch)
                if not np.isfinite(loss):
                    raise UserError(f"{desc}: the loss diverged (={loss}) at iteration "
                                    f"{iteration}; lower the learning rate")
                steps["n"] += 1
                loop.set_postfix(loss=f"{loss:.4f}", lr=f"{current:.2g}")
                done = iteration + 1
                if log_path is not None and (done % 20 == 0 or done == iterations):
                    append_line(log_path, f'{{"iteration": {done}, "loss": {loss:.6g}, '
                                          f'"lr": {current:.6g}, "time": {time.time():.3f}}}')
                if done % 20 == 0 or done == iterations:
                    active().scalars(section, done, {"train/loss": loss, "train/lr": current})
        finally:
            stream.close()
    return dict(loop.position)


@dataclasses.dataclass
class FinetuneTask:
    """What one VOC protocol hands the shared `run`: the network, its schedule and data,
    its SGD step and its evaluation (split -> metrics as fractions, plus extra JSON)."""

    net: nn.Module
    iterations: int
    lr: float
    stepsize: int
    batches: Callable[[int, int], Iterable[Any]]
    step: Callable[[Any, torch.optim.Optimizer], float | None]
    evaluate: Callable[[], tuple[dict[str, dict[str, float]], dict[str, Any]]]
    headline: str  # the metric logged per split: "map" or "miou"
    bias_lr_mult: float = 1.0  # Caffe lr_mult / decay_mult of conv/fc biases
    bias_decay_mult: float = 1.0  # (see sgd_param_groups)


class VOCFinetuneProtocol(Protocol):
    """The run shared by voc07-cls, voc07-det and voc12-seg: build (protocol) -> SGD over
    the trainable parameters -> the resumable loop -> evaluate (protocol) -> result rows."""

    DATASET: ClassVar[str] = "voc2007"
    POSITIVE_KEYS: ClassVar[tuple[str, ...]] = ("iterations", "batch_size", "checkpoint_every")
    # (and the checks of each protocol's own keys: `build` runs after these)

    @abc.abstractmethod
    def build(self, model: Backbone, data_dir: str | Path, config: Any, device: torch.device,
              report: DecodeReport, progress: bool) -> FinetuneTask:
        """The protocol's network, data, step and evaluation (see `FinetuneTask`)."""

    def run(self, model: Backbone, data_dir: str | Path, config: Any, *, run_id: str,
            device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Fine-tune (resumable from `work_dir/checkpoint.pt`), evaluate, return rows."""
        require_positive(config, *self.POSITIVE_KEYS)
        dev = resolve_device(device)
        report = DecodeReport()
        task = self.build(model, data_dir, config, dev, report, progress)
        groups = sgd_param_groups(task.net, weight_decay=config.weight_decay,
                                  bias_lr_mult=task.bias_lr_mult,
                                  bias_decay_mult=task.bias_decay_mult)
        optimizer = torch.optim.SGD(groups, lr=task.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        info = run_info(model, self.name, config, run_id=run_id, device=str(dev),
                        dataset=self.DATASET)
        checkpoint = (LoopCheckpoint(work_dir / "checkpoint.pt", info.config_hash, rng=True)
                      if work_dir else None)
        train_iterations(
            task.net, optimizer, batches=task.batches,
            step=lambda batch: task.step(batch, optimizer), iterations=task.iterations,
            lr=task.lr, stepsize=task.stepsize, gamma=config.lr_gamma, seed=config.seed,
            checkpoint=checkpoint, every=config.checkpoint_every, progress=progress,
            desc=f"{self.name} train", log_path=work_dir / "log.jsonl" if work_dir else None,
            section=self.name,
        )
        results, extra = task.evaluate()
        layer = layer_label(config.train_layers, config.train_bn_scales)
        rows: list[Result] = []
        for split, metrics in results.items():
            rows += results_from_metrics(info, row_metrics(metrics), split=split, layer=layer)
            active().scalars(self.name, task.iterations,
                             {f"{split}/{task.headline}": 100 * metrics[task.headline]})
            status(f"{self.name} [{layer}] {split} {task.headline}: "
                   f"{100 * metrics[task.headline]:.2f}")
        share_report(report)  # torchrun: every rank's undecodable files, listed once
        if report.count:
            status(report.summary())
        if work_dir:
            write_json(work_dir / "metrics.json", {**results, **extra})
        return rows
