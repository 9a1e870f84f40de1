"""Third-party networks as Backbones: `torchvision:NAME[@WEIGHTS]` and `timm:NAME`.

Each gets a default tap map so any of them can be run through dcbench's protocols:
conv taps are stage outputs (post-ReLU), `fc6`/`fc7` the classifier's hidden Linear layers
where the network has them, `pool` the globally pooled features otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names

from dcbench.core.errors import UserError
from dcbench.models.backbone import IMAGENET_MEAN, IMAGENET_STD, Backbone


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


def load_torchvision(spec: str) -> ExternalBackbone:
    """`NAME` (random init) or `NAME@WEIGHTS` (e.g. `resnet50@IMAGENET1K_V2`, downloads)."""

    name, _, weights = spec.partition("@")
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise UserError(f"unknown torchvision model {name!r}") from None
    net = builder(weights=weights or None)
    taps, embedding = torchvision_taps(name, net)
    # Every torchvision ImageNet weight uses the standard ImageNet statistics.
    config = {"arch": f"torchvision:{name}", "sobel": False, "num_classes": 0,
              "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": 224,
              "weights": weights or "random"}
    return ExternalBackbone(net.eval(), config, taps, embedding)


def load_timm(spec: str) -> ExternalBackbone:
    """`NAME` (timm's pretrained weights, downloaded by timm) or `NAME@random` (random init).

    Taps are its `feature_info` stages (conv1..) plus `pool` (pre-logits).
    """
    name, _, weights = spec.partition("@")
    if weights not in ("", "random"):
        raise UserError(f"timm:{spec}: the only suffix is @random (random init)")
    try:
        import timm  # lazy: optional dependency
        from timm.models import get_pretrained_cfg  # noqa: F401  # lazy: checks a usable timm
    except ImportError:
        raise UserError(
            "timm: models need the optional dependency: pip install 'dcbench[timm]'"
        ) from None
    try:
        net = timm.create_model(name, pretrained=weights != "random", num_classes=0)
    except RuntimeError as err:
        raise UserError(f"timm:{spec}: {err}") from None
    except OSError as err:  # the pretrained weights are not cached and cannot be downloaded
        raise UserError(f"timm:{spec}: cannot get the pretrained weights ({err}); "
                        f"use timm:{name}@random for a random init") from None
    stages = [info["module"] for info in getattr(net, "feature_info", [])]
    if not stages:
        raise UserError(f"timm:{name} exposes no feature_info, so it has no default taps")
    taps = {f"conv{i + 1}": module for i, module in enumerate(stages[-5:])}
    taps["pool"] = _timm_pool_node(net)
    cfg = net.pretrained_cfg if hasattr(net, "pretrained_cfg") else {}
    config = {"arch": f"timm:{name}", "sobel": False, "num_classes": 0,
              "mean": list(cfg.get("mean", IMAGENET_MEAN)),
              "std": list(cfg.get("std", IMAGENET_STD)),
              "input_size": int(cfg.get("input_size", (3, 224, 224))[-1]),
              "weights": "random" if weights == "random" else "pretrained"}
    return ExternalBackbone(net.eval(), config, taps, "pool")


def _timm_pool_node(net: nn.Module) -> str:

    _, eval_nodes = get_graph_node_names(net)
    # With num_classes=0 the head is an identity: the last real node is the pooled output.
    candidates = [n for n in eval_nodes if n not in ("x", "output")]
    return candidates[-1]
