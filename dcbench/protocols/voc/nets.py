"""Our backbones cut into the parts the VOC protocols fine-tune: Sobel, conv trunk, fc6/fc7.

The VOC protocols (classification, detection, segmentation) need an AlexNet/VGG-style
network: a conv `features` trunk and a `classifier` holding fc6 and fc7 (the dcbench
AlexNet/VGG16 backbones, with or without Sobel, and `torchvision:alexnet` / `vgg*`, whose
1000-way last Linear is dropped). `backbone_parts` returns a deep copy of those modules, so
fine-tuning never touches the caller's model.

Shared rules (official `eval_voc_classif.py`):
- the frozen Sobel layer stays frozen and the conv trunk always runs in eval mode (BN
  with its stored global statistics, even when trained: `model.features.eval()`); dropout
  in fc6/fc7 stays active during training;
- `fc6-8` trains fc6, fc7 and the new output layer; `all` also trains the conv trunk;
  `train_bn_scales` (the README erratum) unfreezes the BN affine parameters in `fc6-8`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from dcbench.core.errors import UserError

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

TrainLayers = Literal["fc6-8", "all"]


@dataclasses.dataclass
class BackboneParts:
    """Deep-copied modules of an AlexNet/VGG-style backbone."""

    sobel: nn.Module | None
    features: nn.Sequential  # conv trunk, ending with the last max-pool
    pool: nn.Module  # pooling to the grid fc6 expects (identity at the native size)
    classifier: nn.Sequential  # fc6 ... fc7 + ReLU, no output layer
    grid: int  # fc6 reads a conv_channels x grid x grid map
    conv_channels: int
    fc_dim: int

    def linears(self) -> list[nn.Linear]:
        """fc6 and fc7."""
        return [m for m in self.classifier if isinstance(m, nn.Linear)]


def backbone_parts(model: Backbone, protocol: str) -> BackboneParts:
    """Split (a copy of) `model` into Sobel / conv trunk / pool / fc6-fc7, or a UserError."""
    owner = getattr(model, "net", model)
    features = getattr(owner, "features", None)
    classifier = getattr(owner, "classifier", None)
    if not isinstance(features, nn.Sequential) or not isinstance(classifier, nn.Sequential):
        raise UserError(
            f"{protocol} needs an AlexNet/VGG-style network (conv `features` + fc6/fc7 "
            f"`classifier`); {model.config.get('arch')} has none (use alexnet, "
            "alexnet_small, vgg16 or torchvision:alexnet/vgg16)"
        )
    features = copy.deepcopy(features)
    layers = list(copy.deepcopy(classifier))
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if len(linears) == 3:  # a torchvision classifier ends with the 1000-way layer
        layers = layers[: linears[-1]]
        while layers and isinstance(layers[-1], nn.Dropout):
            layers.pop()
    fcs = [m for m in layers if isinstance(m, nn.Linear)]
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    if len(fcs) != 2 or not convs:
        raise UserError(f"{protocol}: expected fc6 and fc7 in {model.config.get('arch')}'s "
                        f"classifier, found {len(fcs)} Linear layers")
    pool = copy.deepcopy(getattr(owner, "avgpool", None)) or nn.Identity()
    size = getattr(pool, "output_size", None)
    channels = convs[-1].out_channels
    grid = int(size[0] if isinstance(size, tuple) else size) if size is not None else int(
        round((fcs[0].in_features / channels) ** 0.5))
    if channels * grid * grid != fcs[0].in_features:
        raise UserError(f"{protocol}: fc6 of {model.config.get('arch')} does not read a "
                        f"{channels}x{grid}x{grid} map")
    sobel = copy.deepcopy(getattr(owner, "sobel", None))
    if sobel is not None:
        for param in sobel.parameters():
            param.requires_grad_(False)
    return BackboneParts(sobel, features, pool, nn.Sequential(*layers), grid, channels,
                         fcs[1].out_features)


def reinit_linear(layer: nn.Module, generator: torch.Generator, std: float = 0.01,
                  bias: float = 0.1) -> None:
    """The protocol re-init of fc layers: weights N(0, std), bias constant (0.1)."""
    with torch.no_grad():
        layer.weight.normal_(0.0, std, generator=generator)
        layer.bias.fill_(bias)


def reset_linear_pytorch_default(layer: nn.Linear, generator: torch.Generator,
                                 bias: float = 0.1) -> None:
    """PyTorch's default `nn.Linear` weight init (kaiming-uniform with a = sqrt(5), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))) drawn from `generator`, bias constant: what the
    official `eval_voc_classif.py` leaves on its new fc8 (it only fills the bias with 0.1)."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        layer.bias.fill_(bias)


class FrozenTrunkMixin(nn.Module):
    """`train()` that keeps `sobel` and `features` in eval mode (BN global statistics),
    unless `trunk_batch_stats` is set (`use_caffe_batch_stats`)."""

    sobel: nn.Module
    features: nn.Module
    trunk_batch_stats: bool = False

    def train(self, mode: bool = True) -> FrozenTrunkMixin:
        super().train(mode)
        self.sobel.eval()
        self.features.train(mode and self.trunk_batch_stats)
        return self


CAFFE_MOVING_AVERAGE_FRACTION = 0.999  # Caffe BatchNormParameter default


def _caffe_bn_momentum(module: nn.Module, inputs: tuple) -> None:
    """Before a training forward: s <- fraction * s + 1, momentum = 1 / s (Caffe's update)."""
    if module.training:
        weight = module.caffe_average_weight
        weight.mul_(CAFFE_MOVING_AVERAGE_FRACTION).add_(1.0)
        module.momentum = float(1.0 / weight)


def use_caffe_batch_stats(net: FrozenTrunkMixin) -> None:
    """Train the trunk's BatchNorm as Caffe's `BatchNorm` layer in TRAIN without
    `use_global_stats`: normalise with the batch's statistics and accumulate the global
    ones as Caffe does, mean_acc <- 0.999 mean_acc + batch mean and s <- 0.999 s + 1 with
    global = mean_acc / s (the same for the unbiased variance). The stored statistics start
    with s = 1 (what a PyTorch -> Caffe converter writes in the scale-factor blob), so this is
    PyTorch's running average with momentum 1 / s at each step. `s` is a buffer, saved with
    the checkpoints. Evaluation uses the accumulated global statistics (Caffe's TEST)."""
    net.trunk_batch_stats = True
    for layer in net.features.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.register_buffer("caffe_average_weight",
                                  torch.ones((), dtype=torch.float64))
            layer.register_forward_pre_hook(_caffe_bn_momentum)


class VOCClassifierNet(FrozenTrunkMixin):
    """Sobel -> conv trunk -> pool -> fc6/fc7 -> new top layer (multi-label logits)."""

    def __init__(self, parts: BackboneParts, num_outputs: int = 20) -> None:
        super().__init__()
        self.sobel = parts.sobel or nn.Identity()
        self.features = parts.features
        self.pool = parts.pool
        self.classifier = parts.classifier
        self.top_layer = nn.Linear(parts.fc_dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(self.sobel(x)))
        return self.top_layer(self.classifier(torch.flatten(x, 1)))


def set_trainable(net: nn.Module, train_layers: TrainLayers, train_bn_scales: bool) -> None:
    """Freeze per protocol: Sobel never trains, `features` only for `all` (BN affine with
    `train_bn_scales`); everything else (fc6, fc7, heads) trains."""
    if train_layers not in ("fc6-8", "all"):
        raise UserError(f"--train-layers must be fc6-8 or all, got {train_layers!r}")
    for param in net.parameters():
        param.requires_grad_(True)
    for param in net.sobel.parameters():
        param.requires_grad_(False)
    if train_layers == "fc6-8":
        for param in net.features.parameters():
            param.requires_grad_(False)
        if train_bn_scales:
            for layer in net.features.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    for param in layer.parameters():
                        param.requires_grad_(True)


def layer_label(train_layers: str, train_bn_scales: bool) -> str:
    """The `layer` column of result rows: `fc6-8`, `fc6-8+bn` (erratum switch) or `all`."""
    return "fc6-8+bn" if train_layers == "fc6-8" and train_bn_scales else train_layers
