"""The DALI input pipeline (CPU backend here, `device="mixed"` on CUDA) against the PIL path:
same image order, labels and crops; pixels within JPEG-decoder tolerance; bad files skipped
and counted exactly as PIL does; EXIF orientation honoured; no batch lost when DALI fails.

Measured on this file's JPEG mix (CPU backends, libjpeg-turbo on both sides): mean absolute
difference 0.11-0.13 grey levels (of 255) per pixel for every pipeline (largest single
pixel: 8); on smooth gradient photos 0.14-0.15. The bound asserted is 0.5. The difference
comes from the resize kernels (DALI's antialiased linear filter vs torchvision's), not from
decoding (the decoded pixels are equal: `test_exif_orientation_is_honoured`). The SVM
features' squash (Resize(short side) then Resize((size, size)): two resamplings, two DALI
resize stages, uint8 between them on both paths) adds to it: 0.18 grey levels at 48/55
(worst image 0.26, largest pixel 10) and 0.21 at the published 224/256 (worst image 0.39)
on this mix, against 0.11 for one resize (`test_the_squash_chain_runs_on_dali`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler, Subset

from dcbench.data import transforms as T
from dcbench.data.dali_pipeline import DaliGraph, DaliLoader
from dcbench.data.decode import decode_image
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import image_loader
from dcbench.data.planned_images import sniff_jpeg
from dcbench.data.synthetic_jpeg import add_bad_files, jpeg_bytes, make_jpeg_folder
from dcbench.protocols.svm.voc_features import squash_transform

pytest.importorskip("nvidia.dali")

MAD_BOUND = 0.5  # grey levels (0..255)
PIPELINES = {
    "center_crop": lambda: T.center_crop(48, 55),
    "deepcluster_train": lambda: T.deepcluster_train(48),
    "linear_train": lambda: T.linear_train(48, 55),
    "ten_crop": lambda: T.ten_crop(48, 55),
    "voc_train": lambda: T.voc_train(48),
    "squash": lambda: squash_transform(48, 55, T.IMAGENET_MEAN, T.IMAGENET_STD),
}


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_jpeg_folder(tmp_path_factory.mktemp("jpeg") / "set", n_classes=3, per_class=10,
                            sizes="small", seed=2, progressive=0.3, cmyk=0.1, rotated=0.3)
    add_bad_files(root / "c00")
    return root


def grey_levels(diff: torch.Tensor) -> torch.Tensor:
    """A difference of normalised images in grey levels (undo the ImageNet std)."""
    std = torch.tensor(T.IMAGENET_STD).view(3, 1, 1) * 255
    return diff.abs() * std


def run(loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    batches = list(loader)
    bad = sorted(i for b in batches for i in b.bad)
    good = [b for b in batches if len(b)]
    return (torch.cat([b.images for b in good]), torch.cat([b.labels for b in good]),
            torch.cat([b.indices for b in good]), bad)


@pytest.mark.parametrize("name", sorted(PIPELINES))
@pytest.mark.parametrize("workers", [0, 2])
def test_same_order_labels_crops_and_bad_files_as_pil(jpegs: Path, name: str,
                                                      workers: int) -> None:
    dataset = ImageFolderDataset(jpegs, PIPELINES[name]())
    results = {}
    for pipeline in ("cpu", "dali"):
        torch.manual_seed(7)  # the global RNG the transforms draw from (workers=0)
        loader = image_loader(dataset, 8, pipeline=pipeline, shuffle=True, workers=workers,
                              generator=torch.Generator().manual_seed(3))
        assert isinstance(loader, DaliLoader) == (pipeline == "dali")
        results[pipeline] = run(loader)
    (pil, pil_labels, pil_idx, pil_bad), (dali, dali_labels, dali_idx, dali_bad) = \
        results["cpu"], results["dali"]
    assert torch.equal(pil_idx, dali_idx) and torch.equal(pil_labels, dali_labels)
    assert pil_bad == dali_bad and len(pil_bad) == 4  # empty, truncated, corrupt, bomb
    assert dali.shape == pil.shape
    # a wrong crop box would differ by tens of grey levels on these images
    assert grey_levels(dali - pil).mean() < MAD_BOUND


def test_bad_files_are_reported_like_pil(jpegs: Path) -> None:
    dataset = ImageFolderDataset(jpegs, T.center_crop(48, 55))
    reports = {}
    for pipeline in ("cpu", "dali"):
        report = DecodeReport()
        for batch in image_loader(dataset, 16, pipeline=pipeline):
            report.add(batch.bad, dataset)
        reports[pipeline] = report.files
    assert reports["dali"] == reports["cpu"]
    names = sorted(Path(p).name for p in reports["cpu"])
    expected = sorted(n for n in ("empty.jpg", "truncated.jpg", "corrupt.jpg", "bomb.jpg",
                                  "deep16.png")
                      if decode_image(jpegs / "c00" / n).image is None)
    assert names == expected


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_honoured(tmp_path: Path, orientation: int) -> None:
    """A 60x100 photo tagged with each EXIF orientation: DALI gives PIL's `exif_transpose`
    geometry and pixels (no resize: the decoders themselves are compared)."""
    rng = np.random.default_rng(orientation)
    yy, xx = np.mgrid[0:60, 0:100]
    arr = np.stack([xx * 2, yy * 4, (xx + yy) % 255], -1).astype(np.uint8)
    arr[:10, :20] = rng.integers(0, 255, 3)  # an asymmetric mark
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(jpeg_bytes(arr, orientation=orientation,
                                                      quality=95))
    dataset = ImageFolderDataset(tmp_path, T.plain())
    pil = run(image_loader(dataset, 1, pipeline="cpu"))[0]
    dali = run(image_loader(dataset, 1, pipeline="dali"))[0]
    assert dali.shape == pil.shape == ((1, 3, 100, 60) if orientation >= 5 else (1, 3, 60, 100))
    assert grey_levels(dali - pil).max() < 1.01  # identical decoders: rounding only


@pytest.mark.parametrize("name", ["deepcluster_train", "squash"])
def test_a_batch_dali_rejects_falls_back_to_pil_with_the_same_crops(
        jpegs: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """DALI raising on a batch loses nothing: its JPEGs are decoded by PIL and rendered with
    the crops already drawn (both resizes of the squash), so the batch equals the PIL
    path's exactly."""
    dataset = ImageFolderDataset(jpegs, PIPELINES[name]())

    def fail(self, encoded):
        raise RuntimeError("nvImageCodec: cannot decode")

    monkeypatch.setattr(DaliGraph, "__call__", fail)
    torch.manual_seed(1)
    pil = run(image_loader(dataset, 8, pipeline="cpu"))
    torch.manual_seed(1)
    loader = image_loader(dataset, 8, pipeline="dali")
    dali = run(loader)
    assert loader.fallbacks > 0
    assert torch.equal(dali[0], pil[0]) and torch.equal(dali[2], pil[2]) and dali[3] == pil[3]


def test_subsets_and_samplers_keep_the_dataset_indices(jpegs: Path) -> None:
    dataset = ImageFolderDataset(jpegs, T.center_crop(48, 55))
    part = Subset(dataset, [5, 3, 20, 11])
    assert run(image_loader(part, 2, pipeline="dali"))[2].tolist() == [5, 3, 20, 11]
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    expected = list(RandomSampler(dataset, generator=torch.Generator().manual_seed(0)))
    got = run(image_loader(dataset, 5, pipeline="dali", sampler=sampler))
    assert got[2].tolist() + got[3] != []
    assert [i for i in expected if i not in got[3]] == got[2].tolist()


class ReseededView(torch.utils.data.Dataset):
    """Like the VOC fine-tunes' SeededView: torch's RNG seeded per item during the call."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def item_seed(self, index: int) -> int:
        return 1000 + 7 * index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.item_seed(index))
            return self.dataset[index]


def test_per_item_seeded_views_draw_the_same_crops(jpegs: Path) -> None:
    view = ReseededView(ImageFolderDataset(jpegs, T.voc_train(48)))
    order = list(range(len(view)))[::-1]
    pil = run(image_loader(view, 6, pipeline="cpu", sampler=order))
    dali = run(image_loader(view, 6, pipeline="dali", sampler=order, workers=2))
    assert torch.equal(pil[2], dali[2]) and pil[3] == dali[3]
    assert grey_levels(dali[0] - pil[0]).mean() < MAD_BOUND


def test_a_scan_with_a_bad_marker_is_skipped_as_pil_skips_it(tmp_path: Path) -> None:
    """A run of 0xFF fill bytes ending in an unknown marker inside the scan data: PIL calls
    the file corrupt, DALI alone would decode it; the sniff sends it to PIL, so it is
    skipped and counted on both paths. Scan damage PIL tolerates stays on DALI."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:200]
    arr = np.stack([xx, yy, (xx * yy) % 255], -1).astype(np.uint8)
    arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
    good = jpeg_bytes(arr)
    sos = good.find(b"\xff\xda")
    mid = sos + (len(good) - sos) // 2
    broken = good[:mid] + b"\xff" * 50 + good[mid + 50:]
    tolerated = good[:mid] + b"\x55" * 400 + good[mid + 400:]
    (tmp_path / "a").mkdir()
    for name, data in (("broken.jpg", broken), ("tolerated.jpg", tolerated),
                       ("good.jpg", good)):
        (tmp_path / "a" / name).write_bytes(data)
    assert decode_image(tmp_path / "a" / "broken.jpg").image is None
    assert sniff_jpeg(broken) is None and sniff_jpeg(tolerated) == (150, 200)
    dataset = ImageFolderDataset(tmp_path, T.center_crop(48, 55))
    pil = run(image_loader(dataset, 3, pipeline="cpu"))
    dali = run(image_loader(dataset, 3, pipeline="dali"))
    assert pil[3] == dali[3] == [0] and torch.equal(pil[2], dali[2])


@pytest.mark.parametrize(("size", "short", "bound"), [(48, 55, 0.3), (224, 256, 0.3)])
def test_the_squash_chain_runs_on_dali(jpegs: Path, size: int, short: int,
                                       bound: float) -> None:
    """The SVM squash goes through two DALI resize stages (no file falls back to PIL): the
    same images, every output `size` x `size`, and the two resamplings stay within the
    tolerance (measured 0.18 / 0.21 grey levels, see the module docstring), with each
    image far closer to its own PIL rendering than to any other image's."""
    dataset = ImageFolderDataset(jpegs, squash_transform(size, short, T.IMAGENET_MEAN,
                                                         T.IMAGENET_STD))
    loader = image_loader(dataset, 8, pipeline="dali")
    dali = run(loader)
    pil = run(image_loader(dataset, 8, pipeline="cpu"))
    assert loader.fallbacks == 0 and loader.graph is not None and loader.graph.chain
    assert torch.equal(dali[2], pil[2]) and dali[3] == pil[3]
    assert dali[0].shape == pil[0].shape == (len(pil[2]), 3, size, size)
    per_image = grey_levels(dali[0] - pil[0]).flatten(1).mean(1)
    assert float(per_image.mean()) < bound
    shifted = grey_levels(dali[0] - pil[0].roll(1, 0)).flatten(1).mean(1)
    assert bool((per_image * 20 < shifted).all())
