"""Per-item DALI plans (CPU backend): retrieval's resized images and query boxes at batch 1
and any size, against the PIL path (`RetrievalImages.__getitem__`).

Measured on the synthetic retrieval set (JPEG, 128 px, longest side 100 / 160 / 300):
mean absolute difference 0.12-0.20 grey levels per pixel, largest single pixel 2 (PIL's
bilinear resize vs DALI's antialiased linear filter; the decoders agree). Bound: 0.5."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from dcbench.data import transforms as T
from dcbench.data.item_plans import ResizingLoader, special_plan
from dcbench.data.pipeline import effective_pipeline, image_loader
from dcbench.data.planned_images import sniff_jpeg
from dcbench.data.retrieval import RetrievalImages
from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder

pytest.importorskip("nvidia.dali")

MAD_BOUND = 0.5  # grey levels (0..255)
NORMALISE = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                        v2.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = make_jpeg_folder(tmp_path_factory.mktemp("ret_jpeg") / "set", n_classes=2,
                            per_class=6, sizes="small", seed=9, progressive=0.3, cmyk=0.1,
                            rotated=0.3)
    add_bad_files(root / "c01")
    return sorted(p for p in root.rglob("*") if p.is_file())


def grey_levels(diff: torch.Tensor) -> torch.Tensor:
    return diff.abs() * (torch.tensor(T.IMAGENET_STD).view(3, 1, 1) * 255)


@pytest.mark.parametrize("size", [100, 224])
@pytest.mark.parametrize("with_boxes", [False, True])
def test_retrieval_images_through_dali_are_the_pil_items(paths: list[Path], size: int,
                                                         with_boxes: bool,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    boxes = [(10.0 + i, 5.5, 90.0 + 3 * i, 70.2) if i % 3 else (-9.0, -4.0, 500.0, 300.0)
             for i in range(len(paths))] if with_boxes else None
    images = RetrievalImages(paths, size, NORMALISE, boxes, min_side=8)
    calls: list[int] = []
    run = ResizingLoader._new_graph

    def counting(self):
        graph = run(self)
        call = graph.__class__.__call__
        graph.__class__ = type("Counting", (graph.__class__,), {
            "__call__": lambda g, enc: calls.append(len(enc)) or call(g, enc)})
        return graph

    monkeypatch.setattr(ResizingLoader, "_new_graph", counting)
    loader = image_loader(images, 1, pipeline="dali")
    assert isinstance(loader, ResizingLoader) and effective_pipeline(images, "dali") == "dali"
    dali = list(loader)
    pil = list(image_loader(images, 1, pipeline="cpu"))
    assert [b.bad for b in dali] == [b.bad for b in pil] and sum(len(b.bad) for b in pil) >= 4
    diffs = []
    for a, b in zip(pil, dali, strict=True):
        assert torch.equal(a.indices, b.indices)
        if len(a):
            assert a.images.shape == b.images.shape  # the longest side and the box, exactly
            diffs.append(grey_levels(a.images - b.images).flatten())
    assert torch.cat(diffs).mean() < MAD_BOUND
    jpegs = sum(1 for p in paths if sniff_jpeg(p.read_bytes()))
    assert sum(calls) == jpegs >= 12 and loader.fallbacks == 0  # the photos went through DALI


def test_a_crop_min_side_upsizes_keeps_the_pil_path(paths: list[Path]) -> None:
    """A query box smaller than the network's input is upsized a second time by PIL: that
    item is the PIL item itself, bit for bit; the others still go through DALI."""
    photos = [p for p in paths if sniff_jpeg(p.read_bytes())][:3]  # JPEGs DALI decodes
    images = RetrievalImages(photos, 96, NORMALISE,
                             [(0.0, 0.0, 6.0, 6.0), None, (0.0, 0.0, 6.0, 6.0)], min_side=32)
    dali = list(image_loader(images, 1, pipeline="dali"))
    pil = list(image_loader(images, 1, pipeline="cpu"))
    assert torch.equal(dali[0].images, pil[0].images) and dali[0].images.shape[-1] == 32
    assert torch.equal(dali[2].images, pil[2].images)
    assert not torch.equal(dali[1].images, pil[1].images)  # DALI's resize
    assert grey_levels(dali[1].images - pil[1].images).mean() < MAD_BOUND


def test_only_retrieval_images_and_the_caffe_pipeline_have_a_special_plan(paths) -> None:
    from dcbench.data.dali_warp import WarpLoader
    from dcbench.data.folders import ImageFolderDataset

    root = paths[0].parent.parent
    assert special_plan(ImageFolderDataset(root, T.center_crop(48, 55))) is None
    caffe = special_plan(ImageFolderDataset(root, T.voc_caffe_train(48)))
    assert caffe is not None and caffe[2] is WarpLoader
    geometry = v2.Compose([v2.ToImage(), v2.CenterCrop(8), *NORMALISE.transforms[1:]])
    assert special_plan(RetrievalImages(paths, 64, geometry)) is None
