"""Image + mask items through DALI (`data.pipeline.target_loader`, CPU backend) against the
PIL path: same order, same masks (exact: nearest resampling of the same draws), the same bad
files skipped and counted, EXIF orientation honoured, full images of different sizes in one
batch, no batch lost when DALI fails, and torchrun's batch slices covering every image once.

Measured on this file's set (libjpeg-turbo on both sides): with a RandomResizedCrop + flip
the images differ by 0.15 grey levels (of 255) per pixel on average (0.22 for the worst
image: the resize kernels); full images (voc12-seg's transform, no resize) by 7e-6 (1.3e-5
at worst: the decoders agree, only the float normalisation differs). The bound asserted is
0.5 (1e-3 for full images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from dcbench.data.dali_pipeline import DaliGraph
from dcbench.data.dali_targets import DaliTargetLoader
from dcbench.data.decode import decode_image
from dcbench.data.pipeline import describe_loader, target_loader
from dcbench.data.samplers import GlobalBatchSlices
from dcbench.data.synthetic import make_voc_set
from dcbench.data.synthetic_jpeg import jpeg_bytes
from dcbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dcbench.data.voc import VOCSegmentation

pytest.importorskip("nvidia.dali")

MAD_BOUND = 0.5  # grey levels (0..255)
SPOILS = ("empty", "corrupt", "truncated", "cmyk", "png", "gray", "rotated", "mirrored",
          "progressive", "wrong_mask")


def spoil_voc(folder: Path, ids: list[str]) -> dict[str, str]:
    """Replace the JPEGs of `ids` (a VOC year folder) by the bad and awkward files of
    `SPOILS`, in that order; the EXIF-tagged ones store rotated/mirrored pixels whose
    oriented image is the original (its mask and boxes still fit). Returns id -> spoil."""
    done = {}
    for image_id, spoil in zip(ids, SPOILS, strict=False):
        path = folder / "JPEGImages" / f"{image_id}.jpg"
        good = path.read_bytes()
        arr = np.asarray(Image.open(path).convert("RGB"))
        data = good
        if spoil == "empty":
            data = b""
        elif spoil == "corrupt":
            data = good[:2] + b"\x00" * 38 + good[40:]
        elif spoil == "truncated":
            data = good[: len(good) // 2]
        elif spoil == "cmyk":
            data = jpeg_bytes(arr, cmyk=True)
        elif spoil == "png":
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "PNG")
            data = buf.getvalue()
        elif spoil == "gray":
            buf = io.BytesIO()
            Image.fromarray(arr[..., 1]).save(buf, "JPEG", quality=90)
            data = buf.getvalue()
        elif spoil == "rotated":  # stored 90 degrees counter-clockwise, tag 6 turns it back
            data = jpeg_bytes(np.ascontiguousarray(np.rot90(arr, 1)), orientation=6)
        elif spoil == "mirrored":
            data = jpeg_bytes(np.ascontiguousarray(arr[:, ::-1]), orientation=2)
        elif spoil == "progressive":
            data = jpeg_bytes(arr, progressive=True)
        elif spoil == "wrong_mask":
            mask = folder / "SegmentationClass" / f"{image_id}.png"
            if mask.is_file():
                Image.open(mask).crop((0, 0, 20, 20)).save(mask)
        path.write_bytes(data)
        if spoil in ("rotated", "mirrored", "png", "cmyk"):
            decoded = decode_image(path).image
            assert decoded is not None and decoded.size == (arr.shape[1], arr.shape[0])
        done[image_id] = spoil
    return done


@pytest.fixture(scope="module")
def bad_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic VOCdevkit whose first training images (2007 and 2012) are spoiled."""
    root = make_voc_set(tmp_path_factory.mktemp("voc") / "set", n_train=14, n_val=4,
                        n_test=4, size=96, seed=3)
    for year, split in (("2012", "Segmentation"), ("2007", "Main")):
        folder = root / "VOCdevkit" / f"VOC{year}"
        ids = (folder / "ImageSets" / split / "train.txt").read_text().split()
        spoil_voc(folder, ids)
    return root


def joint(*geometry: v2.Transform) -> v2.Compose:
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def as_lists(items: list) -> tuple[list, list, list, list]:
    """A test collate: (images, masks, indices) of the decodable items, and the bad ones."""
    good = [item for item in items if item[0] is not None]
    return ([g[0] for g in good], [g[1] for g in good], [int(g[2]) for g in good],
            [int(item[2]) for item in items if item[0] is None])


def run(loader) -> tuple[list, list, list, list]:
    images, masks, indices, bad = [], [], [], []
    for batch in loader:
        for acc, part in zip((images, masks, indices, bad), batch, strict=True):
            acc.extend(part)
    return images, masks, indices, bad


def grey_levels(a: torch.Tensor, b: torch.Tensor) -> float:
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    return float(((a - b).abs() * std).mean())


def both(dataset, batch_size: int, seed: int = 5, **kwargs) -> dict[str, tuple]:
    out = {}
    for pipeline in ("cpu", "dali"):
        torch.manual_seed(seed)  # the global RNG the joint transform draws from
        loader = target_loader(dataset, batch_size, collate=as_lists, pipeline=pipeline,
                               generator=torch.Generator().manual_seed(seed), **kwargs)
        assert describe_loader(loader) == ("dali" if pipeline == "dali" else "cpu")
        out[pipeline] = run(loader)
        if pipeline == "dali":
            assert loader.fallbacks == 0 and loader.graph is not None
    return out


def assert_same(out: dict[str, tuple]) -> None:
    (images, masks, indices, bad), (d_images, d_masks, d_indices, d_bad) = \
        out["cpu"], out["dali"]
    assert indices == d_indices and bad == d_bad
    assert all(torch.equal(a, b) for a, b in zip(masks, d_masks, strict=True))
    assert [a.shape for a in images] == [b.shape for b in d_images]
    assert np.mean([grey_levels(a, b) for a, b in zip(images, d_images, strict=True)]) < MAD_BOUND


@pytest.mark.parametrize("workers", [0, 2])
def test_crops_masks_order_and_bad_files_match_pil(bad_voc: Path, workers: int) -> None:
    """A RandomResizedCrop + flip moved jointly (the masks are resampled: nearest)."""
    seg = VOCSegmentation(bad_voc, 2012, "train",
                          transform=joint(v2.RandomResizedCrop(48, scale=(0.3, 1.0)),
                                          v2.RandomHorizontalFlip()))
    order = torch.randperm(len(seg), generator=torch.Generator().manual_seed(1)).tolist()
    out = both(seg, 4, sampler=order, workers=workers)
    assert_same(out)
    bad = sorted(out["cpu"][3])
    # 0-byte, corrupt, a mask of the wrong size, and the truncated file where PIL skips it
    truncated = decode_image(Path(seg.samples[2][0])).image is None
    assert bad == sorted([0, 1, 9] + ([2] if truncated else []))
    assert len(out["cpu"][2]) == len(seg) - len(bad)


def test_full_images_of_different_sizes_in_one_batch(bad_voc: Path) -> None:
    """voc12-seg's own transform (full image, flip): one DALI run returns each image at its
    size; the EXIF-tagged images come out in their displayed orientation, like PIL's."""
    seg = VOCSegmentation(bad_voc, 2012, "train", transform=joint(v2.RandomHorizontalFlip()))
    out = both(seg, 5)
    assert_same(out)
    sizes = {tuple(m.shape) for m in out["dali"][1]}
    assert len(sizes) > 1
    for image, mask in zip(out["dali"][0], out["dali"][1], strict=True):
        assert image.shape[1:] == mask.shape
    worst = max(grey_levels(a, b) for a, b in zip(out["cpu"][0], out["dali"][0], strict=True))
    assert worst < 1e-3  # no resize: the decoders agree


def test_a_batch_dali_rejects_is_redone_by_pil_with_the_same_draws(
        bad_voc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = VOCSegmentation(bad_voc, 2012, "train",
                          transform=joint(v2.RandomResizedCrop(40), v2.RandomHorizontalFlip()))

    def fail(self, encoded):
        raise RuntimeError("nvImageCodec: cannot decode")

    monkeypatch.setattr(DaliGraph, "__call__", fail)
    torch.manual_seed(2)
    pil = run(target_loader(seg, 4, collate=as_lists, pipeline="cpu"))
    torch.manual_seed(2)
    loader = target_loader(seg, 4, collate=as_lists, pipeline="dali")
    dali = run(loader)
    assert loader.fallbacks > 0
    assert pil[2:] == dali[2:]
    assert all(torch.equal(a, b) for a, b in zip(pil[0] + pil[1], dali[0] + dali[1],
                                                 strict=True))


def test_torchrun_slices_read_every_image_once(bad_voc: Path) -> None:
    """Two ranks' loaders over `GlobalBatchSlices` (what epoch_batches gives each torchrun
    process): together they read every image of the order exactly once."""
    seg = VOCSegmentation(bad_voc, 2012, "train", transform=joint(v2.RandomHorizontalFlip()))
    order = torch.randperm(len(seg), generator=torch.Generator().manual_seed(0)).tolist()
    seen: list[int] = []
    for rank in range(2):
        loader = target_loader(seg, 3, collate=as_lists, pipeline="dali",
                               batch_sampler=GlobalBatchSlices(order, 3, rank, 2))
        assert isinstance(loader, DaliTargetLoader)
        _, _, indices, bad = run(loader)
        seen += indices + bad
    assert sorted(seen) == list(range(len(seg)))


def test_an_unplannable_transform_stays_on_pil_and_auto_is_pil_on_cpu(bad_voc: Path) -> None:
    rotated = VOCSegmentation(bad_voc, 2012, "val", transform=joint(v2.RandomRotation(10)))
    assert describe_loader(target_loader(rotated, 2, collate=as_lists, pipeline="dali")) == "cpu"
    seg = VOCSegmentation(bad_voc, 2012, "val", transform=joint(v2.RandomHorizontalFlip()))
    assert describe_loader(target_loader(seg, 2, collate=as_lists, pipeline="auto")) == "cpu"
    with pytest.raises(ValueError, match="resolve"):
        target_loader(seg, 2, collate=as_lists, pipeline="nvjpeg")
