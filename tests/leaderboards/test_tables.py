"""Merging our results into published tables: placement, deltas, seeds, stale rows, compare."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dcbench.core.errors import UserError
from dcbench.core.rows import normalize_row
from dcbench.leaderboards.published import PUBLISHED_DIR
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import (
    KIND_OTHER_DIALECT,
    KIND_OURS,
    KIND_PUBLISHED,
    KIND_STALE,
    Leaderboard,
    summarize,
)

SHA = "ab" * 32


def r(**overrides: object) -> dict:
    base = dict(run_id="run", model="deepcluster-alexnet", model_sha256=SHA,
                protocol="linear-conv", dialect="dc2018", dataset="imagenet", split="val",
                layer="conv3", metric="top1_best_epoch", value=40.0, seed=0,
                config_hash="cfg-new", timestamp="2026-11-24T10:00:00+00:00")
    base.update(overrides)
    return normalize_row(base)


def board(rows: list[dict]) -> Leaderboard:
    return Leaderboard(pd.DataFrame(rows))


def ours(frame: pd.DataFrame, kind: str = KIND_OURS) -> pd.DataFrame:
    return frame[frame.kind == kind].reset_index(drop=True)


def test_published_only_is_the_csv() -> None:
    frame = Leaderboard().table("eccv-table1-imagenet")
    assert (frame.kind == KIND_PUBLISHED).all()
    assert len(frame) == 11
    assert frame.loc[frame.method == "DeepCluster", "conv3"].item() == 41.0


def test_delta_against_the_matching_published_row() -> None:
    # seeds 0,1,2 at conv3: 40.0, 41.0, 42.5 -> mean 41.1667, sample std 1.2583
    rows = [r(seed=s, run_id=f"s{s}", value=v) for s, v in [(0, 40.0), (1, 41.0), (2, 42.5)]]
    rows.append(r(layer="conv5", value=37.2))
    frame = board(rows).table("eccv-table1-imagenet")
    mine = ours(frame)
    assert len(mine) == 1
    line = mine.iloc[0]
    assert line.method == "deepcluster-alexnet (ours)"
    assert line.conv3 == pytest.approx(123.5 / 3)
    assert line["conv3 ±"] == pytest.approx(math.sqrt(((40 - 123.5 / 3) ** 2 + (41 - 123.5 / 3)
                                                       ** 2 + (42.5 - 123.5 / 3) ** 2) / 2))
    assert line["Δ conv3"] == pytest.approx(123.5 / 3 - 41.0)
    assert line["Δ conv5"] == pytest.approx(37.2 - 38.2)
    assert math.isnan(line["conv5 ±"]) and math.isnan(line.conv1)
    assert line.seeds == 3
    # placed right after the published DeepCluster row
    position = frame.index[frame.method == "DeepCluster"].item()
    assert frame.iloc[position + 1].method == "deepcluster-alexnet (ours)"


def test_other_tables_ignore_unrelated_results() -> None:
    frame = board([r(dataset="places205")]).table("eccv-table1-imagenet")
    assert ours(frame).empty
    places = board([r(dataset="places205", value=39.0)]).table("eccv-table1-places")
    assert ours(places).iloc[0]["Δ conv3"] == pytest.approx(39.0 - 39.2)


def test_split_and_metric_must_match() -> None:
    rows = [r(split="train"), r(metric="top1")]
    assert ours(board(rows).table("eccv-table1-imagenet")).empty


def test_stale_config_and_other_dialect_are_kept_apart() -> None:
    rows = [
        r(value=40.0),
        r(value=10.0, config_hash="cfg-old", run_id="old", timestamp="2026-01-01T00:00:00"),
        r(value=30.0, dialect="goyal2019", run_id="goyal"),
    ]
    frame = board(rows).table("eccv-table1-imagenet")
    current, stale = ours(frame), ours(frame, KIND_STALE)
    other = ours(frame, KIND_OTHER_DIALECT)
    assert current.conv3.tolist() == [40.0]  # never averaged with 10.0 or 30.0
    assert current["Δ conv3"].item() == pytest.approx(-1.0)
    assert stale.conv3.tolist() == [10.0] and math.isnan(stale["Δ conv3"].item())
    assert "stale config cfg-old" in stale.method.item()
    assert other.conv3.tolist() == [30.0] and math.isnan(other["Δ conv3"].item())
    assert "[goyal2019]" in other.method.item()


def test_unmatched_model_has_no_delta_until_matched() -> None:
    rows = [r(model="my-model", model_sha256="cd" * 32, value=35.0)]
    frame = board(rows).table("eccv-table1-imagenet")
    line = ours(frame).iloc[0]
    assert line.method == "my-model (ours)" and math.isnan(line["Δ conv3"])
    assert frame.iloc[-1].method == "my-model (ours)"
    matched = board(rows).table("eccv-table1-imagenet", match={"my-model": "Random"})
    assert ours(matched).iloc[0]["Δ conv3"] == pytest.approx(35.0 - 16.9)
    with pytest.raises(UserError, match="no row 'Nope'"):
        board(rows).table("eccv-table1-imagenet", match={"my-model": "Nope"})


def test_per_column_models_in_table4() -> None:
    det = dict(protocol="voc07-det", dataset="voc2007", split="test", layer="all", metric="map")
    rows = [r(**det, value=55.0), r(**det, model="deepcluster-vgg16", model_sha256="ef" * 32,
                                    value=66.4)]
    mine = ours(board(rows).table("eccv-table4")).set_index("model")
    assert mine.loc["deepcluster-alexnet", "AlexNet"] == 55.0
    assert math.isnan(mine.loc["deepcluster-alexnet", "VGG-16"])
    assert mine.loc["deepcluster-vgg16", "VGG-16"] == 66.4
    assert mine.loc["deepcluster-vgg16", "Δ VGG-16"] == pytest.approx(66.4 - 65.9)


def test_erratum_target() -> None:
    cls = dict(protocol="voc07-cls", dataset="voc2007", split="test", layer="fc6-8",
               metric="map", value=70.9)
    assert ours(board([r(**cls)]).table("repo-erratum")).iloc[0]["Δ cls fc6-8"] == \
        pytest.approx(0.5)
    # ECCV Table 2 printed the BN-scales-trained number (72.0): only fc6-8+bn rows match it.
    assert ours(board([r(**cls)]).table("eccv-table2")).empty
    with_bn = {**cls, "layer": "fc6-8+bn", "value": 70.9}
    assert ours(board([r(**with_bn)]).table("eccv-table2")).iloc[0]["Δ cls fc6-8"] == \
        pytest.approx(-1.1)


def test_eccv_table3_bn_scales_number_matches_only_bn_rows() -> None:
    """Issue 11 item 6: Table 3 repeats Table 2's 72.0 (BN scales trained, per the erratum)."""
    strict = dict(protocol="voc07-cls", dataset="voc2007", split="test", layer="fc6-8",
                  metric="map", value=70.4)
    assert ours(board([r(**strict)]).table("eccv-table3")).empty  # no spurious -1.6
    assert ours(board([r(**strict)]).table("repo-erratum")).iloc[0]["Δ cls fc6-8"] == \
        pytest.approx(0.0)
    with_bn = {**strict, "layer": "fc6-8+bn", "value": 72.0}
    assert ours(board([r(**with_bn)]).table("eccv-table3")).iloc[0]["Δ cls fc6-8"] == \
        pytest.approx(0.0)


def test_every_bn_scales_deepcluster_number_maps_to_bn_rows() -> None:
    """Read from the CSVs: wherever the released AlexNet's VOC07 cls fc6-8 is the published
    72.0 (the repo erratum: BN scales trained), that column is mapped to fc6-8+bn."""
    root = PUBLISHED_DIR
    columns = pd.read_csv(root / "columns.csv", dtype=str)
    found = []
    for path in sorted(root.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str)
        if "cls fc6-8" not in frame or "dcbench_model" not in frame:
            continue
        hit = frame[(frame.dcbench_model == "deepcluster-alexnet") & (frame["cls fc6-8"] == "72.0")]
        if len(hit):
            row = columns[(columns.table_id == path.stem) & (columns.column == "cls fc6-8")]
            found.append((path.stem, row.layer.item()))
    assert found == [("eccv-table2", "fc6-8+bn"), ("eccv-table3", "fc6-8+bn")]


def test_compare_shared_cells() -> None:
    other = dict(model="random-alexnet-sobel", model_sha256="cd" * 32)
    rows = [r(value=40.0), r(value=42.0, seed=1, run_id="b"), r(layer="conv1", value=13.0),
            r(**other, value=17.0), r(**other, layer="conv5", value=14.0)]
    frame = board(rows).compare(["deepcluster-alexnet", "cdcdcdcdcd"])
    assert frame.layer.tolist() == ["conv3"]  # the only cell both have
    assert frame["deepcluster-alexnet"].item() == 41.0
    assert frame["deepcluster-alexnet ±"].item() == pytest.approx(math.sqrt(2))
    assert frame["Δ random-alexnet-sobel"].item() == pytest.approx(17.0 - 41.0)
    with pytest.raises(UserError, match="no results for model 'ghost'"):
        board(rows).compare(["deepcluster-alexnet", "ghost"])
    with pytest.raises(UserError, match="at least two"):
        board(rows).compare(["deepcluster-alexnet"])


def test_summarize_uses_latest_config() -> None:
    rows = [r(value=40.0), r(value=20.0, config_hash="old", run_id="o",
                             timestamp="2025-01-01T00:00:00")]
    summary = summarize(pd.DataFrame(rows))
    assert summary["mean"].tolist() == [40.0] and summary["n"].tolist() == [1]


def test_from_store_round_trip(tmp_path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_results([r(value=41.5)])
    frame = Leaderboard.from_store(tmp_path / "r.sqlite").table("thesis-5.3")
    assert ours(frame).conv3.tolist() == [41.5]  # no thesis row names deepcluster-alexnet
    assert math.isnan(ours(frame)["Δ conv3"].item())


def test_unknown_table() -> None:
    with pytest.raises(UserError, match="unknown table 'eccv-table9'"):
        Leaderboard().table("eccv-table9")


def test_dataset_folder_names_are_aliased() -> None:
    rows = [r(dataset="ILSVRC2012", value=41.5), r(dataset="imagenet-v2", value=1.0,
                                                    model="other")]
    mine = ours(board(rows).table("eccv-table1-imagenet"))
    assert mine.conv3.tolist() == [41.5]  # imagenet-v2 is another dataset, not aliased


def test_from_store_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    assert Leaderboard.from_store().results.empty  # no store yet: no results, no file
    assert not (tmp_path / "home").exists()
    with pytest.raises(UserError, match="no results store at"):
        Leaderboard.from_store(tmp_path / "typo.sqlite")


def test_catalog_models_of_another_arch_stay_out() -> None:
    det = dict(protocol="voc07-det", dataset="voc2007", split="test", layer="all", metric="map")
    rows = [r(**det, value=55.0), r(**det, model="deepcluster-vgg16", model_sha256="ef" * 32,
                                    value=66.4),
            r(**det, model="my-net", model_sha256="12" * 32, value=50.0)]
    models = set(ours(board(rows).table("eccv-table3")).model)
    assert models == {"deepcluster-alexnet", "my-net"}  # Table 3 is AlexNet only
