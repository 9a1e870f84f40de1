"""The protocol registry, Result rows and config resolution."""

from __future__ import annotations

import dataclasses

import pytest

from dcbench.core.errors import UserError
from dcbench.protocols import base
from dcbench.protocols.base import Protocol, ProtocolConfig, Result, register_protocol

RESULT_FIELDS = ["run_id", "model", "model_sha256", "protocol", "dialect", "dataset", "split",
                 "layer", "metric", "value", "seed", "config_hash", "dcbench_version",
                 "code_revision", "device", "timestamp"]
MINE = ["knn", "knn-graph", "linear-conv", "low-shot", "mlp", "nmi"]


def test_result_has_exactly_the_contract_fields():
    assert [f.name for f in dataclasses.fields(Result)] == RESULT_FIELDS
    row = Result(*[f"v{i}" for i in range(9)], 1.5, 3, "h", "0.1", "rev", "cpu", "t")
    assert list(row.as_dict()) == RESULT_FIELDS
    assert row.as_dict()["value"] == 1.5


def test_builtin_protocols_are_registered_with_dc2018_defaults():
    names = base.list_protocols()
    assert set(MINE) <= set(names)
    for name in MINE:
        proto = base.get_protocol(name)
        assert proto.name == name
        assert proto.Config().dialect == "dc2018"
        assert "dc2018" in proto.DIALECTS and {"published", "smoke"} <= set(proto.SCHEDULES)


def test_unknown_protocol_lists_valid_names():
    with pytest.raises(UserError, match="valid: .*linear-conv.*Did you mean linear-conv"):
        base.get_protocol("linear-cnv")


def test_duplicate_registration_is_refused():
    @dataclasses.dataclass
    class Cfg(ProtocolConfig):
        pass

    class Dummy(Protocol):
        Config = Cfg

    with pytest.raises(ValueError, match="already registered"):
        register_protocol("linear-conv")(Dummy)
    with pytest.raises(TypeError):
        register_protocol("not-a-class")(lambda: None)


def test_resolve_config_layers_dialect_then_schedule_then_overrides():
    proto = base.get_protocol("linear-conv")
    cfg = proto.resolve_config(dialect="goyal2019", schedule="smoke",
                               overrides=["weight_decays=[0.001]"])
    assert cfg.dialect == "goyal2019" and cfg.bn_head and cfg.pooling == "goyal2019"
    assert cfg.epochs == proto.SCHEDULES["smoke"]["epochs"]  # schedule over dialect
    assert cfg.weight_decays == [0.001]  # --set over everything
    with pytest.raises(UserError, match="no dialect 'goyal'"):
        proto.resolve_config(dialect="goyal")
    with pytest.raises(UserError, match="no schedule"):
        proto.resolve_config(schedule="quick")
    with pytest.raises(UserError, match="unknown config key"):
        proto.resolve_config(overrides=["epoch=3"])


def test_results_from_metrics_builds_rows_and_checks_names():
    info = base.RunInfo("r", "m", "sha", "knn", "dc2018", "set", 0, "h", "0.1", "rev", "cpu",
                        "2026-01-01T00:00:00+00:00")
    rows = base.results_from_metrics(info, {"top1": 50.0, "top1_mean": 1.0, "ap_dog": 0.5},
                                     split="val", layer="conv3", seed=4)
    assert [r.metric for r in rows] == ["top1", "top1_mean", "ap_dog"]
    assert all(r.seed == 4 and r.layer == "conv3" and r.protocol == "knn" for r in rows)
    with pytest.raises(ValueError, match="vocabulary"):
        base.results_from_metrics(info, {"acc": 1.0}, split="val", layer="x")
    with pytest.raises(ValueError, match="split"):
        base.results_from_metrics(info, {"top1": 1.0}, split="validation", layer="x")
