"""Caffe's `TransformationLayer` (the VOC07 `caffe` pipeline) on DALI's `warp_affine`
(CPU backend) against the port (`data.caffe_transform`) on the PIL path.

Measured on this file's JPEG mix (libjpeg-turbo on both sides, so the decoded pixels are
equal): mean absolute difference 1e-4 grey levels (of 255) per pixel, largest single pixel
0.013 (float rounding of the sampling positions: DALI maps pixel centres, the port pixel
indices); with whole-pixel translations (scale 1) 7e-6. The bound asserted is 0.01 mean,
0.1 max: with the half-pixel shift left unfolded the mean is 1.7 grey levels (max 126)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcbench.data import transforms as T
from dcbench.data.caffe_transform import CaffeDraw, CaffeTransformation
from dcbench.data.dali_warp import WarpDraws, WarpGraph, WarpLoader, dali_matrix, plan_caffe
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.pipeline import image_loader
from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder

MEAN_BOUND, MAX_BOUND = 0.01, 0.1  # grey levels (0..255)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_jpeg_folder(tmp_path_factory.mktemp("warp") / "set", n_classes=3,
                            per_class=8, sizes="small", seed=2, progressive=0.3, cmyk=0.1,
                            rotated=0.3)
    add_bad_files(root / "c00")
    return root


def grey_levels(diff: torch.Tensor) -> torch.Tensor:
    return diff.abs() * (torch.tensor(T.IMAGENET_STD).view(3, 1, 1) * 255)


def run(loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    batches = list(loader)
    good = [b for b in batches if len(b)]
    return (torch.cat([b.images for b in good]), torch.cat([b.labels for b in good]),
            torch.cat([b.indices for b in good]), sorted(i for b in batches for i in b.bad))


def test_plan_caffe_reads_only_the_caffe_pipeline() -> None:
    plan = plan_caffe(T.voc_caffe_train(48, (0.5, 2.0), mean=(0.1, 0.2, 0.3),
                                        std=(0.5, 0.5, 0.5)))
    assert plan is not None and plan.layer.size == 48 and plan.layer.scale == (0.5, 2.0)
    assert plan.mean == (0.1, 0.2, 0.3) and plan.std == (0.5, 0.5, 0.5)
    assert plan_caffe(T.voc_train(48)) is None and plan_caffe(None) is None


def test_the_matrix_folds_the_half_pixel_shift_into_the_port_rule() -> None:
    """DALI samples destination pixel centre x + 0.5 at source coordinate m (x + 0.5) + t,
    whose pixel-index position is that minus 0.5: it must equal the port's a x + t0."""
    layer = CaffeTransformation(40)
    for draw in (CaffeDraw(1.3, 2.5, -1.25, False), CaffeDraw(0.7, -3.0, 4.0, True),
                 CaffeDraw(1.0, 0.2, 0.7, False)):
        warp = WarpDraws(draw, 90, 120)
        m = dali_matrix(warp, 40).astype(np.float64)
        x = np.arange(40, dtype=np.float64)
        # the port's sampling positions, from its own apply on an index ramp image
        ramp = torch.arange(120, dtype=torch.float32).expand(1, 90, 120)
        port_x = layer.apply(ramp, draw)[0, 20]
        dali_x = m[0, 0] * (x + 0.5) + m[0, 2] - 0.5
        inside = (dali_x >= 0) & (dali_x <= 119)
        np.testing.assert_allclose(dali_x[inside], port_x.numpy()[inside], atol=1e-3)


@pytest.mark.parametrize("size,scale", [(48, (0.5, 2.0)), (96, (0.5, 2.0)), (40, (1.0, 1.0))])
@pytest.mark.parametrize("workers", [0, 2])
def test_dali_warp_gives_the_ports_windows(jpegs: Path, size: int, scale: tuple, workers: int
                                           ) -> None:
    pytest.importorskip("nvidia.dali")
    dataset = ImageFolderDataset(jpegs, T.voc_caffe_train(size, scale))
    results = {}
    for pipeline in ("cpu", "dali"):
        torch.manual_seed(7)
        loader = image_loader(dataset, 8, pipeline=pipeline, shuffle=True, workers=workers,
                              generator=torch.Generator().manual_seed(3))
        assert isinstance(loader, WarpLoader) == (pipeline == "dali")
        results[pipeline] = run(loader), torch.get_rng_state()
    ((pil, pil_labels, pil_idx, pil_bad), pil_rng), ((dali, labels, idx, bad), dali_rng) = \
        results["cpu"], results["dali"]
    assert torch.equal(pil_idx, idx) and torch.equal(pil_labels, labels) and pil_bad == bad
    assert len(bad) == 4 and dali.shape == pil.shape == (len(idx), 3, size, size)
    assert workers or torch.equal(pil_rng, dali_rng)  # the same draws, consumed alike
    diff = grey_levels(dali - pil)
    assert diff.mean() < MEAN_BOUND and diff.max() < MAX_BOUND
    assert not torch.equal(dali, pil) or scale == (1.0, 1.0)  # DALI did the sampling


def test_a_batch_dali_rejects_is_the_ports_output_exactly(jpegs: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    pytest.importorskip("nvidia.dali")

    def fail(self, encoded):
        raise RuntimeError("nvImageCodec: cannot decode")

    monkeypatch.setattr(WarpGraph, "__call__", fail)
    dataset = ImageFolderDataset(jpegs, T.voc_caffe_train(48))
    torch.manual_seed(1)
    pil = run(image_loader(dataset, 8, pipeline="cpu"))
    torch.manual_seed(1)
    loader = image_loader(dataset, 8, pipeline="dali")
    dali = run(loader)
    assert loader.fallbacks > 0
    assert torch.equal(dali[0], pil[0]) and torch.equal(dali[2], pil[2]) and dali[3] == pil[3]
