"""`bn_sync: global` with 2 gloo CPU processes: a converted BatchNorm on uneven slices (one
rank empty) gives the forward output, input gradient, parameter gradients and running
statistics of one process's `nn.BatchNorm` on the concatenated batch (1e-6)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dcbench.core.dist_eval import sync_gradients
from dcbench.core.distributed import DistInfo
from dcbench.core.sync_bn import (
    GlobalBatchNorm1d,
    GlobalBatchNorm2d,
    apply_bn_sync,
    convert_global_batchnorm,
    syncs_batch_stats,
)

# (global batch rows, rank 0's slice, rank 1's slice): uneven, then rank 1 empty, then
# rank 0 empty, then no row on any rank (nothing may change)
STEPS = [(7, (0, 5), (5, 7)), (3, (0, 3), (3, 3)), (4, (0, 0), (0, 4)), (0, (0, 0), (0, 0))]


def _layers() -> dict[str, nn.Module]:
    """The one-process references: BN2d with affine (momentum 0.1) and an affine-free BN1d
    with a cumulative average (momentum None), with non-trivial starting parameters."""
    torch.manual_seed(0)
    bn2 = nn.BatchNorm2d(3)
    bn1 = nn.BatchNorm1d(4, affine=False, momentum=None)
    with torch.no_grad():
        bn2.weight.uniform_(0.5, 1.5)
        bn2.bias.uniform_(-0.5, 0.5)
        bn2.running_mean.uniform_(-1, 1)
    return {"bn2": bn2, "bn1": bn1}


def _batches(name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per step: the global batch and the upstream weights R (loss = mean_i <R_i, y_i>)."""
    g = torch.Generator().manual_seed(1)
    shape = (3, 4, 5) if name == "bn2" else (4,)
    return [(torch.randn(n, *shape, generator=g) * 2 + 0.7,
             torch.randn(n, *shape, generator=g)) for n, *_ in STEPS]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                           world_size=2, timeout=datetime.timedelta(seconds=60))
    info = DistInfo(rank=rank, world_size=2)
    out: dict[str, object] = {}
    for name, layer in _layers().items():
        layer = apply_bn_sync(layer, "global", info)
        layer.train()
        out[f"{name}/synced"] = syncs_batch_stats(layer)
        for step, ((n, *slices), (x, r)) in enumerate(zip(STEPS, _batches(name), strict=True)):
            start, stop = slices[rank]
            xs = x[start:stop].clone().requires_grad_(True)
            y = layer(xs)
            rows = stop - start
            loss = (y * r[start:stop]).sum() / rows if rows else y.sum() * 0.0
            for p in layer.parameters():
                p.grad = None
            loss.backward()
            sync_gradients(layer.parameters(), rows, float(loss.detach()), info)
            out[f"{name}/{step}/y"] = y.detach().clone()
            out[f"{name}/{step}/dx"] = xs.grad.clone() * rows / max(n, 1)
            out[f"{name}/{step}/grads"] = [None if p.grad is None else p.grad.clone()
                                             for p in layer.parameters()]
            out[f"{name}/{step}/buffers"] = {k: v.clone() for k, v in layer.state_dict().items()}
        layer.eval()  # running statistics, no collective: rank 0 alone may run it
        if rank == 0:
            out[f"{name}/eval"] = layer(_batches(name)[0][0]).detach()
    torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_two_ranks_normalise_like_one_process_on_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    outs = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for name, ref in _layers().items():
        ref.double().train()  # the one-process reference, in float64 (torch's float32 BN
        # backward is itself 3e-7 from it here)
        for step, ((n, *slices), (x, r)) in enumerate(zip(STEPS, _batches(name), strict=True)):
            if n == 0:  # one process never sees an empty global batch: no forward at all
                want_buffers = {k: v.clone() for k, v in ref.state_dict().items()}
            else:
                xr, r = x.double().requires_grad_(True), r.double()
                for p in ref.parameters():
                    p.grad = None
                y = ref(xr)
                ((y * r).sum() / n).backward()
                want_buffers = ref.state_dict()
            for rank, out in enumerate(outs):
                start, stop = slices[rank]
                assert out[f"{name}/synced"]
                if n:
                    _close(out[f"{name}/{step}/y"], y[start:stop])
                    _close(out[f"{name}/{step}/dx"], xr.grad[start:stop])
                    for got, p in zip(out[f"{name}/{step}/grads"], ref.parameters(),
                                      strict=True):
                        _close(got, p.grad)
                assert out[f"{name}/{step}/buffers"].keys() == want_buffers.keys()
                for key, want in want_buffers.items():
                    _close(out[f"{name}/{step}/buffers"][key], want)
        ref.eval()
        _close(outs[0][f"{name}/eval"], ref(_batches(name)[0][0].double()))


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """float32 result vs float64 reference: within 1e-6 (relative, or absolute near 0)."""
    torch.testing.assert_close(got.double(), want.detach().double(), rtol=1e-6, atol=1e-6)


def test_conversion_keeps_parameters_buffers_hooks_and_keys() -> None:
    """The converted layers hold the very same Parameters and buffers under the same keys
    (an optimizer and a checkpoint still fit), extra buffers and forward hooks included."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4 * 4 * 4)))
    bn = net[1]
    bn.register_buffer("extra", torch.ones(()))
    calls = []
    bn.register_forward_pre_hook(lambda m, i: calls.append(1))
    params, keys = list(net.parameters()), list(net.state_dict())
    info = DistInfo(rank=0, world_size=2)
    out = convert_global_batchnorm(net, info)
    assert out is net
    assert type(net[1]) is GlobalBatchNorm2d and type(net[3][1]) is GlobalBatchNorm1d
    assert isinstance(net[1], nn.BatchNorm2d) and net[1].sync_info == info
    assert all(a is b for a, b in zip(params, net.parameters(), strict=True))
    assert list(net.state_dict()) == keys and net[1].extra is bn.extra
    net.eval()  # eval mode: plain BatchNorm, no collective even with world size 2
    assert not syncs_batch_stats(net)
    net(torch.randn(2, 3, 6, 6))
    assert calls == [1]


def test_one_process_and_rank_mode_leave_the_network_alone() -> None:
    """`bn_sync` changes nothing in one process, nor with `rank` under torchrun: the very
    modules of today's code run (so one process's results are byte-identical)."""
    for mode, info in (("global", DistInfo()), ("rank", DistInfo(rank=1, world_size=2))):
        net = nn.Sequential(nn.BatchNorm2d(2))
        layer = net[0]
        assert apply_bn_sync(net, mode, info) is net and type(net[0]) is nn.BatchNorm2d
        assert net[0] is layer and not syncs_batch_stats(net)
    with pytest.raises(ValueError, match="bn_sync"):
        apply_bn_sync(nn.BatchNorm2d(2), "local")
