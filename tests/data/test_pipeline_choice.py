"""`explain_input_pipeline`: the backend `input_pipeline` resolves to on a device, and why,
for every combination of (CUDA device or not) x (DALI installed or not) x (caller with or
without the nvJPEG path), against the rule of `data.pipeline`'s docstring written out here."""

from __future__ import annotations

import pytest

from dcbench.core.errors import UserError
from dcbench.data import pipeline, pipeline_choice
from dcbench.data.pipeline_choice import explain_input_pipeline


def _dali(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    for module in (pipeline, pipeline_choice):
        monkeypatch.setattr(module, "dali_available", lambda: installed)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
@pytest.mark.parametrize("installed", [True, False])
@pytest.mark.parametrize("gpu_path", [True, False])
def test_auto_picks_dali_on_cuda_with_dali_else_nvjpeg_for_training_else_pil(
        monkeypatch: pytest.MonkeyPatch, device: str, installed: bool, gpu_path: bool) -> None:
    _dali(monkeypatch, installed)
    cuda = device.startswith("cuda")
    want = "dali" if cuda and installed else "gpu" if cuda and gpu_path else "cpu"
    line = explain_input_pipeline("auto", device, gpu_path=gpu_path)
    assert line.startswith(f"{want} ({pipeline_choice.BACKENDS[want]}; auto: {device} is ")
    assert ("is a CUDA device" in line) == cuda and ("is not a CUDA device" in line) != cuda
    assert ("DALI not installed: pip install 'dcbench[dali]'" in line) == (not installed
                                                                          and want != "dali")
    assert ("take the PIL path" in line) == (want == "dali")
    assert ("no nvJPEG path" in line) == (cuda and not installed and not gpu_path)


def test_a_set_pipeline_says_so_and_dali_without_dali_is_the_resolvers_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _dali(monkeypatch, True)
    assert explain_input_pipeline("cpu", "cuda").startswith(
        "cpu (PIL in loader workers; set: input_pipeline=cpu)")
    assert explain_input_pipeline("dali", "cpu", gpu_path=False).startswith(
        "dali (NVIDIA DALI; set: input_pipeline=dali; files DALI cannot decode")
    _dali(monkeypatch, False)
    with pytest.raises(UserError, match=r"dcbench\[dali\]"):
        explain_input_pipeline("dali", "cpu")
    with pytest.raises(UserError, match="input_pipeline must be one of auto, cpu, dali"):
        explain_input_pipeline("gpu", "cuda", gpu_path=False)
