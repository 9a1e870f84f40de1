"""Generic protocol-config ranges: every shipped preset passes, bad values name the key."""

from __future__ import annotations

import dataclasses

import pytest

from dcbench.cli.config_checks import check_protocol_config
from dcbench.core.errors import UserError
from dcbench.protocols.base import get_protocol, list_protocols


@pytest.mark.parametrize("name", list_protocols())
def test_every_shipped_dialect_and_schedule_passes(name: str) -> None:
    proto = get_protocol(name)
    for dialect in proto.DIALECTS:
        for schedule in proto.SCHEDULES:
            config = proto.resolve_config(dialect=dialect, schedule=schedule, layers=[],
                                          overrides=[])
            check_protocol_config(config, name)


@pytest.mark.parametrize("key, value", [("batch_size", 0), ("batch_size", -1),
                                        ("batch_size", 2**40), ("heldout_fraction", 1.0),
                                        ("momentum", -0.1), ("lrs", [0.1, -1.0]),
                                        ("seed", -5), ("workers", -1), ("k", -1)])
def test_out_of_range_values_name_the_key(key: str, value) -> None:
    fields = {"batch_size": 8, "heldout_fraction": 0.1, "momentum": 0.9, "lrs": [0.1],
              "seed": 0, "workers": 0, "k": 20}
    cls = dataclasses.make_dataclass("Config", [(k, type(v)) for k, v in fields.items()])
    config = cls(**{**fields, key: value})
    with pytest.raises(UserError, match=f"'{key}'"):
        check_protocol_config(config, "test")
