"""The schema of a model config (`config.json` of a hub folder, `arch:` query, catalog entry).

Checked before any network is built, so a hostile or corrupt config is one clear line
("num_classes must be an integer in [0, 1000000], got 'abc'") instead of a traceback or a
petabyte allocation. Keys that build the network are typed and range-checked; descriptive
keys written by dcbench itself are allowed as they are; any other key is refused, since a
typo ("sobell") would otherwise silently change the network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dcbench.core.errors import UserError

MAX_CLASSES = 1_000_000
MAX_INPUT_SIZE = 4096
MAX_SEED = 2**63 - 1
# Normalisation (x - mean) / std of pixels in [0, 1] (or [0, 255] for Caffe-style models):
# a std below 1e-3 (1e-320 is 0 in float32) saturates every layer, so every probe is at chance.
MIN_STD, MAX_STD, MAX_MEAN = 1e-3, 1e3, 1e3

# keys written by dcbench next to the build keys (provenance and bookkeeping), never built
METADATA_KEYS = frozenset({
    "taps", "weights_sha256", "name", "source", "init_seed", "deepcluster_epoch",
    "deepcluster_epochs", "trained_by", "source_url", "source_sha256", "dcbench_version",
})
BUILD_KEYS = frozenset({"arch", "sobel", "bn", "num_classes", "mean", "std", "input_size"})


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(
        c in "0123456789abcdef" for c in value.lower())


def _flag(value: Any) -> bool:
    return isinstance(value, bool) or (_int_in(value, 0, 1))


def _triple(value: Any, low: float, high: float) -> bool:
    if not isinstance(value, list | tuple) or len(value) != 3:
        return False
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
             for v in value)
    return ok and all(low <= v <= high for v in value)


_RULES: dict[str, tuple[Any, str]] = {
    "arch": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "sobel": (_flag, "true or false"),
    "bn": (_flag, "true or false"),
    "num_classes": (lambda v: _int_in(v, 0, MAX_CLASSES), f"an integer in [0, {MAX_CLASSES}]"),
    "input_size": (lambda v: _int_in(v, 16, MAX_INPUT_SIZE),
                   f"an integer in [16, {MAX_INPUT_SIZE}]"),
    "mean": (lambda v: _triple(v, -MAX_MEAN, MAX_MEAN),
             f"a list of 3 numbers in [-{MAX_MEAN:g}, {MAX_MEAN:g}]"),
    "std": (lambda v: _triple(v, MIN_STD, MAX_STD),
            f"a list of 3 numbers in [{MIN_STD:g}, {MAX_STD:g}]"),
    # the metadata keys dcbench writes: checked too, so an edited value is never ignored
    "taps": (lambda v: isinstance(v, list) and bool(v) and all(
        isinstance(t, str) and t for t in v), "a non-empty list of tap names"),
    "weights_sha256": (lambda v: _hex64(v), "64 hex digits"),
    "source_sha256": (lambda v: _hex64(v), "64 hex digits"),
    "name": (lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a string of 1-200 chars"),
    "source": (lambda v: isinstance(v, str | dict), "a string or an object"),
    "source_url": (lambda v: isinstance(v, str), "a string"),
    "trained_by": (lambda v: isinstance(v, str), "a string"),
    "dcbench_version": (lambda v: isinstance(v, str), "a string"),
    "init_seed": (lambda v: _int_in(v, 0, MAX_SEED), "an integer in [0, 2**63-1]"),
    "deepcluster_epoch": (lambda v: _int_in(v, 0, 10**9), "an integer >= 0"),
    "deepcluster_epochs": (lambda v: _int_in(v, 0, 10**9), "an integer >= 0"),
}
assert set(_RULES) == BUILD_KEYS | METADATA_KEYS  # every key has its rule


def check_model_config(config: Any, where: str = "model config") -> dict[str, Any]:
    """Refuse (one line) a config that is not a mapping, has unknown keys or bad values."""
    if not isinstance(config, dict):
        raise UserError(f"{where}: expected a JSON object of model settings, "
                        f"got {type(config).__name__}")
    unknown = sorted(str(k) for k in config if k not in BUILD_KEYS | METADATA_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                        f"valid: {', '.join(sorted(BUILD_KEYS))} (plus dcbench metadata)")
    if "arch" not in config:
        raise UserError(f"{where}: no 'arch' key; expected e.g. {{\"arch\": \"alexnet\"}}")
    for key, (ok, expected) in _RULES.items():
        if key in config and not ok(config[key]):
            raise UserError(f"{where}: {key} must be {expected}, got {config[key]!r:.60}")
    return config


def check_seed(value: Any, where: str = "seed") -> int:
    """A seed given as text or number -> int, or a one-line error."""
    try:
        seed = int(value)
        if isinstance(value, float | bool) or not 0 <= seed <= MAX_SEED:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{where} must be an integer in [0, 2**63-1], got {value!r:.60}") from None
    return seed


def read_model_config(path: str | Path) -> dict[str, Any]:
    """Read and check a `config.json` (malformed JSON is a one-line error naming the file)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err})") from None
    except (ValueError, RecursionError):  # a 5000-digit number, 100k nested brackets
        raise UserError(f"{path} is not valid JSON (nested too deeply or a number too long)"
                        ) from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    return check_model_config(data, str(path))
