"""Third-party networks as Backbones: `torchvision:NAME[@WEIGHTS]` and `timm:NAME[@TAG]`.

One `pretrained` convention for both: the bare name loads the library's default pretrained
weights (`torchvision:resnet50` = `@DEFAULT`, `timm:resnet50` = timm's default tag),
`@random` (or `load_model(..., pretrained=False)`) builds the same architecture with a random
init, and any other suffix names the weights (`torchvision:resnet50@IMAGENET1K_V2`,
`timm:vit_small_patch16_224@augreg_in21k`; `timm:NAME@pretrained` = the default tag).

Each gets a default tap map so any of them can be run through dcbench's protocols:
conv taps are stage outputs (post-ReLU), `fc6`/`fc7` the classifier's hidden Linear layers
where the network has them, `pool` the globally pooled features otherwise. timm taps come
from timm's own `forward_intermediates` (its `feature_info` stages): CNNs name the last five
`conv1..conv5`, ViT-like models (every stage at one stride) name each block `block1..blockN`,
as (N, C, H, W) maps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torchvision
from torch import nn

from dcbench.core.errors import MissingFileError, NetworkError, UnknownNameError, UserError
from dcbench.models.backbone import IMAGENET_MEAN, IMAGENET_STD, Backbone
from dcbench.models.sources.network import (
    hf_cache_dir,
    hf_offline,
    network_ok,
    torch_hub_file,
)


class ExternalBackbone(Backbone):
    """A wrapped third-party model (`net.*` keys) with an explicit tap map."""

    MIN_INPUT_SIZE = 32

    def __init__(self, net: nn.Module, config: dict[str, Any], taps: dict[str, str],
                 embedding_tap: str) -> None:
        super().__init__(config)
        self.net = net
        self.TAP_NODES = {name: f"net.{node}" for name, node in taps.items()}
        self.EMBEDDING_TAP = embedding_tap
        self.config["taps"] = list(self.TAP_NODES)

    def trunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped network's own forward (unused outputs are pruned by the FX extractor)."""
        return self.net(x)


def _relu_before_pools(features: nn.Sequential) -> list[str]:
    nodes = []
    for index, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d) and index > 0:
            nodes.append(f"features.{index - 1}")
    return nodes


def torchvision_taps(name: str, net: nn.Module) -> tuple[dict[str, str], str]:
    """Default taps for torchvision AlexNet, VGG and ResNet families."""
    if name == "alexnet":
        relus = [f"features.{i}" for i, m in enumerate(net.features) if isinstance(m, nn.ReLU)]
        taps = {f"conv{i + 1}": node for i, node in enumerate(relus)}
        return {**taps, "fc6": "classifier.1", "fc7": "classifier.4"}, "fc7"
    if name.startswith("vgg"):
        taps = {f"conv{i + 1}": n for i, n in enumerate(_relu_before_pools(net.features))}
        return {**taps, "fc6": "classifier.0", "fc7": "classifier.3"}, "fc7"
    if name.startswith(("resnet", "resnext", "wide_resnet")):
        return {"conv1": "relu", "conv2": "layer1", "conv3": "layer2", "conv4": "layer3",
                "conv5": "layer4", "pool": "flatten"}, "pool"
    raise UserError(
        f"torchvision:{name} has no default tap map; supported families: alexnet, vgg*, "
        "resnet*, resnext*, wide_resnet*"
    )


RANDOM = "random"


def split_weights(spec: str, pretrained: bool) -> tuple[str, str]:
    """`NAME[@WEIGHTS]` -> (name, weights tag), with `pretrained=False` forcing `random`."""
    name, _, weights = spec.partition("@")
    if not pretrained:
        return name, RANDOM
    return name, weights or "pretrained"


@contextlib.contextmanager
def seeded_init(seed: int = 0) -> Iterator[None]:
    """Build under a fixed seed without touching the caller's RNG, so `@random` is the same
    network on every load (one model, one sha256 in the store), as `arch:` and the catalog's
    random inits are."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_torchvision(spec: str, pretrained: bool = True) -> ExternalBackbone:
    """`NAME` (default weights), `NAME@WEIGHTS` (e.g. `resnet50@IMAGENET1K_V2`), `NAME@random`."""

    name, weights = split_weights(spec, pretrained)
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise UnknownNameError(f"unknown torchvision model {name!r}") from None
    enum = None
    if weights != RANDOM:
        tag = "DEFAULT" if weights == "pretrained" else weights
        try:
            enum = torchvision.models.get_model_weights(name)[tag]
        except KeyError:
            valid = [w.name for w in torchvision.models.get_model_weights(name)]
            raise UnknownNameError(
                f"torchvision:{name} has no weights {tag!r}; valid: {', '.join(valid)}, random"
            ) from None
        _check_torch_hub_file(f"torchvision:{name}@{enum.name}", enum.url)
    try:
        with seeded_init():
            net = builder(weights=enum)
    except OSError as err:  # urllib.error.URLError is an OSError
        raise NetworkError(f"torchvision:{name}: cannot download its weights ({err}); put "
                           f"the file at {torch_hub_file(enum.url) if enum else '?'}") from None
    taps, embedding = torchvision_taps(name, net)
    # Every torchvision ImageNet weight uses the standard ImageNet statistics.
    config = {"arch": f"torchvision:{name}", "sobel": False, "num_classes": 0,
              "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": 224,
              "interpolation": "bilinear", "crop_pct": 0.875,
              "weights": enum.name if enum is not None else RANDOM}
    return ExternalBackbone(net.eval(), config, taps, embedding)


def _check_torch_hub_file(what: str, url: str) -> None:
    """Fail in seconds, with where to put the file, when it is not cached and we are offline."""
    cached = torch_hub_file(url)
    if not cached.is_file() and not network_ok(url):
        raise NetworkError(
            f"{what}: weights not cached and {url} cannot be reached (offline?): download it "
            f"elsewhere and copy it to {cached}, or use @random for a random init"
        )


class TimmBackbone(ExternalBackbone):
    """A timm model whose taps are read with timm's own `forward_intermediates`."""

    def __init__(self, net: nn.Module, config: dict[str, Any], stage_taps: dict[str, int],
                 modules: dict[str, str]) -> None:
        super().__init__(net, config, {**modules, "pool": "pool"}, "pool")
        self.stage_index = dict(stage_taps)

    def _tap_outputs(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        self.net.train(self.training)
        wanted = sorted({self.stage_index[n] for n in layers if n != "pool"})
        out: dict[str, torch.Tensor] = {}
        if wanted:
            final, maps = self.net.forward_intermediates(x, indices=wanted)
            by_index = dict(zip(wanted, maps, strict=True))
            for name in layers:
                if name != "pool":
                    out[name] = by_index[self.stage_index[name]]
            if "pool" in layers:
                out["pool"] = self.net.forward_head(final, pre_logits=True)
        else:
            out["pool"] = self.net(x)
        return {name: out[name] for name in layers}


    def _embedding_from_map(self, features: torch.Tensor) -> torch.Tensor:
        """timm's own head (global pool, pre-logits) on the last stage map of a CNN."""
        if self.default_tap.startswith("block"):
            raise UserError(f"{self.config['arch']}: forward_features(x) returns the last "
                            "block as a map without the final norm, which timm's head does not "
                            "take; use model(x) or forward_features(x, ['pool'])")
        return self.net.forward_head(features, pre_logits=True)


def load_timm(spec: str, pretrained: bool = True) -> TimmBackbone:
    """`NAME` / `NAME@pretrained` (timm's default tag), `NAME@TAG`, or `NAME@random`."""
    name, weights = split_weights(spec, pretrained)
    try:
        import timm  # lazy: optional dependency
    except ImportError:
        raise UserError(
            "timm: models need the optional dependency: pip install 'dcbench[timm]'"
        ) from None
    full = name if weights in (RANDOM, "pretrained") else f"{name}.{weights}"
    if not timm.is_model(full.split(".")[0]):
        raise UnknownNameError(f"unknown timm model {name!r} (see timm.list_models())")
    online = weights == RANDOM or network_ok()
    try:
        with hf_offline(not online), seeded_init():
            net = timm.create_model(full, pretrained=weights != RANDOM, num_classes=0)
    except RuntimeError as err:
        raise UserError(f"timm:{spec}: {err}") from None
    except (OSError, ValueError) as err:  # not cached, cannot download (or offline mode)
        if isinstance(err, FileNotFoundError) and online:
            raise MissingFileError(f"timm:{spec}: {err}") from None
        raise NetworkError(
            f"timm:{spec}: pretrained weights not cached and not downloadable (offline?): "
            f"fetch them once with network into the Hugging Face cache {hf_cache_dir()} "
            f"(or torch hub cache), or use timm:{name}@random for a random init"
        ) from None
    infos = list(getattr(net, "feature_info", []))
    if not infos or not hasattr(net, "forward_intermediates"):
        raise UserError(f"timm:{name} exposes no feature_info/forward_intermediates, "
                        "so it has no default taps")
    reductions = {info.get("reduction") for info in infos}
    if len(reductions) == 1 and len(infos) > 1:  # ViT-like: one stride, one tap per block
        names = [f"block{i + 1}" for i in range(len(infos))]
        indices = list(range(len(infos)))
    else:
        indices = list(range(len(infos)))[-5:]
        names = [f"conv{i + 1}" for i in range(len(indices))]
    stage_taps = dict(zip(names, indices, strict=True))
    modules = {n: infos[i]["module"] for n, i in stage_taps.items()}
    cfg = dict(getattr(net, "pretrained_cfg", {}) or {})
    config = {"arch": f"timm:{name}", "sobel": False, "num_classes": 0,
              "mean": list(cfg.get("mean", IMAGENET_MEAN)),
              "std": list(cfg.get("std", IMAGENET_STD)),
              "input_size": int(cfg.get("input_size", (3, 224, 224))[-1]),
              "interpolation": str(cfg.get("interpolation", "bicubic")),
              "crop_pct": float(cfg.get("crop_pct", 0.875)),
              "weights": RANDOM if weights == RANDOM else str(cfg.get("tag") or "pretrained")}
    return TimmBackbone(net.eval(), config, stage_taps, modules)
