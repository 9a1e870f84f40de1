"""`load_model(spec)`: one entry point for every way a user names a network.

Accepted specs, tried in this order:
- `hf-hub:org/repo[@rev]`      a dcbench hub-format repo on the Hugging Face Hub
- `torchvision:NAME[@WEIGHTS]` a torchvision model with a default tap map (default weights)
- `timm:NAME[@TAG]`             a timm model with its pretrained weights (`@random`: random init)
- `arch:NAME[?k=v&...]`        a fresh random-init architecture (`sobel`, `num_classes`, `seed`)
- a path: hub folder, `.safetensors` (config.json beside it), `.pth`/`.pth.tar`
  (official DeepCluster layout, or a dcbench state_dict with config.json beside it)
- a catalog name (`deepcluster-alexnet`, `random-alexnet-sobel[?seed=N]`, ...)

`pretrained=False` gives the same architecture with a random init (seed 0) and downloads
nothing where the architecture is known without the weights (catalog, torchvision, timm).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

from dcbench.core.errors import MissingFileError, UserError
from dcbench.models.archs import create_backbone, list_archs
from dcbench.models.backbone import Backbone
from dcbench.models.checkpoints import (
    HUB_CONFIG,
    extract_state_dict,
    load_hub_dir,
    load_official,
    load_strict,
    read_checkpoint,
)
from dcbench.models.config_schema import check_model_config, check_seed, read_model_config
from dcbench.models.external import load_timm, load_torchvision
from dcbench.models.sources.catalog import get_entry, has_entry, list_entries
from dcbench.models.sources.hf import parse_hf_spec, pull_hf
from dcbench.models.sources.pull import pull


def _parse_query(text: str) -> dict[str, Any]:
    return {k: yaml.safe_load(v) for k, v in parse_qsl(text, keep_blank_values=True)}


def _from_arch(spec: str) -> Backbone:
    arch, _, query = spec.partition("?")
    params = _parse_query(query)
    seed = check_seed(params.pop("seed", 0), f"arch:{spec}: seed")
    return create_backbone(check_model_config({"arch": arch, **params}, f"arch:{spec}"),
                           seed=seed)


def _from_path(path: Path) -> Backbone:
    if path.is_dir():
        return load_hub_dir(path)
    config_path = path.parent / HUB_CONFIG
    if path.suffix == ".safetensors":
        if not config_path.is_file():
            raise UserError(f"{path}: a bare .safetensors needs a {HUB_CONFIG} beside it")
        return _with_config(path, config_path)
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and "arch" in obj:
        return load_official(path)
    if config_path.is_file():
        return _with_config(path, config_path, obj)
    raise UserError(
        f"{path}: not an official DeepCluster checkpoint (dict with 'arch' and 'state_dict') "
        f"and no {HUB_CONFIG} beside it to say which architecture it is"
    )


def _with_config(path: Path, config_path: Path, obj: Any = None) -> Backbone:
    config = read_model_config(config_path)
    build = {k: v for k, v in config.items() if k not in ("taps", "weights_sha256")}
    model = create_backbone(build, seed=0)
    state = extract_state_dict(obj if obj is not None else read_checkpoint(path), path)
    load_strict(model, state, str(path))
    return model


def _from_catalog(name: str, query: str, pretrained: bool = True) -> Backbone:
    entry = get_entry(name)
    if not pretrained:  # the architecture is known without downloading anything
        return create_backbone({"arch": entry.arch, "sobel": entry.sobel}, seed=0)
    if entry.source == "random":
        params = _parse_query(query)
        seed = check_seed(params.pop("seed", entry.seed), f"{name}: seed")
        model = create_backbone({"arch": entry.arch, "sobel": entry.sobel, **params}, seed=seed)
        model.config["init_seed"] = seed
        return model
    return load_hub_dir(pull(name))


def load_model(spec: str, pretrained: bool = True) -> Backbone:
    """Resolve `spec` (see the module docstring) to a Backbone on the CPU in eval mode.

    `pretrained=False`: the same architecture with a random init (seed 0), like timm.
    Raises `UnknownNameError` (a KeyError) for unknown names, `MissingFileError` (a
    FileNotFoundError) for missing paths, `NetworkError` offline; all are `UserError`s.
    """
    spec = str(spec).strip()
    if spec.startswith("hf-hub:"):
        repo, revision = parse_hf_spec(spec.removeprefix("hf-hub:"))
        model = load_hub_dir(pull_hf(repo, revision))
    elif spec.startswith("torchvision:"):
        model = load_torchvision(spec.removeprefix("torchvision:"), pretrained)
    elif spec.startswith("timm:"):
        model = load_timm(spec.removeprefix("timm:"), pretrained)
    elif spec.startswith("arch:"):
        model = _from_arch(spec.removeprefix("arch:"))
    elif Path(spec).expanduser().exists():
        model = _from_path(Path(spec).expanduser())
    else:
        name, _, query = spec.partition("?")
        if not has_entry(name) and ("/" in name or name.endswith((".pth", ".tar", ".safetensors"))):
            raise MissingFileError(f"model file or folder not found: {spec}")
        model = _from_catalog(name, query, pretrained)
    if not pretrained and not spec.startswith(("torchvision:", "timm:")):
        model = _random_like(model)
    model.name = spec
    return model.eval()


def _random_like(model: Backbone) -> Backbone:
    """A fresh seed-0 init of `model`'s architecture (the weights are not kept)."""
    if model.config.get("arch", "").startswith(("torchvision:", "timm:")):
        return model
    keep = ("taps", "weights_sha256", "init_seed", "name", "source_url", "source_sha256")
    build = {k: v for k, v in model.config.items() if k not in keep}
    fresh = create_backbone(build, seed=0)
    fresh.config["init_seed"] = 0
    return fresh


def list_models(
    pattern: str | Sequence[str] = "*",
    pretrained: bool = False,
    exclude_filters: str | Sequence[str] = "",
    *,
    filter: str | Sequence[str] | None = None,  # timm's keyword
) -> list[str]:
    """Catalog names plus `arch:NAME` specs matching a glob (or any of several), as timm's
    `list_models(filter, pretrained, exclude_filters)`: `pretrained=True` keeps the names that
    come with released weights (not the random inits, not the thesis models without a release).
    """
    patterns = _patterns(filter if filter is not None else pattern) or ["*"]
    excluded = _patterns(exclude_filters)
    names = [e.name for e in list_entries("*") if not pretrained or e.source in ("url", "hf")]
    if not pretrained:
        names += [f"arch:{a}" for a in list_archs()]
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)
            and not any(fnmatch.fnmatch(n, p) for p in excluded)]


def _patterns(value: str | Sequence[str]) -> list[str]:
    """timm accepts one glob or a list of globs; '' means none."""
    return [p for p in ([value] if isinstance(value, str) else list(value)) if p]
