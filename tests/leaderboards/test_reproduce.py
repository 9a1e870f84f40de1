"""The reproduce planner: every shipped table's columns planned, grouped into runs, and the
final table (published rows, our row, deltas, "not run") built from the plan's own rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcbench.core.errors import UserError
from dcbench.core.rows import RESULT_FIELDS
from dcbench.leaderboards import reproduce as planner
from dcbench.leaderboards.published import list_tables, load_published, table_info
from dcbench.leaderboards.reproduce_eta import format_duration, run_work
from dcbench.leaderboards.reproduce_table import (
    NOT_RUN,
    plan_results,
    reference_row,
    reproduce_display,
    reproduce_frame,
    terminal_text,
)
from dcbench.protocols.base import get_protocol

PLANNED = {"thesis-5.2", "thesis-5.3", "thesis-5.4", "thesis-5.5", "eccv-table1-imagenet",
           "eccv-table1-places", "eccv-table1-earlier", "eccv-table2", "eccv-table3",
           "eccv-table4", "eccv-table5", "mmselfsup-r50-voc07-svm"}


def test_every_named_table_has_a_plan_and_only_reference_tables_lack_one():
    planned = {t.id for t in planner.plannable_tables()}
    assert planned >= PLANNED
    for info in list_tables():
        if info.id not in planned:
            assert not info.matchable, f"{info.id} has measurable columns but no plan"


@pytest.mark.parametrize("table_id", sorted(t.id for t in list_tables() if t.matchable))
def test_each_planned_run_produces_the_row_its_column_holds(table_id):
    info = table_info(table_id)
    plan = planner.make_plan(table_id, {})
    by_column = {c: run for run in plan.runs for c in run.columns}
    for spec in info.columns:
        if not spec.matchable:
            continue
        run = by_column[spec.column]
        assert run.protocol == spec.protocol
        assert run.dialect in get_protocol(run.protocol).DIALECTS
        assert spec.dataset in planner.DATA_NAMES[run.data][1]
        if spec.protocol in ("linear-conv", "voc07-svm"):
            assert spec.layer in run.layers
        elif spec.protocol == "voc07-lowshot-svm":  # rows are labelled LAYER/kN
            assert spec.layer.split("/")[0] in run.layers
        elif spec.protocol in ("voc07-cls", "voc07-det", "voc12-seg"):
            # the VOC rows say fc6-8, fc6-8+bn (BN scales trained too) or all
            label = run.train_layers + ("+bn" if run.train_bn_scales else "")
            assert label == spec.layer


def test_columns_sharing_a_protocol_and_data_become_one_run():
    plan = planner.make_plan("eccv-table1-earlier", {})
    assert [(r.protocol, r.data, r.layers) for r in plan.runs] == [
        ("linear-conv", "imagenet", ("conv1", "conv2", "conv3", "conv4", "conv5")),
        ("linear-conv", "places205", ("conv1", "conv2", "conv3", "conv4", "conv5"))]
    voc = planner.make_plan("eccv-table2", {})
    assert [(r.protocol, r.train_layers, r.train_bn_scales) for r in voc.runs] == [
        ("voc07-cls", "fc6-8", True), ("voc07-cls", "all", False),
        ("voc07-det", "fc6-8", False), ("voc07-det", "all", False),
        ("voc12-seg", "fc6-8", False), ("voc12-seg", "all", False)]


def test_missing_roots_and_other_architectures_are_not_run(tmp_path):
    plan = planner.make_plan("eccv-table1-earlier", {"imagenet": tmp_path})
    assert plan.not_run == {f"Places conv{i}": "not run: no --data places205=ROOT"
                            for i in range(1, 6)}
    table4 = planner.make_plan("eccv-table4", {"voc": tmp_path}, model_arch="alexnet_small")
    assert set(table4.not_run) == {"VGG-16"}
    assert [r.columns for r in table4.runs if r.runs] == [("AlexNet",)]


def test_bad_data_names_and_layouts_are_refused(tmp_path):
    with pytest.raises(UserError, match="unknown data name 'imagenett'"):
        planner.parse_data([f"imagenett={tmp_path}"], "thesis-5.3")
    with pytest.raises(UserError, match="does not read 'voc'"):
        planner.parse_data([f"voc={tmp_path}"], "thesis-5.3")
    with pytest.raises(UserError, match="no such folder"):
        planner.parse_data([f"imagenet={tmp_path / 'nope'}"], "thesis-5.3")
    roots = planner.parse_data([f"imagenet={tmp_path}"], "thesis-5.3")
    with pytest.raises(UserError, match="no train/ folder"):
        planner.check_layouts(planner.make_plan("thesis-5.3", roots))
    with pytest.raises(UserError, match="no VOC2007"):
        planner.check_layouts(planner.make_plan("thesis-5.5", {"voc": tmp_path}))


def test_reference_row_rule():
    assert reference_row(table_info("eccv-table2"), "my-model", None) == "DeepCluster"
    assert reference_row(table_info("eccv-table2"), "deepcluster-alexnet", None) is None
    assert reference_row(table_info("thesis-5.3"), "my-model", None) == "Ours. km-ImNet-Sob"
    assert reference_row(table_info("thesis-5.3"), "m", "Random") == "Random"
    with pytest.raises(UserError, match="no such row"):
        reference_row(table_info("thesis-5.3"), "m", "Nobody")


def _rows(model: str, run_id: str, dataset: str, values: dict[str, list[float]]) -> list[dict]:
    out = []
    for layer, seeds in values.items():
        for seed, value in enumerate(seeds):
            row = {f: "" for f in RESULT_FIELDS}
            row.update(run_id=run_id, model=model, model_sha256="ab" * 32,
                       protocol="linear-conv", dialect="dc2018", dataset=dataset, split="val",
                       layer=layer, metric="top1_best_epoch", value=value, seed=seed,
                       config_hash="c0ffee", timestamp="2026-01-01T00:00:00")
            out.append(row)
    return out


def test_model_row_holds_the_plan_runs_only_with_deltas_and_not_run_cells(tmp_path):
    plan = planner.make_plan("eccv-table1-earlier", {"imagenet": tmp_path})
    values = {f"conv{i}": [10.0 * i, 10.0 * i + 2.0] for i in range(1, 6)}
    rows = pd.DataFrame(
        _rows("/m/mine", "run-a", "my-subset", values)  # the plan's imagenet run
        + _rows("/m/mine", "old-run", "imagenet", {"conv1": [99.0]})  # not of this plan
        + _rows("/m/mine", "run-b", "places205", {"conv1": [55.0]}))  # a run not planned
    picked = plan_results(rows, plan, {"01-linear-conv-imagenet": "run-a"})
    assert set(picked.run_id) == {"run-a"} and set(picked.dataset) == {"imagenet"}
    frame = reproduce_frame(plan, picked, "/m/mine", None)
    display = reproduce_display(frame, plan)
    ours = display[display["method"].str.contains("(ours)", regex=False)]
    assert len(ours) == 1
    reference = reference_row(plan.table, "/m/mine", None)
    published = load_published("eccv-table1-earlier").set_index("method").loc[reference]
    for i in range(1, 6):
        mean = np.mean(values[f"conv{i}"])  # two seeds, 2 apart: std sqrt(2)
        assert ours[f"IN conv{i}"].iloc[0] == f"{10 * i + 1:.1f} ± 1.41"
        delta = float(ours[f"Δ IN conv{i}"].iloc[0])
        assert delta == pytest.approx(mean - published[f"IN conv{i}"], abs=0.01)
        assert ours[f"Places conv{i}"].iloc[0] == NOT_RUN
    text = terminal_text(display, plan, reference)
    assert max(len(line) for line in text.splitlines()) <= 120
    assert f"Δ vs {reference}" in text and NOT_RUN in text


@pytest.mark.parametrize("table_id", sorted(PLANNED))
def test_terminal_table_fits_120_columns(table_id, tmp_path):
    plan = planner.make_plan(table_id, {})
    model = "/a/very/long/path/to/somebody/s/models/" + "x" * 60
    frame = reproduce_frame(plan, pd.DataFrame(columns=list(RESULT_FIELDS)), model, None)
    text = terminal_text(reproduce_display(frame, plan), plan, None)
    assert max(len(line) for line in text.splitlines()) <= 120


def test_work_estimate_counts_the_images_each_protocol_pushes_through():
    proto = get_protocol("linear-conv")
    config = proto.resolve_config()
    counts = {"train": 1000, "val": 50}
    # published linear-conv (one pass): every epoch sees each train image once and 10 crops
    # per held-out (5% of train) and val image; two-pass reads train minus held-out once more
    assert run_work("linear-conv", config, counts, 224) == (90 * (1000 + 10 * (50 + 50)), 0.0)
    two = proto.resolve_config(overrides=["selection_pass=two"])
    assert run_work("linear-conv", two, counts, 224) == \
        (90 * (950 + 10 * 50 + 1000 + 10 * 50), 0.0)
    fast = proto.resolve_config(layers=[{"fast": True}])
    assert run_work("linear-conv", fast, counts, 224) == (1050.0, 0.0)
    cls = get_protocol("voc07-cls").resolve_config(layers=[{"train_layers": "all"}])
    forward, train = run_work("voc07-cls", cls, {"voc07-test": 100}, 224)
    assert (forward, train) == (100 * 10, 150000 * 16)
    assert format_duration(3725) == "1h 02m" and format_duration(75) == "1m 15s"


def test_plans_file_lists_only_known_tables_and_columns():
    plans = pd.read_csv(Path(planner.PUBLISHED_DIR) / "plans.csv", dtype=str,
                        keep_default_na=False)
    for table_id, column in zip(plans.table_id, plans.column, strict=True):
        assert column in table_info(table_id).value_columns
