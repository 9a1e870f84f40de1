"""torch DistributedDataParallel for the DeepCluster trunk (issue 15, item 3).

The top layer is re-created every epoch (and SGT updates only some of its rows), so DDP
wraps only the trunk: `HeadInput` is a module whose parameters are the backbone's trunk
(shared, not copied) and whose forward is `backbone.head_input` (ReLU of the embedding tap).
DDP then all-reduces and averages the trunk gradients in buckets during backward (overlapped
with the backward pass) and broadcasts rank 0's buffers (BatchNorm statistics) before each
forward; the top layer's small gradient is averaged by `average_gradients`. In one process no
wrapper is built and the numerics are exactly the single-process ones.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dcbench.core.distributed import DistInfo
from dcbench.models.backbone import Backbone


class HeadInput(nn.Module):
    """The backbone without its top layer, as one module: forward(x) = ReLU(embedding)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.trunk = backbone.trunk()  # registers the shared trunk modules (not the top layer)
        self._backbone = (backbone,)  # a tuple: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._backbone[0].head_input(x)


def wrap_trunk(backbone: Backbone, info: DistInfo, device: torch.device
               ) -> nn.Module | None:
    """A DDP-wrapped `HeadInput` under torchrun (None in one process)."""
    if not info.active:
        return None
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(HeadInput(backbone), device_ids=ids, broadcast_buffers=True)


__all__ = ["HeadInput", "wrap_trunk"]
