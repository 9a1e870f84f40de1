"""Precision resolution, the bf16 autocast path on CPU, and the bf16 fidelity check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.core.distributed import DistInfo
from dcbench.core.errors import UserError
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.loader import make_loader
from dcbench.data.synthetic import make_classification_set
from dcbench.data.transforms import center_crop
from dcbench.models import create_backbone
from dcbench.training.embeddings import extract_embeddings
from dcbench.training.precision import (
    autocast,
    bf16_fidelity,
    memory_format,
    resolve_precision,
)
from dcbench.training.train_pass import PassSettings, train_pass


def test_auto_is_bf16_on_cuda_and_fp32_on_cpu() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert memory_format(torch.device("cpu"), "bf16") == torch.contiguous_format
    assert memory_format(torch.device("cuda", 0), "bf16") == torch.channels_last
    with pytest.raises(UserError, match="precision"):
        resolve_precision("fp16", torch.device("cpu"))


def test_autocast_runs_matmuls_in_bf16_on_cpu() -> None:
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ a).dtype == torch.float32


def test_fidelity_is_one_for_identical_features_and_low_for_noise() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((8, 32)) * 4
    x = (centers[rng.integers(0, 8, 400)] + rng.standard_normal((400, 32))).astype(np.float32)
    assert bf16_fidelity(x, x.copy(), k=8, pca_dim=8) == pytest.approx(1.0)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    assert bf16_fidelity(x, noise, k=8, pca_dim=8) < 0.5


def test_bf16_embeddings_of_the_built_in_data_cluster_like_fp32(tmp_path) -> None:
    make_classification_set(tmp_path / "set", train_per_class=12, val_per_class=1, size=64,
                            seed=0)
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=0)
    data = ImageFolderDataset(tmp_path / "set" / "train",
                              center_crop(64, 64, model.config["mean"], model.config["std"]))
    idx = np.arange(len(data))
    cpu = torch.device("cpu")
    f32, ok = extract_embeddings(model, data, idx, batch_size=32, device=cpu)
    b16, ok16 = extract_embeddings(model, data, idx, batch_size=32, device=cpu,
                                   precision="bf16")
    assert ok.all() and ok16.all() and b16.dtype == np.float32
    assert not np.array_equal(f32, b16)  # the bf16 path really ran
    assert bf16_fidelity(f32, b16, k=16, pca_dim=16) >= 0.95


def test_bf16_training_pass_runs_on_cpu_and_keeps_float32_weights() -> None:
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=0)
    model.reset_top_layer(4, torch.Generator().manual_seed(0))
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loader = make_loader([(images[i], -1, i) for i in range(8)], 4)
    opt = torch.optim.SGD(list(model.trunk_parameters()), lr=0.05, momentum=0.9)
    before = model.state_dict()["top_layer.weight"].clone()
    loss = train_pass(model, loader, np.arange(8) % 4, opt,
                      PassSettings(lr=0.05, weight_decay=0.0, precision="bf16"),
                      torch.device("cpu"), DistInfo(), torch.Generator())
    assert np.isfinite(loss) and loss > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.equal(model.state_dict()["top_layer.weight"], before)
