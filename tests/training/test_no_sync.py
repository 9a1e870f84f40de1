"""Issue 18: the training pass reads nothing back from the device per step, and the
numerics flags (TF32, cudnn.benchmark) are an explicit function of the precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.core.distributed import DistInfo
from dcbench.data.loader import Batch
from dcbench.models import create_backbone
from dcbench.training.precision import configure_numerics
from dcbench.training.train_pass import PassSettings, train_pass


def _batches(n: int, size: int = 32) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    return [Batch(torch.randn(4, 3, size, size, generator=g), torch.zeros(4, dtype=torch.int64),
                  torch.arange(4 * i, 4 * i + 4), []) for i in range(n)]


@pytest.mark.parametrize("every", [3, 50])
def test_train_pass_reads_the_loss_only_every_n_steps(monkeypatch: pytest.MonkeyPatch,
                                                      every: int) -> None:
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=0)
    model.reset_top_layer(3, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(list(model.trunk_parameters()), lr=0.01, momentum=0.9)
    reads = {"item": 0}
    real_item = torch.Tensor.item

    def counting_item(self: torch.Tensor) -> float:
        reads["item"] += 1
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    seen: list[float | None] = []
    steps = 10
    mean = train_pass(model, _batches(steps), np.arange(4 * steps) % 3, opt,
                      PassSettings(lr=0.01, weight_decay=1e-5), torch.device("cpu"),
                      DistInfo(), torch.Generator().manual_seed(0),
                      progress=lambda n, loss: seen.append(loss), loss_every=every)
    shown = [v for v in seen if v is not None]
    assert len(seen) == steps and len(shown) == steps // every
    assert reads["item"] == steps // every + 1  # the progress reads + the final mean
    assert np.isfinite(mean)


def test_numerics_fp32_means_ieee_and_are_recorded() -> None:
    cpu = torch.device("cpu")
    flags = configure_numerics(cpu, "fp32")
    assert flags == {"cudnn_benchmark": False, "matmul_fp32": "ieee", "conv_fp32": "ieee"}
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert configure_numerics(cpu, "bf16")["conv_fp32"] == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"  # k-means stays IEEE fp32
    configure_numerics(cpu, "fp32")
