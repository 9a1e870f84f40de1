"""Oxford/Paris layout reader and the synthetic retrieval generator."""

from __future__ import annotations

import pytest
from PIL import Image

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.data.retrieval import (
    PARIS_BLACKLIST,
    RetrievalImages,
    RetrievalSet,
    crop_box,
    resize_longest,
)
from dcbench.data.synthetic_retrieval import write_retrieval_set


@pytest.fixture(scope="module")
def ret_root(tmp_path_factory):
    return write_retrieval_set(tmp_path_factory.mktemp("ret") / "set", landmarks=2,
                               per_landmark=3, distractors=2, size=96)


def test_reads_real_layout(ret_root):
    oxford = RetrievalSet(ret_root / "oxford5k")
    assert len(PARIS_BLACKLIST) == 20
    assert oxford.names == sorted(oxford.names) and len(oxford.names) == 2 * 4 + 2
    query = oxford.queries[0]
    line = (ret_root / "oxford5k" / "gt_files" / f"{query.name}_query.txt").read_text().split()
    assert line[0] == "oxc1_" + query.image and query.box == tuple(float(v) for v in line[1:])
    good = (ret_root / "oxford5k" / "gt_files" / f"{query.name}_good.txt").read_text().split()
    ok = (ret_root / "oxford5k" / "gt_files" / f"{query.name}_ok.txt").read_text().split()
    assert query.positives == frozenset(good + ok) and len(query.junk) == 1


def test_paris_tree_and_blacklist(ret_root):
    paris = RetrievalSet(ret_root / "paris6k")
    assert paris.blacklisted == ["paris_louvre_000136"]
    assert "paris_louvre_000136" not in paris.names
    assert all(p.parent.parent.name == "jpg" for p in paris.paths)  # jpg/<landmark>/x.jpg


def test_bad_layouts_are_user_errors(tmp_path, ret_root):
    with pytest.raises(UserError, match="not an Oxford/Paris"):
        RetrievalSet(tmp_path)
    (tmp_path / "jpg").mkdir()
    (tmp_path / "gt_files").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "jpg" / "a.jpg")
    (tmp_path / "gt_files" / "q_query.txt").write_text("oxc1_a 1 2 3\n")
    with pytest.raises(UserError, match="x1 y1 x2 y2"):
        RetrievalSet(tmp_path)
    (tmp_path / "gt_files" / "q_query.txt").write_text("oxc1_b 1 2 3 4\n")
    for kind in ("good", "ok", "junk"):
        (tmp_path / "gt_files" / f"q_{kind}.txt").write_text("a\n")
    with pytest.raises(UserError, match="not in jpg"):
        RetrievalSet(tmp_path)


def test_resize_longest_and_crop_as_official():
    image, ratio = resize_longest(Image.new("RGB", (300, 200)), 150)
    assert image.size == (150, 100) and ratio == 0.5
    assert crop_box((10.2, 20.7, 101.0, 151.0), 0.5) == (5, 10, 50, 76)
    images = RetrievalImages([], 64, lambda im: im)
    assert len(images) == 0


def test_data_synth_cli_writes_the_retrieval_kind(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--kind", "retrieval",
                 "--size", "64"]) == 0
    assert len(RetrievalSet(tmp_path / "s" / "retrieval" / "paris6k").queries) == 6
    assert "oxford5k/ paris6k/" in capsys.readouterr().out


def test_draws_are_the_geometry_getitem_renders(tmp_path):
    """`RetrievalImages.draws` (the DALI plan) gives __getitem__'s output size and window:
    rendered with torchvision's kernels it matches the PIL item within resampling rounding,
    for whole images and for boxes that overhang the image; a crop that min_side would
    upsize again is Unexpressible (that item keeps the PIL path)."""
    import numpy as np
    import torch
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    from dcbench.data.crop_plan import Unexpressible, apply_draws
    from dcbench.data.decode import open_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:230]
    arr = np.stack([xx, yy, (xx * yy) % 251], -1).astype(np.uint8)
    arr = (arr + rng.integers(0, 8, arr.shape)).astype(np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    plain = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    boxes = [None, (20.4, 10.0, 140.6, 99.5), (-30.0, 100.0, 500.0, 400.0), (3.0, 3.0, 9.0, 9.0)]
    for size in (96, 160, 401):
        images = RetrievalImages([path] * len(boxes), size, plain, boxes, min_side=8)
        decoded = F.to_image(open_image(path))
        for index in range(len(boxes)):
            try:
                draws = images.draws(index, 150, 230)
            except Unexpressible:
                assert index == 3 and size in (96, 160)  # a 4 px crop upsized to 8 px
                continue
            expected = images[index][0]
            got = apply_draws(decoded, draws, (0.0,) * 3, (1.0,) * 3)
            assert got.shape == expected.shape, (size, index)
            assert (got - expected).abs().mean() * 255 < 1.0  # a wrong window is tens
