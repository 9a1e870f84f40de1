"""The one input-pipeline entry: which backend reads images, and the loader that does it.

`input_pipeline` (a TrainConfig key and a key of every protocol config) is one of
`INPUT_PIPELINES`:

- `cpu`: PIL decoding + the torchvision transform in DataLoader workers (`make_loader`);
- `gpu`: training only, torchvision's nvJPEG path (`data.gpu_decode`);
- `dali`: NVIDIA DALI (`data.dali_pipeline`): JPEGs decoded (region only) + resized +
  cropped + flipped + normalised by DALI, `device="mixed"` on CUDA and `"cpu"` elsewhere,
  with the image order, crop boxes and labels of the PIL path (drawn by dcbench,
  `data.crop_plan`, `data.planned_images`); other files take the PIL path per file;
- `auto`: `dali` on CUDA when DALI is installed, else `gpu` on CUDA where the caller has a
  GPU path (training), else `cpu`.

`image_loader` is what training and the protocols call for a dataset of images: the PIL
loader for `cpu`, the DALI loader for `dali` when the dataset's transform can be expressed
(`crop_plan.plan_transform`, or a per-item plan of `item_plans`: retrieval's resized
images and query boxes, the Caffe VOC warp), else the PIL loader (and `describe_loader`
says so). `target_loader` is the same for datasets whose target moves with the image (voc12-seg's
masks, voc07-det's boxes: `data.planned_targets`), batched by the protocol's collate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler, Subset

from dcbench.core.errors import UserError
from dcbench.data.crop_plan import plan_transform
from dcbench.data.dali_pipeline import DaliLoader, dali_available
from dcbench.data.dali_targets import DaliTargetLoader
from dcbench.data.item_plans import special_plan
from dcbench.data.loader import Batch, DataLoader, loader_timeout, make_loader
from dcbench.data.planned_images import PlannedImages
from dcbench.data.planned_targets import PlannedTargets, joint_plan

INPUT_PIPELINES: tuple[str, ...] = ("auto", "cpu", "gpu", "dali")
PROTOCOL_PIPELINES: tuple[str, ...] = ("auto", "cpu", "dali")
DALI_INSTALL = "pip install 'dcbench[dali]' (NVIDIA DALI, nvidia-dali-cuda130)"


def resolve_input_pipeline(name: str, device: torch.device | str, *,
                           gpu_path: bool = True) -> str:
    """`cpu`, `gpu` or `dali` for `input_pipeline: name` on `device` (see the module doc).
    `gpu_path=False` for callers without the nvJPEG path (the protocols). A `dali` request
    without DALI installed is a UserError naming the extra."""
    cuda = torch.device(device).type == "cuda"
    if name not in INPUT_PIPELINES or (name == "gpu" and not gpu_path):
        valid = INPUT_PIPELINES if gpu_path else PROTOCOL_PIPELINES
        raise UserError(f"input_pipeline must be one of {', '.join(valid)}; got {name!r}")
    if name == "auto":
        if cuda and dali_available():
            return "dali"
        return "gpu" if cuda and gpu_path else "cpu"
    if name == "dali" and not dali_available():
        raise UserError(f"input_pipeline: dali needs NVIDIA DALI, which is not installed: "
                        f"{DALI_INSTALL}; or set input_pipeline=cpu")
    return name


def _unwrap(dataset: Any) -> tuple[Any, list[int] | None, Callable[[int], int] | None]:
    """(the image dataset, Subset indices or None, per-item seed or None) of a loader's
    dataset: `Subset` and per-item seeding views (`.dataset` + `.item_seed(i)`) unwrapped."""
    indices = None
    while isinstance(dataset, Subset):  # nested (a shard of a subset): one index list
        inner = list(dataset.indices)
        indices = inner if indices is None else [inner[i] for i in indices]
        dataset = dataset.dataset
    seed_item = None
    if hasattr(dataset, "item_seed") and hasattr(dataset, "dataset"):
        seed_item, dataset = dataset.item_seed, dataset.dataset
    return dataset, indices, seed_item


def image_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    pipeline: str = "cpu",
    device: torch.device | str = "cpu",
    shuffle: bool = False,
    sampler: Sampler | Iterable[int] | None = None,
    workers: int = 0,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    batch_sampler: Sampler[list[int]] | None = None,
) -> Iterable[Batch]:
    """Batches of `dataset` through `pipeline` (`cpu`, `dali`, or `auto` resolved for a
    caller without the nvJPEG path): the same `Batch`es, order and crops either way (pixels
    within JPEG-decoder tolerance). With `workers=0` the crops are drawn in the calling
    thread as the batches are asked for (no prefetch), as on the PIL path, so a consumer
    that draws random numbers between batches (dropout) sees the PIL path's sequence.
    `batch_sampler` (torchrun: `samplers.GlobalBatchSlices`) replaces batch_size, shuffle,
    sampler and drop_last, as for `make_loader`."""
    if pipeline == "auto":
        pipeline = resolve_input_pipeline(pipeline, device, gpu_path=False)
    if pipeline == "dali":
        base, indices, seed_item = _unwrap(dataset)
        special = special_plan(base, seed_item)  # retrieval, the Caffe warp (item_plans)
        plan = special[1] if special else plan_transform(getattr(base, "transform", None))
        if plan is not None and hasattr(base, "samples"):
            planned: Dataset = special[0] if special else PlannedImages(base, plan, seed_item)
            loader_class = special[2] if special else DaliLoader
            if indices is not None:
                planned = Subset(planned, indices)
            return loader_class(planned, batch_size, plan, device=device, shuffle=shuffle,
                                sampler=sampler, workers=workers,  # type: ignore[arg-type]
                                generator=generator, drop_last=drop_last,
                                prefetch=2 if workers > 0 else 0, batch_sampler=batch_sampler)
    elif pipeline not in ("cpu", "gpu"):
        raise ValueError(f"image_loader: resolve {pipeline!r} first (resolve_input_pipeline)")
    return make_loader(dataset, batch_size, shuffle=shuffle, sampler=sampler, workers=workers,
                       generator=generator, drop_last=drop_last, pin_memory=pin_memory,
                       batch_sampler=batch_sampler)


def effective_pipeline(dataset: Any, pipeline: str, device: torch.device | str = "cpu") -> str:
    """`dali` when `image_loader(dataset, pipeline=pipeline)` reads through DALI, else
    `cpu` (a feature-cache key must tell the two apart: their pixels differ slightly)."""
    if pipeline == "auto":
        pipeline = resolve_input_pipeline(pipeline, device, gpu_path=False)
    if pipeline != "dali":
        return "cpu"
    base = _unwrap(dataset)[0]
    usable = hasattr(base, "samples") and (special_plan(base) is not None or
                                           plan_transform(getattr(base, "transform", None)))
    return "dali" if usable else "cpu"


def target_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    collate: Callable[[list[tuple[Any, Any, int]]], Any],
    pipeline: str = "cpu",
    device: torch.device | str = "cpu",
    sampler: Sampler | Iterable[int] | None = None,
    workers: int = 0,
    generator: torch.Generator | None = None,
    batch_sampler: Sampler[list[int]] | None = None,
) -> Iterable[Any]:
    """`image_loader` for datasets whose transform moves a target with the image (voc12-seg
    masks, voc07-det boxes; `data.planned_targets`): batches `collate(items)` of
    `(image | None, target, index)` items either way. `dali` reads through DALI when the
    dataset offers a `joint_plan` (DALI renders the image, the workers move the target by
    the same draws), else, like `cpu`, through a PIL DataLoader."""
    if pipeline == "auto":
        pipeline = resolve_input_pipeline(pipeline, device, gpu_path=False)
    if pipeline == "dali":
        base, indices, seed_item = _unwrap(dataset)
        plan = joint_plan(base)
        if plan is not None and hasattr(base, "samples"):
            planned: Dataset = PlannedTargets(base, plan, seed_item)
            if indices is not None:
                planned = Subset(planned, indices)
            return DaliTargetLoader(planned, batch_size, plan, collate=collate, device=device,
                                    sampler=sampler, workers=workers, generator=generator,
                                    batch_sampler=batch_sampler)
    elif pipeline not in ("cpu", "gpu"):
        raise ValueError(f"target_loader: resolve {pipeline!r} first (resolve_input_pipeline)")
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                          collate_fn=collate, generator=generator,
                          timeout=loader_timeout(workers))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,  # type: ignore[arg-type]
                      num_workers=workers, collate_fn=collate, generator=generator,
                      timeout=loader_timeout(workers))


def describe_loader(loader: Any) -> str:
    """Which backend a loader from `image_loader` is: `dali` or `cpu` (PIL)."""
    return "dali" if isinstance(loader, DaliLoader) else "cpu"


__all__ = ["INPUT_PIPELINES", "PROTOCOL_PIPELINES", "describe_loader", "effective_pipeline",
           "image_loader", "resolve_input_pipeline", "target_loader"]
