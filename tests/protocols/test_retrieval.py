"""retrieval: the whole protocol on the built-in set in the real layout, resume, errors."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
import torch

from dcbench.core.errors import UserError
from dcbench.data.retrieval import Query, RetrievalSet
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.leaderboards.published import table_info
from dcbench.models import create_backbone
from dcbench.protocols import get_protocol
from dcbench.protocols.retrieval import rmac_map
from dcbench.protocols.rmac import extract as extract_module


@pytest.fixture(scope="module")
def ret_root(tmp_path_factory):
    return write_retrieval_set(tmp_path_factory.mktemp("ret") / "set", landmarks=3,
                               per_landmark=4, distractors=4, size=128)


def _run(root, work_dir, overrides=()):
    protocol = get_protocol("retrieval")
    config = protocol.resolve_config(schedule="smoke", overrides=list(overrides))
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    return protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                        work_dir=work_dir)


def test_end_to_end_rows_and_report(ret_root, tmp_path):
    rows = _run(ret_root, tmp_path)
    maps = {r.dataset: r.value for r in rows if r.metric == "map"}
    assert set(maps) == {"oxford5k", "paris6k"}
    assert {(r.protocol, r.split, r.layer) for r in rows} == {("retrieval", "test", "rmac")}
    assert sum(r.metric.startswith("ap_") for r in rows) == 2 * 6
    for dataset, value in maps.items():
        aps = [r.value for r in rows if r.dataset == dataset and r.metric.startswith("ap_")]
        assert value == pytest.approx(np.mean(aps)) and 0 <= value <= 100
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["paris6k"]["skipped_corrupt"] == ["paris_louvre_000136"]
    assert summary["oxford5k"]["pca_source"] == "paris6k"
    # A random-init network still retrieves identical facades far above chance (~ 30%).
    assert np.mean(list(maps.values())) > 40
    # the rows land in ECCV Table 5's columns
    cells = {(r.protocol, r.dataset, r.split, r.layer, r.metric) for r in rows}
    assert {c.key for c in table_info("eccv-table5").columns} <= cells


def test_resume_reads_shards(ret_root, tmp_path, monkeypatch):
    first = {(r.dataset, r.metric): r.value for r in _run(ret_root, tmp_path)}

    def boom(*args, **kwargs):
        raise AssertionError("resume must not recompute regions")

    monkeypatch.setattr(extract_module, "region_descriptors", boom)
    again = {(r.dataset, r.metric): r.value for r in _run(ret_root, tmp_path)}
    assert again == pytest.approx(first)


def test_bad_config_and_missing_other_set(ret_root, tmp_path):
    with pytest.raises(UserError):
        _run(ret_root, tmp_path / "a", ["image_size=8"])
    with pytest.raises(UserError, match="paris6k"):
        _run(ret_root / "oxford5k", tmp_path / "b")


def _ap_rows(rows, dataset):
    return {r.metric[3:]: r.value for r in rows if r.dataset == dataset
            and r.metric.startswith("ap_")}


@pytest.mark.slow


def test_unscorable_queries_are_skipped_and_reported(ret_root, tmp_path):
    intact = _run(ret_root, tmp_path / "intact")
    root = tmp_path / "set"
    shutil.copytree(ret_root, root)
    oxford = RetrievalSet(root / "oxford5k")
    empty, broken = oxford.queries[0].name, oxford.queries[1].name
    gt = root / "oxford5k" / "gt_files"
    for kind in ("good", "ok"):  # a query with nothing to find
        (gt / f"{empty}_{kind}.txt").write_text("")
    rows = _run(root, tmp_path / "run")
    aps, before = _ap_rows(rows, "oxford5k"), _ap_rows(intact, "oxford5k")
    assert empty not in aps and set(aps) == set(before) - {empty}
    assert aps == pytest.approx({k: v for k, v in before.items() if k != empty})
    maps = {r.dataset: r.value for r in rows if r.metric == "map"}
    assert maps["oxford5k"] == pytest.approx(np.mean(list(aps.values())))
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert list(summary["oxford5k"]["skipped_queries"]) == [empty]
    assert summary["oxford5k"]["queries_scored"] == len(oxford.queries) - 1
    # an undecodable query image is skipped too, never scored from a zero descriptor
    query_path = oxford.query_paths[1]
    query_path.write_bytes(b"not an image at all")
    rows = _run(root, tmp_path / "run2")
    aps = _ap_rows(rows, "oxford5k")
    assert broken not in aps and empty not in aps
    summary = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert sorted(summary["oxford5k"]["skipped_queries"]) == sorted([empty, broken])
    assert {r.metric for r in rows if r.dataset == "paris6k"} == \
        {r.metric for r in intact if r.dataset == "paris6k"}


def _oxford_ap(ranked: list[str], positives: set[str]) -> float:
    """The Oxford `compute_ap.cpp` trapezoid rule, ported line by line (no junk here)."""
    old_recall, old_precision, ap, hits = 0.0, 1.0, 0.0, 0
    for j, name in enumerate(ranked):
        hits += name in positives
        recall, precision = hits / len(positives), hits / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
    return ap


def test_core_skips_undecodable_and_empty_queries():
    gen = torch.Generator().manual_seed(0)
    names = [f"img{i}" for i in range(6)]
    db = [torch.rand(3, 4, generator=gen) for _ in names]
    db[5] = None  # an undecodable database image
    queries = [torch.rand(2, 4, generator=gen), None, torch.rand(2, 4, generator=gen),
               torch.rand(2, 4, generator=gen)]
    sets = types.SimpleNamespace(queries=[
        Query("q0", "img0", (0, 0, 1, 1), frozenset({"img1", "img2"}), frozenset()),
        Query("q1", "img1", (0, 0, 1, 1), frozenset({"img0"}), frozenset()),  # no descriptor
        Query("q2", "img2", (0, 0, 1, 1), frozenset(), frozenset()),  # empty good + ok
        Query("q3", "img3", (0, 0, 1, 1), frozenset({"img5"}), frozenset()),  # only positive bad
    ])
    whitening = (np.zeros(4, np.float32), np.eye(4, dtype=np.float32))
    metrics, skipped = rmac_map(db, queries, whitening, names, sets)
    assert sorted(skipped) == ["q1", "q2", "q3"]
    assert set(metrics) == {"map", "ap_q0"}

    def vec(regions):
        v = torch.nn.functional.normalize(regions, dim=1).sum(0)
        return v / v.norm()

    kept = [n for n, d in zip(names, db, strict=True) if d is not None]
    scores = [float(vec(queries[0]) @ vec(db[names.index(n)])) for n in kept]
    ranked = [n for _, n in sorted(zip(scores, kept, strict=True), key=lambda t: -t[0])]
    expected = _oxford_ap(ranked, {"img1", "img2"})
    assert metrics["ap_q0"] == pytest.approx(expected) and metrics["map"] == metrics["ap_q0"]
    with pytest.raises(UserError, match="no retrieval query can be scored"):
        rmac_map(db, [None] * 4, whitening, names, sets)


def test_per_query_aps_are_kept_per_dataset(ret_root, tmp_path):
    """Per-item outcomes: each dataset's per-query APs (query order) make its `map` and its
    `ap_<query>` rows; the entry names its dataset; a resumed run writes the same bytes."""
    from dcbench.core.outcomes import to_bytes

    def run(work_dir):
        protocol = get_protocol("retrieval")
        config = protocol.resolve_config(schedule="smoke")
        model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
        rows = protocol.run(model, ret_root, config, run_id="t", device="cpu",
                            progress=False, work_dir=work_dir)
        return rows, protocol.item_outcomes()

    rows, entries = run(tmp_path / "a")
    assert sorted(e.dataset for e in entries) == ["oxford5k", "paris6k"]
    assert len({e.listing for e in entries}) == 2
    for entry in entries:
        assert (entry.split, entry.layer, entry.metric, entry.kind) == \
            ("test", "rmac", "map", "mean")
        mine = [r for r in rows if r.dataset == entry.dataset]
        per_query = [r.value for r in mine if r.metric.startswith("ap_")]
        np.testing.assert_allclose(100 * entry.arrays["values"], per_query, rtol=1e-12)
        value = next(r.value for r in mine if r.metric == "map")
        assert 100 * entry.arrays["values"].mean() == pytest.approx(value, rel=1e-12)
    _, again = run(tmp_path / "a")  # the region shards reused
    assert to_bytes(again) == to_bytes(entries)


def test_retrieval_through_dali_keeps_the_pil_paths_maps(ret_root, tmp_path):
    """`input_pipeline=dali`: every database image and query is decoded, resized and
    box-cropped by DALI (shards in `<name>-dali/`), and the mAP stays next to the PIL path's
    (the pixels differ by ~0.2 grey level)."""
    pytest.importorskip("nvidia.dali")
    pil = {(r.dataset, r.metric): r.value for r in _run(ret_root, tmp_path / "pil")}
    dali = {(r.dataset, r.metric): r.value
            for r in _run(ret_root, tmp_path / "dali", ["input_pipeline=dali"])}
    assert dali.keys() == pil.keys()
    shards = sorted(p.name for p in (tmp_path / "dali").iterdir() if p.is_dir())
    assert shards == ["oxford5k-db-dali", "oxford5k-queries-dali", "paris6k-db-dali",
                      "paris6k-queries-dali"]
    assert not any(p.name.endswith("-dali") for p in (tmp_path / "pil").iterdir())
    for dataset in ("oxford5k", "paris6k"):
        assert abs(dali[(dataset, "map")] - pil[(dataset, "map")]) < 5.0
