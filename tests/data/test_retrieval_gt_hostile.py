"""Hostile Oxford/Paris ground-truth files are one-line errors naming the file (issue 19)."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.data.retrieval import RetrievalSet
from dcbench.data.synthetic_retrieval import write_retrieval_set


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
