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
