"""Dataclass configs <-> YAML, with `--set key=value` overrides.

Every training recipe and protocol is a dataclass whose defaults are the published
setting. A run resolves: defaults < YAML file < `--set` overrides, then saves the resolved
config (plus versions) next to its outputs so the run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dcbench.core.bounds import MAX_SEED, bounds_problems
from dcbench.core.errors import UserError

T = TypeVar("T")
# What a hostile YAML/JSON text can raise besides YAMLError: a 5000-digit integer
# (ValueError), 100k nested brackets (RecursionError), bytes that are not UTF-8.
PARSE_ERRORS = (yaml.YAMLError, ValueError, RecursionError, UnicodeDecodeError)


def parse_yaml_text(text: str, where: str) -> Any:
    """`yaml.safe_load(text)`, every parse failure as one UserError naming `where`."""
    try:
        return yaml.safe_load(text)
    except PARSE_ERRORS as err:
        if isinstance(err, RecursionError):
            reason = "nested too deeply"
        elif isinstance(err, ValueError) and "digits" in str(err):
            reason = "a number with thousands of digits"
        else:
            reason = " ".join(str(err).split())[:200]
        raise UserError(f"{where} is not valid YAML: {reason}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-able dict of a (possibly nested) dataclass config."""
    return dataclasses.asdict(config)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise a UserError naming the key."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except UserError as err:
                errors.append(str(err))
        raise UserError(f"config key '{key}': {value!r} does not fit {annotation}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}': expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = parse_yaml_text(value, f"config key '{key}'") \
                if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, list | tuple):
            value = [value]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"config key '{key}': expected {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"config key '{key}': {value!r} is not one of {list(args)}")
        return value
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise UserError(f"config key '{key}': expected true/false, got {value!r}")
    if annotation in (int, float, str):
        return _scalar(value, annotation, key)
    return value


def _scalar(value: Any, annotation: type, key: str) -> Any:
    """An int (within +-2**63), a finite float or a string from a scalar; else a UserError."""
    expected = {int: "an integer", float: "a finite number", str: "a string"}[annotation]
    wrong = UserError(f"config key '{key}': expected {expected}, got {value!r:.60}")
    if isinstance(value, list | tuple | dict | set) or value is None:
        raise wrong
    if isinstance(value, bool) and annotation is not str:
        raise wrong
    try:
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if annotation is int and isinstance(value, str):
            value = float(value) if any(c in value for c in ".eE") else int(value)
        result = annotation(value)
    except (TypeError, ValueError, OverflowError):
        raise wrong from None
    if annotation is float and not math.isfinite(result):
        raise wrong
    if annotation is int and not -MAX_SEED - 1 <= result <= MAX_SEED:
        raise wrong
    return result


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a dict, refusing unknown keys (a typo must not be silent)."""
    types_by_name = _field_types(cls)
    unknown = sorted(str(k) for k in set(data) - set(types_by_name))
    if unknown:
        raise UserError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid: {', '.join(prefix + k for k in sorted(types_by_name))}"
        )
    kwargs = {k: _coerce(v, types_by_name[k], prefix + k) for k, v in data.items()}
    config = cls(**kwargs)
    check_bounds(config, prefix)
    return config


def check_bounds(config: Any, prefix: str = "") -> None:
    """Refuse (one line naming the key) a value outside its field's declared `bounded` range."""
    for key, problem, value in bounds_problems(config, prefix):
        raise UserError(f"config key '{key}' {problem}, got {value!r:.60}")


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ['a.b=3', 'c=[1,2]'] into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        value = parse_yaml_text(raw, f"--set {key.strip()}") if raw != "" else ""
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key.strip()}: {part!r} was set to a value above; "
                                "it cannot also hold keys")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base`."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}") from None
    data = parse_yaml_text(text, f"config file {path}") or {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping at top level")
    return data


def resolve(
    cls: type[T],
    *layers: dict[str, Any],
    overrides: list[str] | None = None,
) -> T:
    """Resolve a config: dataclass defaults < each layer in order < `--set` overrides."""
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge(data, layer)
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def dump_yaml(config: Any) -> str:
    """YAML text of a config (dataclass or dict), keys in declaration order."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else config
    return yaml.safe_dump(_plain(data), sort_keys=False)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
