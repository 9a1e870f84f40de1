"""The one safe checkpoint loader, official-layout conversion, and the hub-format folder.

Every checkpoint read in dcbench goes through `read_checkpoint`: safetensors, or
`torch.load(..., weights_only=True)`. Pickles that need other globals are refused with the
list of globals; loads are strict, with a key report on mismatch.
"""

from __future__ import annotations

import json
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_model

from dcbench.core.errors import UserError
from dcbench.core.files import atomic_path, write_json, write_text
from dcbench.core.version import __version__
from dcbench.models.archs import create_backbone
from dcbench.models.backbone import Backbone
from dcbench.models.config_schema import read_model_config

HUB_CONFIG = "config.json"
HUB_WEIGHTS = "model.safetensors"
HUB_CARD = "README.md"


def read_checkpoint(path: str | Path) -> Any:
    """Read a `.safetensors` file or a torch pickle with `weights_only=True` (never unsafe).

    Every refusal is one line: an empty file, a file that is neither a zip archive nor a
    pickle ("not a PyTorch checkpoint"), or a pickle needing a global outside torch's
    weights-only allowlist (named; torch's advice to disable weights_only is never echoed).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path} is empty (0 bytes); expected a PyTorch checkpoint or "
                        ".safetensors file (an interrupted download or copy?)")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise UserError(f"{path} is not a valid safetensors file: {_first_line(err)}") from None
    with open(path, "rb") as handle:
        head = handle.read(2)
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and head[:1] != b"\x80":
        raise UserError(f"{path} is not a PyTorch checkpoint (neither a torch zip archive nor a "
                        f"pickle; {size} bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol chatter
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for hostile bytes; all mean "refused"
        failure: BaseException = err
    unsafe = _first_unsafe_global(path, is_zip, failure)
    if unsafe:
        raise UserError(f"refused {path}: it needs the pickle global {unsafe}, outside the "
                        "weights-only allowlist (possible code execution); convert it in a "
                        "trusted environment") from None
    raise UserError(f"{path} is not a PyTorch checkpoint dcbench can read "
                    f"({'zip' if is_zip else 'legacy pickle'} container: "
                    f"{_first_line(failure)})") from None


T = TypeVar("T")


def restore_state(path: str | Path, apply: Callable[[Any], T]) -> T:
    """Read a resume checkpoint safely and `apply` it; content that does not fit the run
    (`{}`, wrong keys, wrong shapes) is one line instead of a KeyError/RuntimeError trace."""
    state = read_checkpoint(path)
    try:
        if not isinstance(state, dict):
            raise TypeError(f"expected a dict, got {type(state).__name__}")
        return apply(state)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        reason = f"missing {err}" if isinstance(err, KeyError) else _first_line(err)
        raise UserError(f"resume checkpoint {path} does not fit this run ({reason}); delete it "
                        "or use a new --out") from None


_ADVICE = re.compile(r"weights_only|Weights only load failed|torch\.load|pytorch\.org", re.I)


def _first_line(err: BaseException) -> str:
    """The first line of an error that is not torch advice (at most 120 characters)."""
    for line in str(err).splitlines():
        line = line.strip()
        if line and not _ADVICE.search(line):
            return line[:120]
    return type(err).__name__


def _first_unsafe_global(path: Path, is_zip: bool, err: BaseException) -> str | None:
    """The first global the weights-only unpickler refused, from torch's error or a scan."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found:
        return found.group(1)
    if is_zip:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            return unsafe[0] if unsafe else None
        except Exception:  # an unreadable archive: no global to name
            return None
    return _scan_pickle_globals(path)


_SAFE_MODULES = ("torch", "collections", "numpy", "_codecs")


def _scan_pickle_globals(path: Path, max_pickles: int = 6) -> str | None:
    """The first non-torch global in the pickles at the start of a legacy file (never runs
    them: `pickletools.genops` only parses opcodes)."""
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for _ in range(max_pickles):
                for op, arg, _pos in pickletools.genops(handle):
                    if isinstance(arg, str):
                        strings.append(arg)
                    name = None
                    if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                        name = arg.replace(" ", ".")
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        name = f"{strings[-2]}.{strings[-1]}"
                    if name and not name.startswith(_SAFE_MODULES):
                        return name
    except Exception:  # the end of the pickles, or garbage: nothing more to name
        return None
    return None


def extract_state_dict(obj: Any, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object (`state_dict` / `model` / bare dict)."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} holds no state_dict of tensors")
    return dict(obj)


def key_report(missing: list[str], unexpected: list[str], limit: int = 20) -> str:
    """A readable report of missing / unexpected keys."""
    lines = []
    for title, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(sorted(keys)[:limit])
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            lines.append(f"  {title} keys ({len(keys)}): {shown}{more}")
    return "\n".join(lines)


def load_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict(strict=True)` with a key/shape report as a UserError on mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        detail = key_report(missing, unexpected)
        if shapes:
            detail += "\n  shape mismatches: " + "; ".join(shapes[:10])
        raise UserError(f"checkpoint {source} does not match the model", detail=detail.strip("\n"))
    module.load_state_dict(state_dict, strict=True)


def official_to_config(state_dict: dict[str, torch.Tensor], arch: str) -> dict[str, Any]:
    """Infer the dcbench config of an official DeepCluster checkpoint (official util.load_model)."""
    if arch not in ("alexnet", "vgg16"):
        raise UserError(f"official DeepCluster checkpoints are alexnet or vgg16, got arch {arch!r}")
    top = state_dict.get("top_layer.bias")
    return {
        "arch": arch,
        "sobel": "sobel.0.weight" in state_dict,
        "num_classes": int(top.shape[0]) if top is not None else 0,
    }


def strip_module(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's `.module`: `features.module.0.weight` -> `features.0.weight`."""
    out = {}
    for key, value in state_dict.items():
        new = key.replace(".module.", ".").removeprefix("module.")
        out[new] = value
    return out


def load_official(path: str | Path) -> Backbone:
    """Build a Backbone from an official DeepCluster `.pth.tar` (strict keys, safe load)."""

    obj = read_checkpoint(path)
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise UserError(f"{path} is not an official DeepCluster checkpoint (no 'state_dict')")
    state_dict = strip_module(extract_state_dict(obj, path))
    arch = obj.get("arch") or _guess_arch(state_dict)
    config = official_to_config(state_dict, str(arch))
    model = create_backbone(config, seed=0)
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    _fill_num_batches(model, state_dict)
    load_strict(model, state_dict, str(path))
    model.config["source"] = {"format": "deepcluster-official", "epoch": obj.get("epoch")}
    return model


def _guess_arch(state_dict: dict[str, torch.Tensor]) -> str:
    conv0 = state_dict.get("features.0.weight")
    if conv0 is not None and conv0.shape[-1] == 11:
        return "alexnet"
    return "vgg16"


def _fill_num_batches(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    # Old releases predate BN's num_batches_tracked; it does not change any output.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state_dict:
            state_dict[key] = torch.zeros_like(value)


def canonical_safetensors(path: str | Path) -> None:
    """Rewrite a safetensors header with its metadata keys sorted, in place.

    safetensors keeps `__metadata__` in a Rust HashMap, so its key order (and the file's
    sha256) changes from process to process; sorted, the same weights and metadata always
    give the same bytes and the hash identifies the model.
    """
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        data = handle.read()
        meta = header.pop("__metadata__", None)
        ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
        text = json.dumps(ordered, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the 8-byte alignment safetensors itself uses
        handle.seek(0)
        handle.write(len(text).to_bytes(8, "little") + text + data)
        handle.truncate()


def save_hub_dir(
    model: Backbone,
    out_dir: str | Path,
    card: str | None = None,
    extra_config: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write hub format: `config.json` + `model.safetensors` (+ `README.md`), each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "dcbench_version": __version__, **(metadata or {})}
    with atomic_path(out_dir / HUB_WEIGHTS) as tmp:
        save_model(model, str(tmp), metadata={k: str(v) for k, v in meta.items()})
        canonical_safetensors(tmp)
    config = {**model.config, **(extra_config or {})}
    config["weights_sha256"] = model.weights_sha256()
    write_json(out_dir / HUB_CONFIG, config)
    if card is not None:
        write_text(out_dir / HUB_CARD, card)
    return out_dir


def load_hub_dir(path: str | Path) -> Backbone:
    """Load a hub-format folder (config.json + model.safetensors), strictly."""

    path = Path(path)
    config_path, weights_path = path / HUB_CONFIG, path / HUB_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise UserError(
            f"{path} is not a dcbench hub folder",
            detail=f"  expected {HUB_CONFIG} and {HUB_WEIGHTS} inside it",
        )
    config = read_model_config(config_path)
    build = {k: v for k, v in config.items() if k not in ("taps", "weights_sha256")}
    model = create_backbone(build, seed=0)
    if "taps" in config and list(config["taps"]) != list(model.config["taps"]):
        raise UserError(f"{config_path}: taps {config['taps']!r:.80} are not the taps of "
                        f"{model.config['arch']} ({', '.join(model.config['taps'])})")
    load_strict(model, read_checkpoint(weights_path), str(weights_path))
    return model
