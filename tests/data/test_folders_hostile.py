"""Hostile dataset trees: symlink loops, dangling links, folders named *.jpg, empty classes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from dcbench.data.check import check_tree
from dcbench.data.folders import ImageFolderDataset, scan_folder


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / cls / "ok.png")
    (root / "empty").mkdir()
    os.symlink("loop2.jpg", root / "a" / "loop1.jpg")
    os.symlink("loop1.jpg", root / "a" / "loop2.jpg")
    os.symlink("missing.jpg", root / "b" / "dangling.jpg")
    (root / "b" / "folder.jpg").mkdir()
    return root


def test_listing_reports_and_never_crashes(hostile: Path) -> None:
    listing = scan_folder(hostile / "a")
    assert listing.images == ["ok.png"]
    assert sum("loop" in p for p in listing.problems) == 2
    b = scan_folder(hostile / "b")
    assert b.images == ["ok.png"]
    assert any("dangling symlink" in p for p in b.problems)
    assert any("named like an image" in p for p in b.problems)


def test_dataset_skips_and_warns_once(hostile: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dcbench.data.folders"):
        ds = ImageFolderDataset(hostile)
        ImageFolderDataset(hostile)
    assert [Path(p).name for p in ds.paths] == ["ok.png", "ok.png"]
    assert ds.classes == ["a", "b", "empty"] and ds.empty_classes == ["empty"]
    assert len(ds.listing_problems) == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "1 empty class folder(s) (empty)" in warnings[0]


def test_data_check_reports_them(hostile: Path) -> None:
    report = check_tree(hostile.parent, "imagenet")
    text = "\n".join(report.problems)
    assert "dangling symlink" in text and "named like an image" in text
    assert "empty class folder" in text and text.count("loop") >= 2
