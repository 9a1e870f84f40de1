"""Synthetic sets: deterministic by seed, readable by both readers, nothing half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcbench.core.errors import UserError
from dcbench.data.folders import ImageFolderDataset, find_dataset
from dcbench.data.synthetic import make_classification_set, make_voc_set


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_classification_set_deterministic_by_seed(tmp_path: Path) -> None:
    kw = {"n_classes": 3, "train_per_class": 3, "val_per_class": 1, "size": 24}
    a = make_classification_set(tmp_path / "a", seed=1, **kw)
    b = make_classification_set(tmp_path / "b", seed=1, **kw)
    c = make_classification_set(tmp_path / "c", seed=2, **kw)
    assert _tree_hash(a) == _tree_hash(b) != _tree_hash(c)


def test_voc_set_deterministic_by_seed(tmp_path: Path) -> None:
    kw = {"n_train": 3, "n_val": 2, "n_test": 2, "size": 48}
    assert _tree_hash(make_voc_set(tmp_path / "a", seed=0, **kw)) == _tree_hash(
        make_voc_set(tmp_path / "b", seed=0, **kw)
    )


def test_classification_layout_and_list_files_agree(cls_set: Path) -> None:
    folders = ImageFolderDataset(cls_set / "train")
    listed = find_dataset(cls_set, "train", fmt="places")
    assert folders.classes == ["circle", "frame", "ring", "square"]  # first 4 shapes, sorted
    assert sorted(folders.samples) == sorted(listed.samples)  # same files, same labels
    val = ImageFolderDataset(cls_set / "val")
    assert len(val) == 8 and np.bincount(val.targets).tolist() == [2, 2, 2, 2]
    image = Image.open(val.paths[0])
    assert image.size == (32, 32) and image.mode == "RGB"


def test_colour_is_nuisance_not_class(cls_set: Path) -> None:
    """Mean colour must not identify the class: a nearest-mean-colour rule is near chance."""
    ds = ImageFolderDataset(cls_set / "train")
    good = [(p, y) for p, y in ds.samples if "corrupt" not in p]
    colours = np.array([np.asarray(Image.open(p), dtype=float).mean(axis=(0, 1)) for p, _ in good])
    labels = np.array([y for _, y in good])
    centroids = np.array([colours[labels == k].mean(axis=0) for k in range(4)])
    pred = np.argmin(((colours[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == labels).mean() < 0.75  # chance is 0.25; shapes, not colours, define classes


def test_corrupt_files_are_counted(cls_set: Path) -> None:
    ds = ImageFolderDataset(cls_set / "train")
    bad = [i for i in range(len(ds)) if ds[i][0] is None]
    assert len(ds) == 4 * 6 + 4 and len(bad) == 4  # the tail-truncated one is bad too
    assert all("corrupt" in ds.samples[i][0] for i in bad)


def test_refuses_non_empty_output_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(UserError, match="not empty"):
        make_classification_set(tmp_path / "full")
    with pytest.raises(UserError, match="n_classes"):
        make_classification_set(tmp_path / "new", n_classes=50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # no staging left behind
