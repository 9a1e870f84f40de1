"""Hostile Oxford/Paris ground-truth files are one-line errors naming the file (issue 19)."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.data.retrieval import RetrievalSet
from dcbench.data.synthetic import make_voc_set
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.data.voc import VOCClassification


@pytest.fixture()
def oxford(tmp_path):
    root = write_retrieval_set(tmp_path / "set", landmarks=1, per_landmark=2,
                               queries_per_landmark=1, distractors=1, size=48)
    return root / "oxford5k"


def _query_file(oxford):
    return next((oxford / "gt_files").glob("*_query.txt"))


@pytest.mark.parametrize("box", ["nan 1 2 3", "0 0 inf 5", "-inf 0 1 1", "1 2 3 nan"])
def test_non_finite_box_is_refused(oxford, box: str) -> None:
    path = _query_file(oxford)
    image = path.read_text().split()[0]
    path.write_text(f"{image} {box}\n")
    with pytest.raises(UserError, match="finite") as err:
        RetrievalSet(oxford)
    assert path.name in str(err.value)


@pytest.mark.parametrize("which", ["query", "good", "junk"])
def test_non_utf8_ground_truth_is_refused(oxford, which: str) -> None:
    query = _query_file(oxford).name.removesuffix("_query.txt")
    path = oxford / "gt_files" / f"{query}_{which}.txt"
    path.write_bytes(path.read_bytes() + b"\xff\xfe\x80\n")
    with pytest.raises(UserError, match="not UTF-8") as err:
        RetrievalSet(oxford)
    assert path.name in str(err.value) and "\n" not in str(err.value)


def test_bom_and_crlf_ground_truth_is_read_as_written(oxford) -> None:
    # issue 26 regression: a Windows editor's UTF-8 BOM (+ CRLF) is not part of the name
    clean = RetrievalSet(oxford)
    for path in (oxford / "gt_files").glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    again = RetrievalSet(oxford)
    assert [(q.name, q.image, q.box, q.positives, q.junk) for q in again.queries] == \
        [(q.name, q.image, q.box, q.positives, q.junk) for q in clean.queries]


def test_bom_in_a_voc_image_set_list_is_dropped(tmp_path) -> None:
    root = make_voc_set(tmp_path / "voc", n_train=4, n_val=4, n_test=4, size=48, seed=0)
    clean = VOCClassification(root, 2007, "trainval").ids
    lists = next(root.rglob("VOC2007")) / "ImageSets" / "Main"
    for path in lists.glob("*.txt"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert VOCClassification(root, 2007, "trainval").ids == clean
