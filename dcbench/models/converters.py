"""Strict converters from other projects' checkpoint layouts onto dcbench's networks.

Each `Converter` says where the tensors sit in the file (state-dict nesting), which key
prefixes to strip (`module.` of DataParallel, VISSL's `trunk.base_model._feature_blocks.`,
MMSelfSup's `backbone.`), which head keys the release carries that a feature network has no
place for (dropped and counted), and how the remaining keys rename onto ours. The result is
loaded with `load_strict`: any missing, unexpected or shape-mismatched key is refused with
the key report. Two explicit exceptions, per converter and recorded in the model config:
- `fixed`: parts that are constants, not learned (the Sobel front-end); a release that
  omits them gets dcbench's, a release that has them must match them;
- `absent`: parts a release does not contain (VISSL's AlexNet conversion keeps only the conv
  trunk, so fc6/fc7 stay at the official random init: use conv taps only).

Layouts (from the projects' own code and documentation):
- `swav` (DeepCluster-v2 / SeLa-v2 releases of facebookresearch/swav): a bare state_dict
  (or {'state_dict': ...}) of the SwAV ResNet-50 with `module.` keys in torchvision naming
  plus `projection_head.*` and `prototypes.*` (DeepCluster-v2: `prototypes.prototypes{i}`);
- `vissl-resnet` (VISSL): {'classy_state_dict': {'base_model': {'model': {'trunk': ...}}}}
  or {'model_state_dict': ...} with `trunk.base_model._feature_blocks.` / `_feature_blocks.`
  keys in torchvision naming; linear-evaluation checkpoints, whose trunk dict holds
  `base_model._feature_blocks.*` (the feature-extractor wrapper), and the re-hosted
  SwAV-format files are accepted too;
- `vissl-alexnet-deepcluster` (VISSL `convert_caffe2_to_vissl_alexnet.py`, model zoo
  `deepcluster_alexnet_checkpoint.torch`): {'model_state_dict': {'_feature_blocks.B.J.*'}},
  blocks 0/2/4/5/6 = conv1..conv5, J 0 = conv, 1 = BN; Sobel, classifier, top layer dropped;
- `mmselfsup-resnet` (MMSelfSup DeepCluster R50): {'meta': ..., 'state_dict': {'backbone.*'
  (torchvision naming), 'neck.*', 'head.*', ...}}, Sobel if present: `sobel_layer.sobel.*`
  (0.x, in the algorithm) or `backbone.sobel_layer.sobel.*` (1.x `ResNetSobel`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dcbench.core.errors import UserError, did_you_mean
from dcbench.models.archs import create_backbone
from dcbench.models.backbone import Backbone
from dcbench.models.checkpoints import load_official, load_strict, read_checkpoint
from dcbench.models.converter_names import CONVERTER_NAMES, OFFICIAL


@dataclasses.dataclass(frozen=True)
class Converter:
    """How one project's checkpoint maps onto a dcbench network."""

    name: str
    arch: str
    sobel: bool
    state_paths: tuple[tuple[str, ...], ...]
    rename: Callable[[str], str | None]
    strip: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


def _prefix(new: str) -> Callable[[str], str | None]:
    return lambda key: new + key


_ALEXNET_BLOCKS = {"0.0": 0, "0.1": 1, "2.0": 4, "2.1": 5, "4.0": 8, "4.1": 9, "5.0": 11,
                   "5.1": 12, "6.0": 14, "6.1": 15}


def _vissl_alexnet(key: str) -> str | None:
    match = re.fullmatch(r"(\d+\.\d+)\.(\w+)", key)
    if match is None or match.group(1) not in _ALEXNET_BLOCKS:
        return None
    return f"features.{_ALEXNET_BLOCKS[match.group(1)]}.{match.group(2)}"


def _mmselfsup(key: str) -> str | None:
    if key.startswith("backbone.sobel_layer.sobel."):  # 1.x `ResNetSobel`
        return "sobel." + key.removeprefix("backbone.sobel_layer.sobel.")
    if key.startswith("backbone."):
        return "body." + key.removeprefix("backbone.")
    if key.startswith("sobel_layer.sobel."):
        return "sobel." + key.removeprefix("sobel_layer.sobel.")
    return None


_VISSL_PATHS = (("classy_state_dict", "base_model", "model", "trunk"), ("model_state_dict",),
                ("state_dict",), ())
CONVERTERS: dict[str, Converter] = {c.name: c for c in (
    Converter("swav", "resnet50", False, (("state_dict",), ()), _prefix("body."),
              strip=("module.",), drop=("projection_head.", "prototypes.")),
    Converter("vissl-resnet", "resnet50", False, _VISSL_PATHS, _prefix("body."),
              strip=("module.", "trunk.base_model.", "trunk.", "base_model.", "_feature_blocks."),
              drop=("heads.", "projection_head.", "prototypes.")),
    Converter("vissl-alexnet-deepcluster", "alexnet", True, _VISSL_PATHS, _vissl_alexnet,
              strip=("trunk.base_model.", "trunk.", "base_model.", "_feature_blocks."),
              fixed=("sobel.",), absent=("classifier.",)),
    Converter("mmselfsup-resnet", "resnet50", True, (("state_dict",), ()), _mmselfsup,
              drop=("neck.", "head.", "loss_weight", "data_preprocessor."),
              fixed=("sobel.",)),
)}
if (OFFICIAL, *CONVERTERS) != CONVERTER_NAMES:  # the light list the hub parser shows
    raise ImportError("models.converter_names.CONVERTER_NAMES is out of date: "
                      f"{(OFFICIAL, *CONVERTERS)} != {CONVERTER_NAMES}")


def find_state_dict(obj: Any, paths: tuple[tuple[str, ...], ...], source: str
                    ) -> dict[str, torch.Tensor]:
    """The first tensor dict found along `paths` (nested dict keys; () = the object itself)."""
    for path in paths:
        node = obj
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node and all(
                isinstance(v, torch.Tensor) for v in node.values()):
            return dict(node)
    top = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
    raise UserError(f"{source}: no state_dict of tensors where this layout keeps it",
                    detail=f"  looked under {[list(p) or '<top level>' for p in paths]}; "
                    f"found {top}")


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    return key


def convert_state(obj: Any, converter: Converter, source: str = "checkpoint") -> Backbone:
    """Build the converter's network and load `obj` (a loaded checkpoint) into it strictly."""
    raw = find_state_dict(obj, converter.state_paths, source)
    model = create_backbone({"arch": converter.arch, "sobel": converter.sobel}, seed=0)
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    dropped, unknown = 0, []
    for key, value in raw.items():
        short = _strip(key, converter.strip)
        if short.startswith(converter.drop):
            dropped += 1
            continue
        new = converter.rename(short)
        if new is None:
            unknown.append(key)
        elif new in state:
            raise UserError(f"{source}: two keys map onto {new!r}")
        else:
            state[new] = value
    if unknown:
        raise UserError(f"checkpoint {source} does not match the model",
                        detail=f"  unexpected keys ({len(unknown)}): "
                        + ", ".join(sorted(unknown)[:20]))
    for key, value in own.items():
        if key.startswith(converter.fixed):
            if key in state and not torch.allclose(state[key].float(), value.float()):
                raise UserError(f"{source}: {key} differs from the fixed Sobel front-end")
            state[key] = value
        elif key.startswith(converter.absent) and key not in state:
            state[key] = value
        elif key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)  # older BN layers lack it; no effect on outputs
    load_strict(model, state, source)
    model.config["source"] = {"format": converter.name, "dropped_head_keys": dropped,
                              "random_init": list(converter.absent)}
    return model


def load_converted(path: str | Path, converter: str) -> Backbone:
    """Read a checkpoint safely and convert it with the named converter; the model is
    returned in eval mode, as `load_model` returns it."""
    if converter == OFFICIAL:
        return load_official(path).eval()
    if converter not in CONVERTERS:
        raise UserError(f"unknown checkpoint layout {converter!r}; "
                        + did_you_mean(converter, list(CONVERTER_NAMES)))
    return convert_state(read_checkpoint(path), CONVERTERS[converter], str(path)).eval()
