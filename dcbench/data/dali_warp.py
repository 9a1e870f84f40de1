"""Caffe's `TransformationLayer` (the VOC07 `caffe` pipeline) on DALI: one affine warp.

`transforms.voc_caffe_train` normalises the image and then samples a crop x crop window
through a real-valued affine map with bilinear interpolation and zero fill
(`data.caffe_transform`). `plan_caffe` recognises that pipeline; `CaffePlan.draw` calls the
layer's own `make_params` (torch's global RNG, the same numbers as `transform(image)`), so
the scale, offsets and mirror are dcbench's. The DALI graph (`WarpGraph`):

    decoders.image(bytes)                 the whole image (EXIF applied; cpu, or mixed on CUDA)
    crop_mirror_normalize(mean, std)      float32, HWC (normalise first, as the port does)
    warp_affine(matrix, crop x crop)      bilinear, borders clamped
    transpose -> CHW, then x inside-mask  (torch, on the device)

The port samples output pixel x at x_in = a x + t with pixel indices as coordinates; DALI
maps pixel centres (x + 0.5) and samples with centres at i + 0.5, so the matrix's
translation is t + 0.5 - 0.5 a (the half-pixel shift folded in). Between pixel W - 1 and W
the port repeats pixel W - 1 (its second tap is clamped), which DALI's clamped border also
does; a sample outside [0, W) x [0, H) is 0 in the port (the normalised mean colour), which
the inside-mask (computed from the draw in the port's float32 arithmetic) reproduces
exactly. What is left is float rounding of the sampling positions and the JPEG decoder:
measured in `tests/data/test_dali_warp.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from dcbench.data.caffe_transform import CaffeDraw, CaffeTransformation, caffe_affine
from dcbench.data.dali_pipeline import DaliLoader


class WarpDraws(NamedTuple):
    """One image's Caffe draw and the (oriented) size it was drawn for."""

    draw: CaffeDraw
    height: int
    width: int


@dataclass
class CaffePlan:
    """The normalisation and the Caffe layer of a `voc_caffe_train` pipeline."""

    layer: CaffeTransformation
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_views: int = 1
    key: str = ""

    def draw(self, height: int, width: int) -> WarpDraws:
        """The layer's draws for an image of `height` x `width` (torch's global RNG)."""
        return WarpDraws(self.layer.make_params(height, width), height, width)


def plan_caffe(transform: Any) -> CaffePlan | None:
    """The `CaffePlan` of `ToImage, ToDtype(float32, scale), Normalize, CaffeTransformation`
    (`transforms.voc_caffe_train`), else None."""
    steps = list(getattr(transform, "transforms", [])) if isinstance(transform, v2.Compose) \
        else []
    if len(steps) != 4 or not isinstance(steps[0], v2.ToImage):
        return None
    to_dtype, normalize, layer = steps[1:]
    if not (isinstance(to_dtype, v2.ToDtype) and to_dtype.scale
            and to_dtype.dtype in (torch.float32, {tv_tensors.Image: torch.float32})):
        return None
    if not (isinstance(normalize, v2.Normalize) and len(normalize.mean) == 3
            and isinstance(layer, CaffeTransformation)):
        return None
    return CaffePlan(layer, tuple(normalize.mean), tuple(normalize.std), key=repr(transform))


def dali_matrix(warp: WarpDraws, crop: int) -> np.ndarray:
    """The (2, 3) destination -> source matrix for DALI's pixel-centre convention."""
    a00, t0, a11, t1 = caffe_affine(warp.draw, warp.height, warp.width, crop)
    half = np.float32(0.5)
    return np.array([[a00, 0.0, t0 + half - half * a00],
                     [0.0, a11, t1 + half - half * a11]], dtype=np.float32)


def inside_mask(warp: WarpDraws, crop: int) -> torch.Tensor:
    """(crop, crop) bool: output pixels whose sample lies inside the image (the port's rule,
    in its float32 arithmetic)."""
    a00, t0, a11, t1 = caffe_affine(warp.draw, warp.height, warp.width, crop)
    grid = torch.arange(crop, dtype=torch.float32)
    x_in = grid * float(a00) + float(t0)
    y_in = grid * float(a11) + float(t1)
    inside_x = (x_in >= 0) & (x_in < warp.width)
    inside_y = (y_in >= 0) & (y_in < warp.height)
    return inside_y[:, None] & inside_x[None, :]


class WarpGraph:
    """One DALI pipeline: JPEG bytes + Caffe draws -> normalised crop x crop windows."""

    def __init__(self, plan: CaffePlan, batch_size: int, device: torch.device,
                 threads: int) -> None:
        self.plan, self.batch_size, self.device = plan, batch_size, device
        self.pipe = self._build(threads)

    def _build(self, threads: int) -> Any:
        from nvidia.dali import fn, pipeline_def, types  # lazy: optional extra

        cuda = self.device.type == "cuda"
        crop = self.plan.layer.size
        mean = [255.0 * m for m in self.plan.mean]
        std = [255.0 * s for s in self.plan.std]

        @pipeline_def(batch_size=self.batch_size, num_threads=threads,
                      device_id=(self.device.index or 0) if cuda else None,
                      exec_dynamic=True, prefetch_queue_depth=1)
        def graph() -> Any:
            data = fn.external_source(name="data", dtype=types.UINT8)
            matrix = fn.external_source(name="matrix", dtype=types.FLOAT)
            images = fn.decoders.image(data, device="mixed" if cuda else "cpu",
                                       output_type=types.RGB)
            images = fn.crop_mirror_normalize(images, mean=mean, std=std, dtype=types.FLOAT,
                                              output_layout="HWC")
            images = fn.warp_affine(images, matrix=matrix, size=[float(crop), float(crop)],
                                    interp_type=types.INTERP_LINEAR, inverse_map=True)
            return fn.transpose(images, perm=[2, 0, 1])

        pipe = graph()
        pipe.build()
        return pipe

    def __call__(self, encoded: list[Any]) -> torch.Tensor:
        """(n, 3, crop, crop) float32 windows of the JPEGs, on `device`."""
        crop = self.plan.layer.size
        self.pipe.feed_input("data", [e.data for e in encoded])
        self.pipe.feed_input("matrix", [dali_matrix(e.draws, crop) for e in encoded])
        (out,) = self.pipe.run()
        if self.device.type == "cuda":
            from nvidia.dali.plugin.pytorch import feed_ndarray  # lazy: optional extra

            dense = out.as_tensor()
            images = torch.empty(dense.shape(), dtype=torch.float32, device=self.device)
            feed_ndarray(dense, images, cuda_stream=torch.cuda.current_stream(self.device))
        else:
            images = torch.from_numpy(np.array(out.as_tensor()))
        masks = torch.stack([inside_mask(e.draws, crop) for e in encoded]).to(images.device)
        return images * masks[:, None]


class WarpLoader(DaliLoader):
    """`DaliLoader` over a `CaffePlan`: the warp graph, and the port as the PIL fallback."""

    def _new_graph(self) -> Any:
        return WarpGraph(self.plan, self.batch_size, self.device,  # type: ignore[arg-type]
                         self.threads)

    def _render(self, image: torch.Tensor, draws: Any) -> torch.Tensor:
        plan: CaffePlan = self.plan  # type: ignore[assignment]
        normalised = F.normalize(F.to_dtype(image, torch.float32, scale=True),
                                 list(plan.mean), list(plan.std))
        return plan.layer.apply(normalised, draws.draw)


__all__ = ["CaffePlan", "WarpDraws", "WarpGraph", "WarpLoader", "dali_matrix", "inside_mask",
           "plan_caffe"]
