"""voc07-svm and voc07-lowshot-svm end to end on the built-in VOC set: rows, resume, dialects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import VOC_CLASSES
from dcbench.leaderboards.published import table_info
from dcbench.models import create_backbone
from dcbench.protocols import get_protocol
from dcbench.protocols.base import check_metric_name, list_protocols
from dcbench.protocols.svm import core as svm_core


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=16, n_val=16, n_test=24,
                        size=64, seed=0)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))


def _run(name, root, work_dir, overrides=(), dialect=None):
    protocol = get_protocol(name)
    config = protocol.resolve_config(dialect=dialect, schedule="smoke",
                                     overrides=["layers=[conv4,conv5]", *overrides])
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    return protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                        work_dir=work_dir), config


def test_svm_rows_and_resume_without_refit(voc_root, tmp_path, monkeypatch):
    rows, config = _run("voc07-svm", voc_root, tmp_path)
    assert config.pooling == "goyal2019" and config.cost_list == "vissl"
    assert {r.layer for r in rows} == {"conv4", "conv5"}
    assert {(r.dataset, r.split) for r in rows} == {("voc2007", "test")}
    for layer in ("conv4", "conv5"):
        aps = [r.value for r in rows if r.layer == layer and r.metric.startswith("ap_")]
        mean = next(r.value for r in rows if r.layer == layer and r.metric == "map")
        assert mean == pytest.approx(np.mean(aps)) and 0 <= mean <= 100
    columns = {c.column: c.key for c in table_info("mmselfsup-r50-voc07-svm").columns}
    assert columns["SVM mAP"] in {(r.protocol, r.dataset, r.split, r.layer, r.metric)
                                  for r in rows}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["conv5"]) >= {f"cost_{c}" for c in VOC_CLASSES}

    def boom(*args, **kwargs):
        raise AssertionError("resume must not refit")

    monkeypatch.setattr(svm_core, "fit_class", boom)
    again, _ = _run("voc07-svm", voc_root, tmp_path)
    assert [r.value for r in again] == pytest.approx([r.value for r in rows])


def test_goyal2019_dialect_uses_caffe2_costs_and_no_short_resize():
    protocol = get_protocol("voc07-svm")
    config = protocol.resolve_config(dialect="goyal2019")
    assert config.cost_list == "caffe2" and config.resize_short is None
    assert protocol.resolve_config().jobs == -1


def test_lowshot_rows_samples_saved_and_reused(voc_root, tmp_path):
    rows, config = _run("voc07-lowshot-svm", voc_root, tmp_path / "a",
                        ["layers=[conv5]", "shots=[1]", "samples=3"])
    per_sample = [r.value for r in rows if r.metric == "map"]
    stats = {r.metric: r.value for r in rows if r.metric != "map"}
    assert len(per_sample) == 3 and {r.layer for r in rows} == {"conv5/k1"}
    assert stats["map_mean"] == pytest.approx(np.mean(per_sample))
    assert stats["map_std"] == pytest.approx(np.std(per_sample, ddof=1))
    assert stats["map_min"] == min(per_sample) and stats["map_max"] == max(per_sample)
    assert sorted(r.seed for r in rows if r.metric == "map") == [0, 1, 2]
    columns = {c.column: c.key for c in table_info("mmselfsup-r50-voc07-svm").columns}
    assert columns["k=1"] in {(r.protocol, r.dataset, r.split, r.layer, r.metric) for r in rows}
    saved = tmp_path / "a" / "lowshot_samples.json"
    reused, _ = _run("voc07-lowshot-svm", voc_root, tmp_path / "b",
                     ["layers=[conv5]", "shots=[1]", "samples=3", f"samples_file={saved}"])
    assert [r.value for r in reused] == pytest.approx([r.value for r in rows])
    assert json.loads((tmp_path / "b" / "lowshot_samples.json").read_text()) == json.loads(
        saved.read_text())


def test_lowshot_test_selection_is_at_least_cv(voc_root, tmp_path):
    common = ["layers=[conv5]", "shots=[1]", "samples=2", "single_shot_cost=0.1"]
    cv, _ = _run("voc07-lowshot-svm", voc_root, tmp_path / "cv", common)
    best, config = _run("voc07-lowshot-svm", voc_root, tmp_path / "t",
                        [*common, "cost_selection=test"])
    value = {r.metric: r.value for r in cv if r.metric == "map_mean"}["map_mean"]
    # the FSSB rule picks the best cost on test among (0.1, 1, 10): never below cost 0.1
    assert {r.metric: r.value for r in best}["map_mean"] >= value - 1e-9


def test_new_protocols_are_registered_with_both_schedules():
    for name in ("voc07-svm", "voc07-lowshot-svm", "retrieval"):
        assert name in list_protocols()
        protocol = get_protocol(name)
        assert {"published", "smoke"} <= set(protocol.SCHEDULES)
        assert protocol.Config().dialect == "dc2018" and "dc2018" in protocol.DIALECTS
    for metric in ("map_min", "map_max", "map_mean", "map_std"):
        check_metric_name(metric)
