"""The hostile config suite: every key of every protocol config and of the training config,
fed wrong types, negatives, zero, NaN, inf, huge numbers and empty lists, through both the
Python layer and the `--set key=value` text, must give a one-line UserError (exit 2 on the
CLI) or a value that is sane by the hand-written rules below, never a traceback.

Only configs are resolved (no protocol runs); hypothesis draws bounded numbers of examples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.protocols.base import get_protocol, list_protocols
from dcbench.training.config import TrainConfig, resolve_config

NAN, INF = math.nan, math.inf
# One value per hostile category the issue names (and a few parser traps as text).
CATEGORIES: dict[str, object] = {
    "wrong-type-str": "abc", "wrong-type-map": {"a": 1}, "wrong-type-nested": [[1]],
    "null": None, "bool": True, "negative": -1, "negative-float": -0.5, "zero": 0,
    "nan": NAN, "inf": INF, "-inf": -INF, "huge": 10**30, "huge-float": 1e300,
    "denormal": 1e-320, "empty-list": [], "list-nan": [NAN], "list-negative": [-1],
    "list-huge": [10**30], "list-zero": [0],
}
TEXTS = ["[1,", "!!python/object/apply:os.system [echo hacked]", ".nan", "-.inf", "1e400",
         "9" * 5000, "{a: [", "", "~", "[]", "[.nan]", "0x7fffffffffffffffff", "'", "- - -"]
# Keys where a negative number means something (joblib: -1 = all cores).
NEGATIVE_OK = {"jobs"}
# List keys where an empty list means "the default" (cost_list, no milestones, default tap).
EMPTY_OK = {"costs", "milestones"}
EMPTY_OK_BY_PROTOCOL = {"nmi": {"layers"}, "knn-graph": {"layers"}}


def _targets() -> list[tuple[str, type]]:
    return [(name, get_protocol(name).Config) for name in list_protocols()] + \
        [("train", TrainConfig)]


def _resolve(target: str, layer: dict | None = None, overrides: list[str] | None = None):
    if target == "train":  # keyword fields: the layer between the recipe and --set
        return resolve_config("tiny", overrides, **(layer or {}))
    return get_protocol(target).resolve_config(layers=[layer or {}], overrides=overrides)


def _numbers(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_sane(target: str, config: object) -> None:
    """Hand-written rules every accepted config must satisfy (independent of the ranges)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        hint = str(hints[field.name])
        if isinstance(value, list | tuple) and not value and "Literal" not in hint:
            allowed = EMPTY_OK | EMPTY_OK_BY_PROTOCOL.get(target, set())
            default = field.default_factory() if field.default_factory is not \
                dataclasses.MISSING else field.default
            assert field.name in allowed or default == value or \
                (field.name == "layers" and target in ("nmi", "knn-graph")), \
                f"{target}: empty {field.name} accepted"
        for item in _numbers(value):
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            assert math.isfinite(item), f"{target}: {field.name}={value!r} accepted"
            assert abs(item) < 2**63, f"{target}: {field.name}={value!r} accepted"
            if item < 0:
                assert field.name in NEGATIVE_OK, f"{target}: {field.name}={value!r} accepted"
            if isinstance(item, int) and field.name not in ("seed",):
                assert item < 2**31, f"{target}: {field.name}={value!r} accepted"
    if isinstance(config, TrainConfig):
        config.validate()


def _outcome(target: str, **kwargs: object) -> None:
    try:
        config = _resolve(target, **kwargs)
    except UserError as err:
        assert str(err) and "\n" not in str(err), repr(str(err))
        return
    _check_sane(target, config)


CASES = [(target, field.name) for target, cls in _targets()
         for field in dataclasses.fields(cls)]


@pytest.mark.parametrize("target, key", CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_every_key_against_every_hostile_category(target: str, key: str) -> None:
    for value in CATEGORIES.values():
        _outcome(target, layer={key: value})
    for text in TEXTS:
        _outcome(target, overrides=[f"{key}={text}"])


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


@pytest.mark.parametrize("target", [t for t, _ in _targets()])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_values_never_traceback(target: str, data: st.DataObject) -> None:
    cls = dict(_targets())[target]
    key = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]))
    value = data.draw(VALUES)
    _outcome(target, layer={key: value})
    text = data.draw(st.one_of(st.sampled_from(TEXTS), st.text(max_size=12)))
    if "\x00" not in text:
        _outcome(target, overrides=[f"{key}={text}"])


@settings(max_examples=40, deadline=None)
@given(target=st.sampled_from([t for t, _ in _targets()]), data=st.data())
def test_the_cli_says_one_line_and_exits_2(target: str, data: st.DataObject) -> None:
    """Through `dcbench eval/train --set`: a bad key value or (when accepted) the missing
    --data folder; either way one `dcbench: error:` line, exit 2, no traceback."""
    cls = dict(_targets())[target]
    key = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]))
    text = data.draw(st.one_of(st.sampled_from(TEXTS), st.sampled_from(
        ["-1", "0", ".nan", ".inf", "1e30", "[]", "abc", "{a: 1}", "[-1]"])))
    missing = "/nonexistent/dcbench-hostile"
    argv = (["train", "--recipe", "tiny", "--data", missing, "--out", missing + "-out"]
            if target == "train" else
            ["eval", "--protocol", target, "--model", "arch:alexnet_small", "--data", missing,
             "--no-store"]) + ["--set", f"{key}={text}"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert code == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("dcbench: error: "), err.getvalue()
