"""Declared config ranges (core/bounds.py) and hostile config text (core/config.py).

The expected verdicts are written out by hand here (a plain reading of each range), not
taken from the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from dcbench.core.bounds import MAX_COUNT, Bounds, bounded, field_bounds
from dcbench.core.config import from_dict, load_yaml, parse_overrides, resolve
from dcbench.core.errors import UserError
from dcbench.protocols.base import get_protocol, list_protocols
from dcbench.training.config import TrainConfig, resolve_config


@pytest.mark.parametrize("bounds, value, ok", [
    (Bounds(ge=1, le=10), 1, True), (Bounds(ge=1, le=10), 10, True),
    (Bounds(ge=1, le=10), 0, False), (Bounds(ge=1, le=10), 11, False),
    (Bounds(gt=0), 1e-300, True), (Bounds(gt=0), 0.0, False),
    (Bounds(gt=0), math.nan, False), (Bounds(gt=0), math.inf, False),
    (Bounds(ge=0, lt=1), 0.999, True), (Bounds(ge=0, lt=1), 1.0, False),
    (Bounds(ge=-1, le=8, exclude=(0,)), 0, False), (Bounds(ge=-1, le=8, exclude=(0,)), -1, True),
    (Bounds(choices=("a", "b")), "a", True), (Bounds(choices=("a", "b")), "c", False),
    (Bounds(choices=("a", "b")), ["a"], True), (Bounds(choices=("a", "b")), [], True),
    (Bounds(choices=("a", "b"), min_len=1), [], False),
    (Bounds(choices=("a", "b")), {"a": 1}, False),
    (Bounds(gt=0), [1.0, 2.0], True), (Bounds(gt=0), [1.0, math.nan], False),
    (Bounds(min_len=1), ["conv1"], True), (Bounds(min_len=1), [], False),
    (Bounds(ge=1), True, False), (Bounds(ge=1), "3", False), (Bounds(ge=1), None, True),
    (Bounds(ge=1, integer=True), 2.5, False),
])
def test_bounds_verdicts(bounds: Bounds, value: object, ok: bool) -> None:
    assert (bounds.problem(value) is None) is ok


@dataclasses.dataclass
class _Demo:
    k: int = bounded(3, ge=1, le=MAX_COUNT)
    xs: list[float] = bounded(default_factory=lambda: [1.0], gt=0, min_len=1)
    mode: str = bounded("a", choices=("a", "b"))
    name: str = "free"


@pytest.mark.parametrize("override, message", [
    ("k=0", "'k' must be an integer in [1, 2**31-1], got 0"),
    ("k=1e12", "'k' must be an integer in [1, 2**31-1]"),
    ("k=1e400", "'k': expected an integer"),
    ("k=" + "9" * 5000, "--set k is not valid YAML"),
    ("k=[1,", "--set k is not valid YAML"),
    ("k=!!python/object/apply:os.system [echo hacked]", "--set k is not valid YAML"),
    ("k=" + "[" * 100_000, "nested too deeply"),
    ("xs=[.nan]", "'xs': expected a finite number"),
    ("xs=[.inf]", "'xs': expected a finite number"),
    ("xs=[]", "'xs' must hold at least 1 item"),
    ("xs=[-1]", "'xs' items must each be a finite number > 0"),
    ("mode=c", "'mode' must be one of ['a', 'b']"),
    ("name=[1, 2]", "'name': expected a string"),
    ("name={a: 1}", "'name': expected a string"),
], ids=lambda v: str(v)[:24])
def test_hostile_overrides_are_one_line_user_errors(override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        resolve(_Demo, overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_conflicting_nested_overrides_are_refused() -> None:
    with pytest.raises(UserError, match="cannot also hold keys"):
        parse_overrides(["a=1", "a.b=2"])


def test_mixed_type_unknown_keys_are_named() -> None:
    with pytest.raises(UserError, match="unknown config key"):
        from_dict(_Demo, {1: 2, "zz": 3})


@pytest.mark.parametrize("content, message", [
    (b"k: \xff\xfe\n", "not UTF-8"),
    (b"k: " + b"[" * 100_000, "nested too deeply"),
    (b"k: 1e400\n", "expected an integer"),
    (b"k: " + b"7" * 5000 + b"\n", "not valid YAML"),
    (b"!!python/object/apply:os.system [echo hacked]\n", "not valid YAML"),
], ids=lambda v: str(v)[:24])
def test_hostile_config_files_are_user_errors(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        resolve(_Demo, load_yaml(path))


def _targets() -> list[tuple[str, type]]:
    return [(name, get_protocol(name).Config) for name in list_protocols()] + \
        [("train", TrainConfig)]


def _numeric(hint: object) -> bool:
    if hint in (int, float):
        return True
    args = [a for a in typing.get_args(hint) if a not in (type(None), Ellipsis)]
    return bool(args) and all(_numeric(a) for a in args)


@pytest.mark.parametrize("name, cls", _targets())
def test_every_numeric_key_declares_a_range(name: str, cls: type) -> None:
    """The one mechanism covers every protocol and the training config: no number unchecked."""
    hints = typing.get_type_hints(cls)
    bare = [f.name for f in dataclasses.fields(cls)
            if _numeric(hints[f.name]) and field_bounds(f) is None]
    assert not bare, f"{name}: numeric keys without a declared range: {bare}"


@pytest.mark.parametrize("protocol, override, key", [
    ("voc07-svm", "positive_weight=.nan", "positive_weight"),
    ("voc07-svm", "costs=[.nan]", "costs"),
    ("voc07-svm", "tol=-1", "tol"),
    ("voc07-svm", "jobs=0", "jobs"),
    ("voc07-svm", "max_iter=1e12", "max_iter"),
    ("voc07-svm", "pooling=nope", "pooling"),
    ("voc07-lowshot-svm", "samples=0", "samples"),
    ("voc07-lowshot-svm", "single_shot_cost=.nan", "single_shot_cost"),
    ("voc07-lowshot-svm", "shots=[]", "shots"),
    ("retrieval", "eps_ratio=.nan", "eps_ratio"),
    ("retrieval", "pca_max_images=-1", "pca_max_images"),
    ("retrieval", "pca_max_images=0", "pca_max_images"),
    ("retrieval", "levels=1000", "levels"),
    ("retrieval", "shard_size=0", "shard_size"),
    ("retrieval", "datasets=[holidays]", "datasets"),
    ("retrieval", "datasets=[]", "datasets"),
    ("retrieval", "layer=fc7", "layer"),
    ("retrieval", "image_size=30000", "image_size"),
    ("linear-conv", "layers=[]", "layers"),
    ("knn", "temperature=.inf", "temperature"),
    ("low-shot", "inits=[pretrained, nope]", "inits"),
])
def test_issue_19_values_are_refused_by_the_config_loader(protocol: str, override: str,
                                                          key: str) -> None:
    with pytest.raises(UserError, match=f"config key '{key}'"):
        get_protocol(protocol).resolve_config(overrides=[override])


@pytest.mark.parametrize("override", ["momentum=-5", "momentum=1.5", "lr=.nan", "k=0",
                                      "crop_scale=[0, 1]", "seed=-1", "workers=100000"])
def test_training_config_ranges(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(UserError, match=f"'{key}'"):
        resolve_config("tiny", [override])
