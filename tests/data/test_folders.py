"""Folder and list-file datasets, loaders that drop bad samples, and find_dataset errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.data.folders import (
    DecodeReport,
    ImageFolderDataset,
    ListFileDataset,
    find_dataset,
    make_loader,
)


def _save(path: Path, value: int, size: int = 8, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value, value, value)).save(path, format=fmt)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """train/{b_dog,a_cat}/..., with a corrupt file, a hidden file and a non-image."""
    root = tmp_path / "ds"
    _save(root / "train" / "b_dog" / "2.png", 20)
    _save(root / "train" / "b_dog" / "1.JPEG", 10, fmt="JPEG")
    _save(root / "train" / "a_cat" / "x.png", 30)
    (root / "train" / "a_cat" / "broken.png").write_bytes(b"")
    (root / "train" / "a_cat" / ".hidden.png").write_bytes(b"junk")
    (root / "train" / "a_cat" / "readme.txt").write_text("hi")
    return root


def test_imagefolder_sorted_classes_files_and_targets(tree: Path) -> None:
    ds = ImageFolderDataset(tree / "train")
    assert ds.classes == ["a_cat", "b_dog"]
    names = [Path(p).name for p in ds.paths]
    assert names == ["broken.png", "x.png", "1.JPEG", "2.png"]
    assert ds.targets.tolist() == [0, 0, 1, 1] and ds.targets.dtype == np.int64
    image, label, index = ds[1]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 8, 8) and label == 0
    assert index == 1 and torch.allclose(image, torch.full_like(image, 30 / 255))
    assert ds[0] == (None, 0, 0)  # undecodable: None, never raises


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in range(3):
        _save(tmp_path / "flat" / f"{i}.png", i)
    ds = ImageFolderDataset(tmp_path / "flat")
    assert ds.classes == [] and ds.targets.tolist() == [-1, -1, -1]


def test_list_file_dataset_and_bad_lines(tree: Path) -> None:
    lst = tree / "train.txt"
    lst.write_text("train/a_cat/x.png 4\n\n# comment\ntrain/b_dog/1.JPEG 2\n")
    ds = ListFileDataset(lst, tree)
    assert ds.targets.tolist() == [4, 2] and len(ds.classes) == 5
    assert ds[1][1] == 2 and ds[1][0] is not None
    lst.write_text("train/a_cat/x.png 4\nno-label-here\ntrain/b_dog/1.JPEG -3\n")
    with pytest.raises(UserError, match=r"2 malformed line\(s\) \(line 2, 3\)"):
        ListFileDataset(lst, tree)


def test_find_dataset_folder_list_and_errors(tree: Path) -> None:
    assert isinstance(find_dataset(tree, "train"), ImageFolderDataset)
    (tree / "val.txt").write_text("train/a_cat/x.png 0\n")
    val = find_dataset(tree, "val")
    assert isinstance(val, ListFileDataset) and len(val) == 1
    with pytest.raises(UserError, match="split 'test' not found") as err:
        find_dataset(tree, "test")
    assert "ROOT/train/n01440764" in err.value.detail  # prints the expected layout
    (tree / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        find_dataset(tree, "empty")
    with pytest.raises(UserError, match="dataset root not found"):
        find_dataset(tree / "nope", "train")
    with pytest.raises(UserError, match="not found"):
        find_dataset(tree, "train", fmt="places")


def test_loader_drops_bad_samples_and_report_counts(tree: Path) -> None:
    ds = ImageFolderDataset(tree / "train")
    loader = make_loader(ds, batch_size=3)
    report = DecodeReport()
    seen = []
    for batch in loader:
        report.add(batch.bad, ds)
        assert batch.images.shape[0] == batch.labels.shape[0] == len(batch)
        seen += batch.indices.tolist()
    assert seen == [1, 2, 3]
    assert report.count == 1 and report.files == [str(tree / "train" / "a_cat" / "broken.png")]
    assert "skipped 1 undecodable" in report.summary()


def test_all_bad_batch_is_empty(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in range(2):
        (tmp_path / "d" / f"{i}.jpg").write_bytes(io.BytesIO(b"xx").getvalue())
    batch = next(iter(make_loader(ImageFolderDataset(tmp_path / "d"), batch_size=2)))
    assert len(batch) == 0 and batch.bad == [0, 1] and batch.images.numel() == 0


def test_loader_with_workers_and_seeded_shuffle(cls_set: Path) -> None:
    ds = find_dataset(cls_set, "val")
    order = []
    for _ in range(2):
        loader = make_loader(
            ds, 4, shuffle=True, workers=2, generator=torch.Generator().manual_seed(7)
        )
        order.append(torch.cat([b.indices for b in loader]).tolist())
    assert order[0] == order[1] and sorted(order[0]) == list(range(len(ds)))


def test_order_matches_torchvision_imagefolder(cls_set: Path) -> None:
    """Same (path, label) order as torchvision's ImageFolder, so indices are interchangeable."""
    from torchvision.datasets import ImageFolder

    ours = ImageFolderDataset(cls_set / "train")
    theirs = ImageFolder(str(cls_set / "train"))
    assert ours.samples == theirs.samples and ours.classes == theirs.classes
