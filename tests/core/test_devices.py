"""The one device resolver."""

from __future__ import annotations

import pytest
import torch

from dcbench.core.devices import resolve_device
from dcbench.core.errors import UserError


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for name in (None, "", "auto"):
        assert resolve_device(name).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["mps", "gpu", "cuda:x"])
def test_unknown_names_are_refused(name):
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("refused earlier: no CUDA here")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(UserError, match="no CUDA GPU is available"):
        resolve_device("cuda:1")
