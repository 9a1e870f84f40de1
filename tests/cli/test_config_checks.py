"""Protocol-config ranges: every shipped preset passes, bad values name the key."""

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


@pytest.mark.parametrize("protocol, key, value", [
    ("knn", "batch_size", 0), ("knn", "batch_size", -1), ("knn", "batch_size", 2**40),
    ("linear-conv", "heldout_fraction", 1.0), ("linear-conv", "momentum", -0.1),
    ("linear-conv", "lrs", [0.1, -1.0]), ("knn", "seed", -5), ("linear-conv", "workers", -1),
    ("knn", "k", -1), ("voc07-svm", "jobs", 0), ("retrieval", "levels", 1000)])
def test_out_of_range_values_built_in_python_name_the_key(protocol: str, key: str,
                                                           value: object) -> None:
    """A config built around the loader (dataclasses.replace) is still checked before a run."""
    config = get_protocol(protocol).resolve_config()
    with pytest.raises(UserError, match=f"{protocol}: config key '{key}'"):
        check_protocol_config(dataclasses.replace(config, **{key: value}), protocol)
