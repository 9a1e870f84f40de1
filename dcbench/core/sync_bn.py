"""BatchNorm over the global batch under torchrun (`bn_sync: global`), on CPU/gloo and CUDA.

Under torchrun every rank holds a slice of each global batch. A plain BatchNorm in train
mode normalises with its slice's statistics (`bn_sync: rank`: a BN batch of global / N);
`GlobalBatchNorm{1,2,3}d` all-reduce per channel the count, sum and sum of squares of
every rank's slice, normalise with the global mean and biased variance, and update the
running statistics with the global unbiased variance exactly as `nn.BatchNorm` does, so
the N slices are normalised as one process normalises the whole batch. torch's
`nn.SyncBatchNorm` refuses CPU tensors; this one runs on gloo and NCCL alike.

Backward follows dcbench's gradient contract (`core.dist_eval.sync_gradients`): each rank
backpropagates the mean loss over its own rows, and the parameter gradients are then
averaged weighted by rows. The backward therefore all-reduces the per-channel sums of
dy and dy * x_hat weighted by each rank's share c_r / C of the BN count (= its share of the
rows when every row holds the same number of values), so that after `sync_gradients` every
gradient is the global batch's, also for uneven slices and an empty one (count 0). With
equal slices this is `nn.SyncBatchNorm` under DDP.

Every rank must run the forward (and the backward) of a converted network in train mode on
every global batch, an empty slice as a (0, C, ...) tensor, since each BN layer is one
collective; a global batch with no row at all normalises nothing and leaves the running
statistics alone (one process never sees such a batch). Eval mode uses the running
statistics: no collective. In one process, or with `bn_sync: rank`, nothing is converted.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dcbench.core.dist_eval import comm_device
from dcbench.core.distributed import DistInfo, current

BnSync = Literal["global", "rank"]
BN_SYNC_CHOICES = ("global", "rank")


def _all_reduce64(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The float64 sum of `values` over ranks, on `values`' device."""
    packed = values.to(comm_device(info), torch.float64)
    dist.all_reduce(packed)
    return packed.to(values.device)


class _GlobalBatchNormFn(torch.autograd.Function):
    """Normalise with the statistics of the global batch; see the module docstring."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None,
                bias: torch.Tensor | None, module: GlobalBatchNormMixin) -> torch.Tensor:
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        local = x.numel() // max(channels, 1)
        if local:
            var, mean = torch.var_mean(x, dims, correction=0)
        else:
            var = mean = x.new_zeros(channels)
        mean64 = mean.double()
        packed = torch.cat([mean64.new_tensor([float(local)]), mean64 * local,
                            (var.double() + mean64 * mean64) * local])
        packed = _all_reduce64(packed, module.sync_info)
        count = int(round(float(packed[0])))
        ctx.local, ctx.count = local, count
        if count == 0:  # no row on any rank: nothing to normalise, no statistics
            return x.clone()
        if count == 1:
            raise ValueError("Expected more than 1 value per channel when training, got a "
                             f"global batch of 1 value per channel (input size {list(x.shape)})")
        g_mean = packed[1:1 + channels] / count
        g_var = (packed[1 + channels:] / count - g_mean * g_mean).clamp_min(0)
        module.update_running_stats(g_mean, g_var * count / (count - 1))
        shape = [1, channels] + [1] * (x.dim() - 2)
        invstd = torch.rsqrt(g_var + module.eps).to(x.dtype)
        xhat = (x - g_mean.to(x.dtype).view(shape)) * invstd.view(shape)
        out = xhat
        if weight is not None:
            out = out * weight.view(shape)
        if bias is not None:
            out = out + bias.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.module = module
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        if ctx.count == 0:
            return torch.zeros_like(grad), None, None, None
        xhat, invstd, weight = ctx.saved_tensors
        channels = xhat.shape[1]
        dims = [0, *range(2, xhat.dim())]
        shape = [1, channels] + [1] * (xhat.dim() - 2)
        sum_dy = grad.sum(dims, dtype=torch.float64)
        sum_dy_xhat = (grad * xhat).sum(dims, dtype=torch.float64)
        share = ctx.local / ctx.count  # this rank's part of the global mean loss
        reduced = _all_reduce64(torch.cat([sum_dy, sum_dy_xhat]) * share, ctx.module.sync_info)
        g_dy, g_dy_xhat = (reduced[:channels] / max(ctx.local, 1)).to(grad.dtype), \
            (reduced[channels:] / max(ctx.local, 1)).to(grad.dtype)
        scale = invstd if weight is None else invstd * weight
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad - g_dy.view(shape) - xhat * g_dy_xhat.view(shape)) \
                * scale.view(shape)
        grad_w = sum_dy_xhat.to(grad.dtype) if weight is not None and ctx.needs_input_grad[1] \
            else None
        grad_b = sum_dy.to(grad.dtype) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class GlobalBatchNormMixin(_BatchNorm):
    """The forward of a BatchNorm whose train-mode statistics are the global batch's
    (`sync_info`: the process group's place; the module's own one outside torchrun)."""

    sync_info: DistInfo

    def update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """`nn.BatchNorm`'s update: count the batch, then the momentum (or cumulative) mix."""
        if not self.track_running_stats or self.running_mean is None:
            return
        factor = 0.0 if self.momentum is None else float(self.momentum)
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        with torch.no_grad():
            self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean) * factor)
            self.running_var.mul_(1 - factor).add_(unbiased_var.to(self.running_var) * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global statistics in train mode under torchrun; plain BatchNorm otherwise."""
        self._check_input_dim(x)
        if not (self.training and self.sync_info.active):
            return super().forward(x)
        return _GlobalBatchNormFn.apply(x, self.weight, self.bias, self)


class GlobalBatchNorm1d(GlobalBatchNormMixin, nn.BatchNorm1d):
    """`nn.BatchNorm1d` with the global batch's statistics under torchrun."""


class GlobalBatchNorm2d(GlobalBatchNormMixin, nn.BatchNorm2d):
    """`nn.BatchNorm2d` with the global batch's statistics under torchrun."""


class GlobalBatchNorm3d(GlobalBatchNormMixin, nn.BatchNorm3d):
    """`nn.BatchNorm3d` with the global batch's statistics under torchrun."""


_GLOBAL = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d,
           nn.BatchNorm3d: GlobalBatchNorm3d}


def _as_global(layer: nn.Module, info: DistInfo) -> nn.Module:
    """A copy of `layer` of the global class sharing its parameters, buffers, hooks and
    flags (the same Parameter objects: an optimizer holding them keeps working)."""
    new = copy.copy(layer)
    for key, value in vars(layer).items():
        if isinstance(value, (dict, set)):  # _parameters, _buffers, hooks: not shared
            new.__dict__[key] = copy.copy(value)
    new.__class__ = _GLOBAL[type(layer)]
    new.sync_info = info
    return new


def convert_global_batchnorm(module: nn.Module, info: DistInfo | None = None) -> nn.Module:
    """Every plain `nn.BatchNorm{1,2,3}d` of `module` made a `GlobalBatchNorm` (in place;
    returns the new module when `module` itself is one). Parameters and buffers are the
    same objects under the same names, so state_dict keys, checkpoints and resume are
    unchanged."""
    info = info or current()
    if type(module) in _GLOBAL:
        return _as_global(module, info)
    for name, child in module.named_children():
        converted = convert_global_batchnorm(child, info)
        if converted is not child:
            module._modules[name] = converted
    return module


def apply_bn_sync(module: nn.Module, mode: str, info: DistInfo | None = None) -> nn.Module:
    """`bn_sync` applied to a network about to train: `global` converts its BatchNorm
    layers under torchrun; `rank`, or one process, leaves it untouched."""
    if mode not in BN_SYNC_CHOICES:
        raise ValueError(f"bn_sync must be one of {BN_SYNC_CHOICES}, got {mode!r}")
    info = info or current()
    if mode == "global" and info.active:
        return convert_global_batchnorm(module, info)
    return module


def syncs_batch_stats(module: nn.Module) -> bool:
    """Whether a forward of `module` now is a collective (a global BatchNorm in train mode
    under torchrun): then every rank must run it, an empty slice included."""
    return any(isinstance(m, GlobalBatchNormMixin) and m.training and m.sync_info.active
               for m in module.modules())


__all__ = ["BN_SYNC_CHOICES", "BnSync", "GlobalBatchNorm1d", "GlobalBatchNorm2d",
           "GlobalBatchNorm3d", "GlobalBatchNormMixin", "apply_bn_sync",
           "convert_global_batchnorm", "syncs_batch_stats"]
