"""DALI plans for datasets whose geometry is not a v2 pipeline's crop windows.

`data.pipeline.image_loader` asks `special_plan(base, seed_item)` first, then falls back to
`crop_plan.plan_transform` of the dataset's transform:

- retrieval (`data.retrieval.RetrievalImages`): the whole image resized so that its
  longest side is N (the sizes `resize_longest` rounds), then the query box (or the whole
  resized image) as the one view, per item (`RetrievalImages.draws`), at batch 1 and any
  size. A crop that `min_side` upsizes a second time takes the PIL path for that item;
- the Caffe VOC transform (`transforms.voc_caffe_train`): one affine warp per image
  (`data.dali_warp`).

Each answer is (the planned dataset the DataLoader workers read, the plan, the DaliLoader
class that renders it); None: no special plan.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from dcbench.data.crop_plan import Draws, plan_transform
from dcbench.data.dali_pipeline import DaliGraph, DaliLoader
from dcbench.data.dali_warp import WarpLoader, plan_caffe
from dcbench.data.planned_images import PlannedImages
from dcbench.data.retrieval import RetrievalImages


class PlannedRetrieval(PlannedImages):
    """`PlannedImages` of a `RetrievalImages`: each item's own resize and query box."""

    def draw(self, index: int, height: int, width: int) -> Draws:
        return self.base.draws(index, height, width)


class ResizingLoader(DaliLoader):
    """`DaliLoader` whose graph always resizes (the per-item sizes come with the draws)."""

    def _new_graph(self) -> Any:
        return DaliGraph(self.plan, self.batch_size, self.device, self.threads, resize=True)


def special_plan(base: Any, seed_item: Any = None) -> tuple[Dataset, Any, type] | None:
    """(planned dataset, plan, loader class) for retrieval images and the Caffe transform,
    else None (see the module docstring)."""
    if isinstance(base, RetrievalImages):
        plan = plan_transform(base.transform)
        if plan is None or plan.steps or plan.n_views != 1:
            return None  # geometry inside the transform: not the protocol's, keep PIL
        return PlannedRetrieval(base, plan, seed_item), plan, ResizingLoader
    caffe = plan_caffe(getattr(base, "transform", None))
    if caffe is not None and hasattr(base, "samples"):
        return PlannedImages(base, caffe, seed_item), caffe, WarpLoader  # type: ignore[arg-type]
    return None


__all__ = ["PlannedRetrieval", "ResizingLoader", "special_plan"]
