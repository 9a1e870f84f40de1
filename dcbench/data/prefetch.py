"""Prepare batch i+1 while step i runs (issue 18): a background thread with its own CUDA stream.

`Prefetcher(source, prepare, device)` iterates `source` in a daemon thread and applies
`prepare` (decode, crop, copy to the device) to each item, keeping up to `depth` prepared
items ahead of the consumer. On CUDA the thread works on a side stream and every item
carries an event; the consumer's stream waits on it (and the tensors are recorded on the
consumer's stream for the caching allocator), so nothing blocks the host. Order is the
source's order (one producer), so seeded pipelines stay reproducible. An exception in the
thread (a DataLoader timeout included) is re-raised in the consumer; a consumer that stops
early stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import torch

S = TypeVar("S")
T = TypeVar("T")
_DONE = object()
_POLL_S = 0.5


def _tensors(item: Any) -> Iterator[torch.Tensor]:
    """The tensors directly inside `item` (a tensor, or a tuple/list/NamedTuple of them)."""
    if isinstance(item, torch.Tensor):
        yield item
    elif isinstance(item, tuple | list):
        for part in item:
            if isinstance(part, torch.Tensor):
                yield part


class Prefetcher(Generic[S, T]):
    """Iterate `prepare(x) for x in source`, computed `depth` items ahead in a thread."""

    def __init__(self, source: Iterable[S], prepare: Callable[[S], T],
                 device: torch.device | str = "cpu", depth: int = 2) -> None:
        self.source = source
        self.prepare = prepare
        self.device = torch.device(device)
        self.depth = max(1, depth)

    def __iter__(self) -> Iterator[T]:
        cuda = self.device.type == "cuda"
        items: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()
        index = (self.device.index if self.device.index is not None
                 else torch.cuda.current_device()) if cuda else -1
        consumer_stream = torch.cuda.current_stream(index) if cuda else None

        def put(entry: Any) -> bool:
            while not stop.is_set():
                try:
                    items.put(entry, timeout=_POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            if cuda:  # the current device is per thread (cuda:1 under torchrun's rank 1)
                torch.cuda.set_device(index)
            side = torch.cuda.Stream(index) if cuda else None
            try:
                for raw in self.source:
                    if stop.is_set():
                        return
                    if side is None:
                        entry: Any = (self.prepare(raw), None)
                    else:
                        with torch.cuda.stream(side):
                            prepared = self.prepare(raw)
                            event = torch.cuda.Event()
                            event.record(side)
                        entry = (prepared, event)
                    if not put(entry):
                        return
                put(_DONE)
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(exc)

        thread = threading.Thread(target=produce, name="dcbench-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    entry = items.get(timeout=_POLL_S)
                except queue.Empty:
                    if not thread.is_alive() and items.empty():
                        raise RuntimeError("prefetch thread ended without a result") from None
                    continue
                if entry is _DONE:
                    return
                if isinstance(entry, BaseException):
                    raise entry
                prepared, event = entry
                if event is not None and consumer_stream is not None:
                    consumer_stream.wait_event(event)
                    for t in _tensors(prepared):
                        if t.is_cuda:
                            t.record_stream(consumer_stream)
                yield prepared
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    items.get_nowait()
                except queue.Empty:
                    thread.join(_POLL_S)


__all__ = ["Prefetcher"]
