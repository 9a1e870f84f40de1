"""Backend resolution, device-side whitening and the torch k-NN graph against faiss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.clustering import backend
from dcbench.clustering.kmeans import pca_whiten
from dcbench.clustering.pic import knn_search, run_pic
from dcbench.core.errors import UserError


def test_auto_keeps_faiss_on_cpu_and_picks_torch_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    assert backend.resolve_backend("auto", "cpu") == "faiss-cpu"
    assert backend.resolve_backend("auto", "cuda") == "torch-cuda"
    assert backend.resolve_backend("torch", "cpu") == "torch-cpu"
    assert backend.resolve_backend("faiss", "cuda") == "faiss-cpu"
    monkeypatch.setattr(backend, "gpu_available", lambda: True)
    assert backend.resolve_backend("auto", "cuda") == "faiss-gpu"
    with pytest.raises(UserError, match="clustering_backend"):
        backend.resolve_backend("sklearn")


def test_whiten_on_device_matches_pca_whiten() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((800, 40)) @ rng.standard_normal((40, 40))).astype(np.float32)
    got = backend.whiten_on_device(x, 10, "cpu")
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), pca_whiten(x, 10))


def test_torch_knn_equals_faiss_knn() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((700, 12)).astype(np.float32)
    d_ref, i_ref = knn_search(x, 5, use_gpu=False)
    d_got, i_got = backend.knn_search_torch(x, 5)
    np.testing.assert_array_equal(i_got, i_ref)
    np.testing.assert_allclose(d_got, d_ref, rtol=1e-4, atol=1e-4)


def test_pic_with_torch_graph_equals_faiss_graph() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref, _ = run_pic(x, nnn=5, use_gpu=False)
    got, _ = run_pic(x, nnn=5, backend="torch-cpu")
    np.testing.assert_array_equal(got, ref)
