"""The DALI backend of the input pipeline: decode + crop + resize + flip + normalise a batch.

DataLoader workers produce `PlannedBatch`es (`data.planned_images`: JPEG bytes with the crops
dcbench drew, or tensors the PIL path finished for the other files). Here the JPEGs go
through one DALI graph fed by `fn.external_source`:

    decoders.image_slice(bytes, roi)      decode only the region (EXIF orientation applied;
                                          device="cpu" here, "mixed" on CUDA: nvJPEG / the
                                          hardware JPEG decoder)
    resize(size=(h, w), antialias)        the resize of the torchvision pipeline (two
                                          chained stages when the plan has two, e.g. the
                                          SVM squash: uint8 between them, as torchvision)
    slice(view) x views                   the crop windows (1, or 10 for TenCrop)
    crop_mirror_normalize(mirror, mean, std, CHW float32)

and the results (one tensor per image: full images of different sizes share a run) are
merged with the PIL-finished items in batch order into a `Batch` (the loaders' contract;
`data.dali_targets` hands them to a protocol's collate instead). DALI draws nothing:
order, crops and labels are dcbench's. If DALI raises on a batch (a file it rejects after
the sniff let it through), the graph is rebuilt and every JPEG of that batch is decoded by
PIL and rendered with `crop_plan.apply_draws` (the same crops); a file PIL cannot decode
either is reported in `Batch.bad`: no batch is lost silently. `fallbacks` counts those
files.

DALI is an optional extra (`pip install dcbench[dali]`): it is imported lazily, and
`dali_available()` answers without importing it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, Subset
from torchvision.transforms.v2 import functional as F

from dcbench.data.crop_plan import CropPlan, Draws, apply_draws
from dcbench.data.decode import decode_image
from dcbench.data.loader import Batch, DataLoader, loader_timeout
from dcbench.data.planned_images import Encoded, PlannedBatch, collate_planned
from dcbench.data.prefetch import Prefetcher

log = logging.getLogger(__name__)


def dali_available() -> bool:
    """True when NVIDIA DALI is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


def dali_version() -> str | None:
    """The installed DALI version (imports it), or None."""
    if not dali_available():
        return None
    import nvidia.dali  # lazy: optional extra

    return str(nvidia.dali.__version__)


def _resizes(plan: CropPlan) -> int:
    """How many resampling steps the plan chains (0, 1 or 2: `Draws.first`)."""
    return sum(type(step).__name__ in ("Resize", "RandomResizedCrop") for step in plan.steps)


class DaliGraph:
    """One DALI pipeline for a plan: feed a list of `Encoded`, get normalised crops."""

    def __init__(self, plan: CropPlan, batch_size: int, device: torch.device,
                 threads: int, resize: bool | None = None) -> None:
        self.plan, self.batch_size, self.device = plan, batch_size, device
        # resize: None = when the plan has a resizing step (per-item plans say True)
        self.resize = _resizes(plan) > 0 if resize is None else resize
        self.chain = self.resize and _resizes(plan) == 2  # two resizes: `Draws.first`
        self.pipe = self._build(threads)

    def _build(self, threads: int) -> Any:
        from nvidia.dali import fn, pipeline_def, types  # lazy: optional extra

        cuda = self.device.type == "cuda"
        plan = self.plan
        mean = [255.0 * m for m in plan.mean]
        std = [255.0 * s for s in plan.std]

        @pipeline_def(batch_size=self.batch_size, num_threads=threads,
                      device_id=(self.device.index or 0) if cuda else None,
                      exec_dynamic=True, prefetch_queue_depth=1)
        def graph() -> Any:
            data = fn.external_source(name="data", dtype=types.UINT8)
            anchor = fn.external_source(name="roi_anchor", dtype=types.INT32)
            shape = fn.external_source(name="roi_shape", dtype=types.INT32)
            images = fn.decoders.image_slice(data, anchor, shape, axis_names="HW",
                                             device="mixed" if cuda else "cpu",
                                             output_type=types.RGB)
            if self.chain:  # the first of two resamplings, uint8 out (as torchvision)
                first = fn.external_source(name="first", dtype=types.FLOAT)
                images = fn.resize(images, size=first, antialias=True,
                                   interp_type=types.INTERP_LINEAR)
            if self.resize:
                size = fn.external_source(name="size", dtype=types.FLOAT)
                images = fn.resize(images, size=size, antialias=True,
                                   interp_type=types.INTERP_LINEAR)
            outs = []
            for k in range(plan.n_views):
                view = fn.slice(images, fn.external_source(name=f"anchor{k}", dtype=types.INT32),
                                fn.external_source(name=f"shape{k}", dtype=types.INT32),
                                axis_names="HW")
                mirror = fn.external_source(name=f"mirror{k}", dtype=types.INT32)
                outs.append(fn.crop_mirror_normalize(view, mirror=mirror, mean=mean, std=std,
                                                     dtype=types.FLOAT, output_layout="CHW"))
            return tuple(outs)

        pipe = graph()
        pipe.build()
        return pipe

    def __call__(self, encoded: list[Encoded]) -> list[torch.Tensor]:
        """Per JPEG, its (3, h, w) or (views, 3, h, w) float32 crops on `device`; the sizes
        may differ from image to image (full images: voc12-seg, voc07-det)."""
        draws: list[Draws] = [e.draws for e in encoded]
        i32 = np.int32
        self.pipe.feed_input("data", [e.data for e in encoded])
        self.pipe.feed_input("roi_anchor", [np.array(d.roi[:2], i32) for d in draws])
        self.pipe.feed_input("roi_shape", [np.array(d.roi[2:], i32) for d in draws])
        if self.chain:
            self.pipe.feed_input("first", [np.array(d.first or d.resize or d.roi[2:],
                                                    np.float32) for d in draws])
        if self.resize:
            self.pipe.feed_input("size", [np.array(d.resize or d.roi[2:], np.float32)
                                          for d in draws])
        for k in range(self.plan.n_views):
            views = [d.views[k] for d in draws]
            self.pipe.feed_input(f"anchor{k}", [np.array((v.top, v.left), i32) for v in views])
            self.pipe.feed_input(f"shape{k}", [np.array((v.height, v.width), i32)
                                               for v in views])
            self.pipe.feed_input(f"mirror{k}", [np.array(int(v.flip), i32) for v in views])
        outs = [self._samples(out) for out in self.pipe.run()]
        if len(outs) == 1:
            return outs[0]
        return [torch.stack(views) for views in zip(*outs, strict=True)]

    def _samples(self, tensor_list: Any) -> list[torch.Tensor]:
        """The samples of one DALI output: a uniform batch in one copy, else one by one."""
        if tensor_list.is_dense_tensor():
            return list(self._torch(tensor_list.as_tensor()).unbind(0))
        return [self._torch(tensor_list[i]) for i in range(len(tensor_list))]

    def _torch(self, dense: Any) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.from_numpy(np.array(dense))
        from nvidia.dali.plugin.pytorch import feed_ndarray  # lazy: optional extra

        out = torch.empty(dense.shape(), dtype=torch.float32, device=self.device)
        feed_ndarray(dense, out, cuda_stream=torch.cuda.current_stream(self.device))
        return out


class DaliLoader:
    """Batches of a dataset through DALI with dcbench's order, crops and labels.

    `dataset` is a `PlannedImages` (or a `Subset` of one); `sampler`, `shuffle`,
    `generator`, `workers`, `drop_last` mean what they mean for `make_loader`, so the index
    order is the PIL path's. Batches come `prefetch` ahead from a thread (`data.prefetch`).
    `collate_fn` batches the worker items (`collate_planned`; `data.dali_targets` keeps
    them as a list).
    """

    def __init__(self, dataset: Dataset, batch_size: int, plan: CropPlan, *,
                 device: torch.device | str = "cpu", shuffle: bool = False,
                 sampler: Sampler | None = None, workers: int = 0,
                 generator: torch.Generator | None = None, drop_last: bool = False,
                 threads: int | None = None, prefetch: int = 2,
                 batch_sampler: Sampler[list[int]] | None = None,
                 collate_fn: Callable[[list[Any]], Any] = collate_planned) -> None:
        self.dataset = dataset
        self.plan = plan
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.threads = threads or max(1, min(8, os.cpu_count() or 1))
        self.prefetch = prefetch
        self.fallbacks = 0
        self.graph: DaliGraph | None = None
        base = dataset
        while isinstance(base, Subset):
            base = base.dataset
        self.samples = base.samples
        if batch_sampler is not None:  # torchrun: this rank's slice of each global batch
            self.loader = DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                                     collate_fn=collate_fn, generator=generator,
                                     timeout=loader_timeout(workers))
        else:
            self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                     sampler=sampler, num_workers=workers,
                                     collate_fn=collate_fn, generator=generator,
                                     drop_last=drop_last, timeout=loader_timeout(workers))

    def __len__(self) -> int:
        return len(self.loader)

    def _decode(self, encoded: list[Encoded], positions: list[int]) -> list[torch.Tensor | None]:
        """DALI over the batch's JPEGs; on an error, PIL + `apply_draws` file by file."""
        try:
            if self.graph is None:
                self.graph = self._new_graph()
            return list(self.graph(encoded))  # a stacked batch or per-image tensors
        except Exception as err:  # DALI rejected a file: rebuild the graph, redo via PIL
            self.graph = None
            log.warning("DALI failed on a batch (%s: %s); its %d JPEG(s) are decoded by PIL "
                        "with the same crops", type(err).__name__, str(err)[:200], len(encoded))
        results: list[torch.Tensor | None] = []
        for item, index in zip(encoded, positions, strict=True):
            self.fallbacks += 1
            pil = decode_image(self.samples[index][0]).image
            results.append(None if pil is None else
                           self._render(F.to_image(pil), item.draws).to(self.device))
        return results

    def _new_graph(self) -> Any:
        """The DALI graph this loader feeds (subclasses: other graphs, `data.item_plans`)."""
        return DaliGraph(self.plan, self.batch_size, self.device, self.threads)

    def _render(self, image: torch.Tensor, draws: Any) -> torch.Tensor:
        """A PIL-decoded uint8 image rendered with its draws (the per-file fallback)."""
        return apply_draws(image, draws, self.plan.mean, self.plan.std)

    def _prepare(self, planned: PlannedBatch) -> Batch:
        indices = planned.indices.tolist()
        jpeg = [i for i, item in enumerate(planned.items) if isinstance(item, Encoded)]
        images: list[torch.Tensor | None] = [
            None if isinstance(item, Encoded) else item.to(self.device)
            for item in planned.items]
        if jpeg:
            decoded = self._decode([planned.items[i] for i in jpeg],  # type: ignore[misc]
                                   [indices[i] for i in jpeg])
            for i, image in zip(jpeg, decoded, strict=True):
                images[i] = image
        keep = [i for i, image in enumerate(images) if image is not None]
        bad = sorted(planned.bad + [indices[i] for i, image in enumerate(images)
                                    if image is None])
        if not keep:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.int64),
                         torch.empty(0, dtype=torch.int64), bad)
        labels = planned.labels
        idx = torch.as_tensor(keep)
        kept_labels = labels[idx] if isinstance(labels, torch.Tensor) else [labels[i] for i in keep]
        return Batch(torch.stack([images[i] for i in keep]),  # type: ignore[misc]
                     kept_labels, planned.indices[idx], bad)

    def __iter__(self) -> Iterator[Batch]:
        if self.prefetch <= 0:
            for planned in self.loader:
                yield self._prepare(planned)
            return
        yield from Prefetcher(self.loader, self._prepare, self.device, self.prefetch)


__all__ = ["DaliGraph", "DaliLoader", "dali_available", "dali_version"]
