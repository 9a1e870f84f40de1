"""`Backbone`: an nn.Module with a config dict and named feature taps.

Taps are read with torchvision's FX feature extraction (no hand-written hooks). Each
subclass declares `TAP_NODES`, a map from tap name (`conv1`, ..., `fc7`) to the FX node
whose output it is.

The timm-like surface: `model(x)` returns the logits when a classifier head exists
(`num_classes > 0`: one set by `reset_classifier(n)`, or the clustering head an official
release ships) and otherwise the embedding (`fc7` for AlexNet/VGG, the globally pooled last
stage for ResNets and third-party networks) of width `num_features`. Models trained by
dcbench have no head in `final/` (the official evaluation code drops it too), so their
`model(x)` is the embedding; `reset_classifier(0)` drops a head, `get_classifier()` returns it.
`forward_features(x)` returns the last convolutional map (N, C, H, W) (`default_tap`), and
`forward_features(x, ["conv3", "fc7"])` a dict of named taps; `forward_head(fmap,
pre_logits=False)` finishes the forward from that map, as timm's does. `pretrained_cfg` holds
the data config (input size, mean, std, interpolation, crop_pct).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, overload

import torch
import torch.fx
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from dcbench.core.errors import UnknownNameError, UserError, did_you_mean
from dcbench.core.sync_bn import GlobalBatchNormMixin

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class Backbone(nn.Module):
    """Base class of every dcbench network (our architectures and wrapped third-party ones)."""

    TAP_NODES: dict[str, str] = {}
    EMBEDDING_TAP: str = "fc7"
    MIN_INPUT_SIZE: int = 32

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)
        self.config.setdefault("mean", list(IMAGENET_MEAN))
        self.config.setdefault("std", list(IMAGENET_STD))
        self.config.setdefault("input_size", 224)
        self.config.setdefault("num_classes", 0)
        self.config["taps"] = list(self.TAP_NODES)
        self.name: str = str(self.config.get("arch", type(self).__name__))
        self.top_layer: nn.Linear | None = None
        self._extractors: dict[tuple[str, ...], nn.Module] = {}

    # ---- taps -------------------------------------------------------------------------
    @property
    def embedding_tap(self) -> str:
        """The tap clustered by DeepCluster: fc7 before its ReLU (the penultimate layer)."""
        return self.EMBEDDING_TAP

    @property
    def embedding_dim(self) -> int:
        """Width of the embedding tap."""
        return self.tap_channels(self.embedding_tap)

    def trunk(self) -> nn.Module:
        """The module traced for taps: every child except the DeepCluster top layer."""
        return _Trunk(self)

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise a UserError naming the valid taps if any requested layer is unknown."""
        for layer in layers:
            if layer not in self.TAP_NODES:
                raise UnknownNameError(
                    f"unknown layer {layer!r} for {self.config.get('arch')}; "
                    + did_you_mean(layer, list(self.TAP_NODES))
                )

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse inputs the architecture cannot take, with a clear message."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise UserError(f"expected an (N, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.MIN_INPUT_SIZE:
            raise UserError(
                f"{self.config.get('arch')} needs inputs of at least "
                f"{self.MIN_INPUT_SIZE}x{self.MIN_INPUT_SIZE} pixels, got {tuple(x.shape[-2:])}"
            )

    def _extractor(self, layers: tuple[str, ...]) -> nn.Module:
        extractor = self._extractors.get(layers)
        if extractor is None:
            nodes = {self.TAP_NODES[name]: name for name in layers}
            # core.sync_bn's global BatchNorms are one call each, like torch's own: their
            # forward decides at run time between the slice's and the global batch's
            # statistics (traced through, the choice of the tracing time would stick)
            extractor = create_feature_extractor(
                self.trunk(), return_nodes=nodes,
                tracer_kwargs={"leaf_modules": [GlobalBatchNormMixin]})
            self._extractors[layers] = extractor
        return extractor

    @property
    def default_tap(self) -> str:
        """What `forward_features(x)` returns: the last convolutional (or block) tap."""
        spatial = [n for n in self.TAP_NODES if n.startswith(("conv", "block"))]
        return spatial[-1] if spatial else self.embedding_tap

    @property
    def num_features(self) -> int:
        """Width of `model(x)` without a head (the embedding tap), as in timm."""
        if "_num_features" not in self.__dict__:
            self.__dict__["_num_features"] = self.embedding_dim
        return int(self.__dict__["_num_features"])

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The data config: input_size (3, S, S), mean, std, interpolation, crop_pct."""
        size = int(self.config.get("input_size", 224))
        return {"input_size": (3, size, size), "mean": tuple(self.config["mean"]),
                "std": tuple(self.config["std"]),
                "interpolation": str(self.config.get("interpolation", "bilinear")),
                "crop_pct": float(self.config.get("crop_pct", 0.875))}

    @overload
    def forward_features(self, x: torch.Tensor, layers: None = None) -> torch.Tensor: ...

    @overload
    def forward_features(
        self, x: torch.Tensor, layers: Sequence[str]
    ) -> dict[str, torch.Tensor]: ...

    def forward_features(
        self, x: torch.Tensor, layers: Sequence[str] | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Named activations: conv taps post-ReLU before pooling, fc taps pre-ReLU.

        Without `layers`, the `default_tap` tensor (the last conv map, as timm returns it).
        """
        if layers is None:
            return self.forward_features(x, [self.default_tap])[self.default_tap]
        if isinstance(layers, str):
            layers = [layers]
        layers = tuple(layers)
        self.check_layers(layers)
        self.check_input(x)
        return self._tap_outputs(x, layers)

    def _tap_outputs(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Compute checked taps (FX feature extraction; subclasses may override)."""
        extractor = self._extractor(layers)
        extractor.train(self.training)
        return dict(extractor(x))

    def tap_channels(self, name: str) -> int:
        """Channel count (conv) or width (fc) of a tap, from a dummy forward."""
        return int(self.feature_shapes([name])[name][0])

    @torch.no_grad()
    def feature_shapes(
        self, layers: Sequence[str], input_size: int | None = None
    ) -> dict[str, tuple[int, ...]]:
        """Per-tap output shapes (without the batch dim) for a square input."""
        size = int(input_size or self.config["input_size"])
        was_training = self.training
        self.eval()
        try:
            param = next(self.parameters())
            dummy = torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype)
            out = self.forward_features(dummy, layers)
        finally:
            self.train(was_training)
        return {name: tuple(t.shape[1:]) for name, t in out.items()}

    def finish_init(self, tap_nodes: dict[str, str], generator: torch.Generator | None) -> None:
        """Record the tap map and, if the config asks for one, build the top layer."""
        self.TAP_NODES = dict(tap_nodes)
        self.config["taps"] = list(self.TAP_NODES)
        num_classes = int(self.config.get("num_classes", 0))
        if num_classes > 0:
            self.reset_top_layer(num_classes, generator)

    # ---- DeepCluster head ---------------------------------------------------------------
    def reset_top_layer(self, num_classes: int, generator: torch.Generator | None = None) -> None:
        """A fresh top layer Linear(embedding_dim, k) with N(0, 0.01) weights and zero bias."""
        param = next(self.trunk_parameters())
        layer = nn.Linear(self.embedding_dim, num_classes)
        with torch.no_grad():
            layer.weight.normal_(0.0, 0.01, generator=generator)
            layer.bias.zero_()
        self.top_layer = layer.to(param.device)
        self.config["num_classes"] = int(num_classes)

    def remove_top_layer(self) -> None:
        """Drop the head (the network then only serves features)."""
        self.top_layer = None
        self.config["num_classes"] = 0

    def head_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the top layer sees: ReLU(embedding)."""
        return torch.relu(self.forward_features(x, [self.embedding_tap])[self.embedding_tap])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Top-layer logits when a head exists, else the embedding (N, num_features)."""
        if self.top_layer is None:
            return self.forward_features(x, [self.embedding_tap])[self.embedding_tap].flatten(1)
        return self.top_layer(self.head_input(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm's split of `forward`: from `forward_features(x)` (the last conv map) to the
        embedding (N, num_features) with `pre_logits=True` or without a head, else the
        head's logits, so `forward_head(forward_features(x)) == model(x)`."""
        embedding = self._embedding_from_map(features).flatten(1)
        if pre_logits or self.top_layer is None:
            return embedding
        return self.top_layer(torch.relu(embedding))

    def _embedding_from_map(self, features: torch.Tensor) -> torch.Tensor:
        """The part of the traced trunk between `default_tap` and `embedding_tap`."""
        if self.default_tap == self.embedding_tap:
            return features
        key = ("<head>", self.default_tap, self.embedding_tap)
        head = self._extractors.get(key)
        if head is None:
            head = _graph_between(self._extractor((self.default_tap, self.embedding_tap)),
                                  self.default_tap, self.embedding_tap)
            self._extractors[key] = head
        head.train(self.training)
        return head(features)

    def get_classifier(self) -> nn.Module:
        """timm's name: the head (`top_layer`), or an Identity when there is none."""
        return self.top_layer if self.top_layer is not None else nn.Identity()

    def reset_classifier(self, num_classes: int = 0) -> None:
        """timm's name: a fresh head of `num_classes` outputs, or none (0: features only)."""
        if num_classes > 0:
            self.reset_top_layer(num_classes)
        else:
            self.remove_top_layer()

    # ---- parameters and identity --------------------------------------------------------
    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters except the frozen Sobel layer and the top layer."""
        top = {id(p) for p in self.top_layer.parameters()} if self.top_layer is not None else set()
        for param in self.parameters():
            if param.requires_grad and id(param) not in top:
                yield param

    def weights_sha256(self) -> str:
        """sha256 over the state_dict (sorted keys, raw little-endian bytes): the model id."""
        digest = hashlib.sha256()
        for key, tensor in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def _apply(self, fn, recurse=True):
        # Moving or casting the module invalidates the cached FX extractors' constants.
        self._extractors = {}
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_extractors"] = {}
        return state


class _Trunk(nn.Module):
    """A view of a Backbone without its top layer, whose forward is `trunk_forward`.

    The children are the backbone's own modules (shared, not copied), so the FX graph built
    on it reads the live weights and the node names equal the backbone's key prefixes.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        # _modules also holds None placeholders (e.g. `sobel` of an RGB model).
        for name, child in backbone._modules.items():
            if name != "top_layer":
                self.add_module(name, child)
        self._trunk_forward = type(backbone).trunk_forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk_forward(self, x)


def _graph_between(extractor: torch.fx.GraphModule, start: str, end: str) -> torch.fx.GraphModule:
    """A module computing output `end` of a traced feature extractor from its output `start`:
    the nodes `end` depends on after `start`, copied into a graph whose input is `start`."""
    graph = extractor.graph
    outputs = next(n for n in graph.nodes if n.op == "output").args[0]
    first, last = outputs[start], outputs[end]
    needed: set[torch.fx.Node] = set()
    stack = [last]
    while stack:
        node = stack.pop()
        if node is first or node in needed:
            continue
        if node.op == "placeholder":
            raise UserError(f"{end} does not follow from {start} alone in this network, so "
                            "forward_head cannot start from forward_features(x); use model(x)")
        needed.add(node)
        stack.extend(node.all_input_nodes)
    head = torch.fx.Graph()
    env = {first: head.placeholder("features")}
    for node in graph.nodes:
        if node in needed:
            env[node] = head.node_copy(node, lambda n: env[n])
    head.output(env[last])
    return torch.fx.GraphModule(extractor, head)
