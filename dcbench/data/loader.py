"""DataLoader plumbing: batches that drop undecodable samples and say which ones they were."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils import data as torch_data
from torch.utils.data import Dataset, Sampler

from dcbench.core.errors import LoaderWorkerDied

# A worker that delivers nothing for this long is stuck (a dead feeder thread, a hung file
# system): the loader raises instead of waiting forever (issue 18). DCBENCH_LOADER_TIMEOUT
# (seconds) overrides it for very slow storage.
LOADER_TIMEOUT_S = 600.0


def loader_timeout(workers: int) -> float:
    """The DataLoader `timeout` for `workers` processes: 0 (unused) in-process, otherwise
    `DCBENCH_LOADER_TIMEOUT` or `LOADER_TIMEOUT_S` seconds, so no loop can hang silently."""
    if workers <= 0:
        return 0.0
    return float(os.environ.get("DCBENCH_LOADER_TIMEOUT", LOADER_TIMEOUT_S))


WORKER_DIED = ("a data loader worker process died ({why}; e.g. the OOM killer or kill -9): "
               "rerun the same command with --resume to continue from the last checkpoint")


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Hold SIGINT while worker processes fork: a KeyboardInterrupt raised inside an at-fork
    hook (logging registers one) is "ignored" by Python and the run would go on; the signal
    is recorded here instead and acted on once the workers exist."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


class DataLoader(torch_data.DataLoader):
    """torch's DataLoader, where Ctrl-C always stops the run (even while workers fork) and a
    killed worker is one line saying so and how to resume, not a RuntimeError traceback."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.num_workers == 0:
            return super().__iter__()
        with _sigint_deferred() as pending:
            iterator = super().__iter__()
        if pending:
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            raise KeyboardInterrupt
        return _worker_deaths_explained(iterator)


def _worker_deaths_explained(iterator: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from iterator
    except RuntimeError as err:
        text = str(err)
        if "DataLoader worker" not in text or isinstance(err, LoaderWorkerDied):
            raise
        found = re.search(r"pid(?:\(s\))? ([\d, ]+)\) "
                          r"(is killed by signal: [^.\n]+|exited unexpectedly)", text)
        why = f"pid {found.group(1)} {found.group(2)}" if found else text.splitlines()[0][:120]
        raise LoaderWorkerDied(WORKER_DIED.format(why=why)) from None


class Batch(NamedTuple):
    """A collated batch. `bad` holds the dataset indices dropped because they did not decode.

    When every sample of a batch is bad, `images` is an empty tensor (`len(batch) == 0`).
    """

    images: torch.Tensor
    labels: torch.Tensor | list[Any]  # a list only for dict targets (VOC detection)
    indices: torch.Tensor
    bad: list[int]

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.indices.numel())


def _stack_labels(labels: Sequence[Any]) -> torch.Tensor | list[Any]:
    """Ints -> int64 vector; arrays/tensors -> stacked; anything else (dicts) -> a list."""
    if labels and isinstance(labels[0], dict):
        return list(labels)
    if labels and isinstance(labels[0], torch.Tensor):
        return torch.stack(list(labels))
    if labels and isinstance(labels[0], np.ndarray):
        return torch.from_numpy(np.stack(labels))
    return torch.as_tensor(list(labels), dtype=torch.int64)


def collate_skip_bad(items: Sequence[tuple[Any, Any, int]]) -> Batch:
    """Collate `(image|None, label, index)` triples into a `Batch`, dropping `None` images."""
    good = [item for item in items if item[0] is not None]
    bad = [int(item[2]) for item in items if item[0] is None]
    if not good:
        return Batch(
            torch.empty(0),
            torch.empty(0, dtype=torch.int64),
            torch.empty(0, dtype=torch.int64),
            bad,
        )
    images = torch.stack([item[0] for item in good])
    labels = _stack_labels([item[1] for item in good])
    indices = torch.as_tensor([int(item[2]) for item in good], dtype=torch.int64)
    return Batch(images, labels, indices, bad)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    sampler: Sampler | Iterable[int] | None = None,
    workers: int = 0,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    batch_sampler: Sampler[list[int]] | None = None,
) -> DataLoader:
    """A DataLoader over `(image|None, label, index)` datasets yielding `Batch`es.

    Pass a seeded `generator` for reproducible shuffling and worker seeds. A
    `batch_sampler` (e.g. `samplers.GlobalBatchSlices` under torchrun) replaces
    `batch_size`, `shuffle`, `sampler` and `drop_last`.
    """
    if sampler is not None and shuffle:
        raise ValueError("make_loader: pass either shuffle=True or a sampler, not both")
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                          collate_fn=collate_skip_bad, generator=generator,
                          pin_memory=pin_memory, persistent_workers=False,
                          timeout=loader_timeout(workers))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip_bad,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
        timeout=loader_timeout(workers),
    )


class DecodeReport:
    """Counts the files that could not be decoded during a pass, for the end-of-run summary."""

    def __init__(self) -> None:
        self._bad: dict[int, str] = {}

    def add(self, bad_indices: Iterable[int], dataset: Any) -> None:
        """Record `bad_indices` (from `Batch.bad`) with their file paths from `dataset`."""
        samples = getattr(dataset, "samples", None)
        for index in bad_indices:
            index = int(index)
            path = str(samples[index][0]) if samples is not None else f"#{index}"
            self._bad[index] = path

    @property
    def count(self) -> int:
        """Number of distinct files skipped."""
        return len(self._bad)

    @property
    def entries(self) -> dict[int, str]:
        """{dataset index: path} of the skipped files (what ranks exchange under torchrun)."""
        return dict(self._bad)

    def merge(self, entries: dict[int, str]) -> None:
        """Add another report's `entries` (a file already listed stays listed once)."""
        self._bad.update({int(k): str(v) for k, v in entries.items()})

    @property
    def files(self) -> list[str]:
        """Skipped file paths, in dataset order."""
        return [self._bad[i] for i in sorted(self._bad)]

    def summary(self, limit: int = 10) -> str:
        """One line (plus up to `limit` paths) for logs: how many files were skipped."""
        if not self._bad:
            return "all images decoded"
        files = self.files
        lines = [f"skipped {len(files)} undecodable image(s):"]
        lines += [f"  {path}" for path in files[:limit]]
        if len(files) > limit:
            lines.append(f"  ... and {len(files) - limit} more")
        return "\n".join(lines)
