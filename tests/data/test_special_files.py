"""Links to devices and other non-regular files are named as such, not called dangling
(issue 19: a link to /dev/zero was reported as a dangling symlink)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcbench.data.folders import scan_folder


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_link_to_a_device_is_not_dangling(tmp_path: Path) -> None:
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "gone.jpg")
    listing = scan_folder(tmp_path)
    problems = dict(p.split(": ", 1) for p in listing.problems)
    assert problems[str(tmp_path / "zero.jpg")] == \
        "skipped (a link to /dev/zero, not a regular file)"
    assert problems[str(tmp_path / "gone.jpg")] == "skipped (dangling symlink)"
    assert listing.images == []


def test_a_fifo_named_like_an_image_is_reported(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    listing = scan_folder(tmp_path)
    assert listing.problems == [f"{tmp_path / 'pipe.png'}: skipped (not a regular file)"]
