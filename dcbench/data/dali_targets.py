"""DALI batches for datasets whose target moves with the image (voc12-seg, voc07-det).

`DaliTargetLoader` is the `dali_pipeline.DaliLoader` for a `planned_targets.PlannedTargets`
dataset: the DataLoader workers read the bytes, draw the geometry and transform the target
(mask or boxes) by it; here DALI decodes the JPEGs (full images of any size: the graph
returns one tensor per image), a batch DALI rejects is redone by PIL with the same draws
(`DaliLoader._decode`), and every batch of `(image | None, target, index)` items goes
through the protocol's own collate (`collate_segmentation`, `collate_detection`), exactly
what the PIL loader yields. No prefetch thread: the images differ in size and the
protocols consume them one by one, and the draws stay where the PIL path makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from dcbench.data.crop_plan import CropPlan
from dcbench.data.dali_pipeline import DaliLoader
from dcbench.data.planned_images import Encoded
from dcbench.data.planned_targets import keep_items


class DaliTargetLoader(DaliLoader):
    """Batches `collate(items)` of a `PlannedTargets` dataset (or a Subset of one), images
    decoded by DALI; order, draws and targets are the PIL path's."""

    def __init__(self, dataset: Dataset, batch_size: int, plan: CropPlan, *,
                 collate: Callable[[list[tuple[Any, Any, int]]], Any],
                 device: torch.device | str = "cpu",
                 sampler: Sampler | Iterable[int] | None = None, workers: int = 0,
                 generator: torch.Generator | None = None,
                 batch_sampler: Sampler[list[int]] | None = None) -> None:
        super().__init__(dataset, batch_size, plan, device=device,
                         sampler=sampler,  # type: ignore[arg-type]
                         workers=workers, generator=generator, prefetch=0,
                         batch_sampler=batch_sampler, collate_fn=keep_items)
        self.collate = collate

    def _prepare(self, planned: Any) -> Any:
        items: list[tuple[Any, Any, int]] = planned
        jpeg = [k for k, item in enumerate(items) if isinstance(item[0], Encoded)]
        images = [item[0] for item in items]
        if jpeg:
            decoded = self._decode([items[k][0] for k in jpeg], [int(items[k][2]) for k in jpeg])
            for k, image in zip(jpeg, decoded, strict=True):
                images[k] = image
        return self.collate([(image, item[1], item[2])
                             for image, item in zip(images, items, strict=True)])

    def __iter__(self) -> Iterator[Any]:
        for planned in self.loader:
            yield self._prepare(planned)


__all__ = ["DaliTargetLoader"]
