"""The iteration-based fine-tuning loop shared by the VOC protocols, resumable at any step.

The VOC protocols are counted in SGD iterations (80k for VOC07 classification), not epochs,
and run for hours on a GPU, so the loop checkpoints model + optimizer + loop position +
RNG state atomically into the work dir every `every` iterations and resumes from there.

Resuming gives the same weights as an uninterrupted run (on CPU, bit for bit): the epoch
order comes from a generator seeded with (seed, epoch), each image's random augmentation
from a seed derived from (seed, stream, epoch, index) (`SeededView`), and the global RNG
that dropout and torchvision draw from is saved with the checkpoint.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcbench.core.errors import UserError
from dcbench.core.files import append_line, write_with
from dcbench.data.loader import Batch, DecodeReport, make_loader
from dcbench.models.checkpoints import restore_state
from dcbench.protocols.base import ProtocolConfig


@dataclasses.dataclass
class VOCFinetuneConfig(ProtocolConfig):
    """What every VOC fine-tune shares: which layers train (`fc6-8` freezes the convs), the
    erratum switch (BN scales trained too), SGD momentum, checkpoint cadence, loader workers.
    Each protocol adds its own schedule, sizes and evaluation settings."""

    train_layers: Literal["fc6-8", "all"] = "fc6-8"
    train_bn_scales: bool = False
    momentum: float = 0.9
    checkpoint_every: int = 1000
    workers: int = 4


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
                  collate: Callable[[list], Any] | None = None
                  ) -> Callable[[int, int], Iterator[Any]]:
    """A factory `(epoch, first_batch) -> batches` for `train_iterations` (seeded, resumable)."""

    def batches(epoch: int, first_batch: int) -> Iterator[Any]:
        order = epoch_order(len(dataset), seed, epoch, shuffle)[first_batch * batch_size:]
        view = SeededView(dataset, seed, 1, epoch)
        # the loader draws its worker base seed from this generator, not the global RNG
        generator = torch.Generator().manual_seed(item_seed(seed, 2, epoch, first_batch))
        if collate is None:
            loader = make_loader(view, batch_size, sampler=order, workers=workers,
                                 generator=generator)
        else:
            loader = torch.utils.data.DataLoader(view, batch_size=batch_size, sampler=order,
                                                 num_workers=workers, collate_fn=collate,
                                                 generator=generator)
        for batch in loader:
            if report is not None and isinstance(batch, Batch):
                report.add(batch.bad, dataset)
            yield batch

    return batches


def step_lr(base_lr: float, iteration: int, stepsize: int, gamma: float) -> float:
    """Step decay: `base_lr * gamma ** (iteration // stepsize)` (the official x0.5 / 5000)."""
    return base_lr * gamma ** (iteration // max(int(stepsize), 1))


@dataclasses.dataclass
class Position:
    """Where the loop is: optimizer steps done, current epoch, next batch within it."""

    iteration: int = 0
    epoch: int = 0
    batch: int = 0


class Checkpoint:
    """`work_dir/checkpoint.pt`: model, optimizer, position and RNG, written atomically.

    A checkpoint written under another config (different `config_hash`) is refused, so a
    resumed run never silently mixes two settings.
    """

    def __init__(self, path: Path, config_hash: str) -> None:
        self.path = Path(path)
        self.config_hash = config_hash

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, position: Position) -> None:
        """Write the full training state (atomic: a crash leaves the previous checkpoint)."""
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "position": dataclasses.asdict(position),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config_hash": self.config_hash,
        }
        write_with(self.path, lambda tmp: torch.save(state, tmp))

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> Position | None:
        """Restore a saved state into `model`/`optimizer`; None when there is no checkpoint."""
        if not self.path.is_file():
            return None

        def apply(state: dict) -> Position:
            if state.get("config_hash") != self.config_hash:
                raise UserError(
                    f"{self.path} was written with a different protocol config; "
                    "use a fresh --work-dir (or the same settings) to resume"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            if state["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            return Position(**state["position"])

        return restore_state(self.path, apply)


def require_positive(config: Any, *names: str) -> None:
    """UserError naming the first config key that is not a positive number."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise UserError(f"config key '{name}' must be positive, got {value!r}")


def log(message: str) -> None:
    """Progress lines go to stderr, so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


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
    checkpoint: Checkpoint | None = None,
    every: int = 1000,
    progress: bool = False,
    desc: str = "fine-tune",
    log_path: Path | None = None,
) -> Position:
    """Run `iterations` optimizer steps of `step(batch)`, checkpointing and resuming.

    `batches(epoch, first_batch)` yields the batches of one epoch from `first_batch` on;
    `step` does forward/backward/update and returns the loss, or None for an empty batch
    (all images undecodable: not counted). The LR of every param group is set from
    `step_lr` before each step. Runs under a forked RNG seeded by `seed`.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        position = (checkpoint.load(model, optimizer) if checkpoint else None) or Position()
        if position.iteration:
            log(f"{desc}: resuming at iteration {position.iteration}/{iterations}")
        bar = tqdm(total=iterations, initial=position.iteration, desc=desc,
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        model.train()
        while position.iteration < iterations:
            steps_this_epoch, started_at = 0, position.batch
            for batch in batches(position.epoch, position.batch):
                position.batch += 1
                current = step_lr(lr, position.iteration, stepsize, gamma)
                for group in optimizer.param_groups:
                    group["lr"] = current
                loss = step(batch)
                if loss is None:
                    continue
                if not np.isfinite(loss):
                    raise UserError(f"{desc}: the loss diverged (={loss}) at iteration "
                                    f"{position.iteration}; lower the learning rate")
                steps_this_epoch += 1
                position.iteration += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{current:.2g}")
                if log_path is not None and (position.iteration % 20 == 0
                                             or position.iteration == iterations):
                    append_line(log_path, f'{{"iteration": {position.iteration}, '
                                          f'"loss": {loss:.6g}, "lr": {current:.6g}}}')
                done = position.iteration >= iterations
                if checkpoint and (position.iteration % every == 0 or done):
                    checkpoint.save(model, optimizer, position)
                if done:
                    break
            else:
                if steps_this_epoch == 0 and started_at == 0:
                    raise UserError(f"{desc}: the training set yielded no usable batch")
                position.epoch += 1
                position.batch = 0
        bar.close()
    return position
