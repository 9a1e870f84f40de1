"""The one inference loop: a model over a dataset, batch by batch, robust to bad files.

Every place that runs a network over images (clustering features in training, frozen
features and evaluation passes in protocols, the figures in viz) goes through
`inference_batches`: it moves each batch to the device, runs `fn` under `torch.no_grad`,
records undecodable files in the `DecodeReport` (they never stop the loop) and advances a
progress bar counted in images. Callers keep only what they aggregate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

from dcbench.core.progress import progress_bar
from dcbench.data.loader import Batch, DecodeReport

T = TypeVar("T")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module.eval()` for the block, then the previous train/eval mode again."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def inference_batches(
    loader: Iterable[Batch],
    fn: Callable[[torch.Tensor], T],
    *,
    device: torch.device | str = "cpu",
    dataset: Any = None,
    report: DecodeReport | None = None,
    progress: Callable[[int], Any] | bool | None = None,
    desc: str = "features",
    total: int | None = None,
    keep_empty: bool = False,
) -> Iterator[tuple[Batch, T | None]]:
    """Yield `(batch, fn(images on device))` for every batch that has decodable images
    (with `keep_empty`, also `(batch, None)` for a batch without any: the ranks of a
    distributed eval step together, whatever their slice of a global batch holds).

    Undecodable items (listed in `batch.bad`) go to `report` (resolved against `dataset`).
    `progress` is a callable taking the number of images done, or True for a bar of
    `total` images (default: the loader's dataset length).
    """
    bar = None
    if progress is True:
        if total is None:
            total = len(getattr(loader, "dataset", ()) or ()) or None
        bar = progress_bar(total, desc, unit="img")
        step = bar.update
    elif callable(progress):
        step = progress
    else:
        step = None
    try:
        for batch in loader:
            if report is not None and batch.bad:
                report.add(batch.bad, dataset)
            if len(batch):
                with torch.no_grad():  # only around fn: the caller's grad mode is its own
                    images = batch.images
                    out = fn(images.to(device, non_blocking=True)  # pinned: no host wait
                             if isinstance(images, torch.Tensor) else images.to(device))
                yield batch, out
            elif keep_empty:
                yield batch, None
            if step is not None:
                step(len(batch) + len(batch.bad))
    finally:
        if bar is not None:
            bar.close()
