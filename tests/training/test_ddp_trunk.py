"""DDP for the trunk: two gloo processes fed the same batches train exactly like one process.

With the same batch on both ranks, DDP's averaged gradient (g/2 + g/2) equals the one-process
gradient g exactly in floating point, BatchNorm sees the same batch statistics, and the top
layer's gradient is averaged the same way; so the weights after two passes (momentum state
included) must be bit-identical, and they are. Plain SGD and SGT (top-layer row subsets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dcbench.core.distributed import DistInfo
from dcbench.data.loader import make_loader
from dcbench.models import create_backbone
from dcbench.training.ddp import wrap_trunk
from dcbench.training.train_pass import PassSettings, train_pass

N, K = 24, 5


class Tiny(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        g = torch.Generator().manual_seed(100 + i)
        return torch.randn(3, 32, 32, generator=g), -1, i


def one_pass(info: DistInfo, sgt: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=1)
    model.reset_top_layer(K, torch.Generator().manual_seed(2))
    opt = torch.optim.SGD(list(model.trunk_parameters()), lr=0.05, momentum=0.9,
                          weight_decay=1e-5)
    labels = np.arange(N) % K
    loader = make_loader(Tiny(), 8)
    device = torch.device("cpu")
    settings = PassSettings(lr=0.05, weight_decay=1e-5, sgt=sgt,
                            trunk_ddp=wrap_trunk(model, info, device))
    for _ in range(2):  # two passes: momentum state is exercised too
        train_pass(model, loader, labels, opt, settings, device, info,
                   torch.Generator().manual_seed(3))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(rank: int, init_file: str, out: str, sgt: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    state = one_pass(DistInfo(rank=rank, world_size=2), sgt)
    if rank == 1:
        torch.save(state, out)
    dist.destroy_process_group()


@pytest.mark.parametrize("sgt", [0, 3])
def test_two_process_ddp_equals_one_process(tmp_path: Path, sgt: int) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "state.pt"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out), sgt), nprocs=2, join=True)
    two = torch.load(out)
    one = one_pass(DistInfo(), sgt)
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(two[key], one[key]), key


def test_wrap_trunk_is_none_in_one_process() -> None:
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=1)
    assert wrap_trunk(model, DistInfo(), torch.device("cpu")) is None
