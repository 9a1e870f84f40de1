"""`data.pipeline`: which backend `input_pipeline` resolves to, and the PIL path kept where
DALI cannot express a transform."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from dcbench.core.errors import UserError
from dcbench.data import pipeline as P
from dcbench.data import transforms as T
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.synthetic_jpeg import make_jpeg_folder
from dcbench.protocols.base import get_protocol


@pytest.mark.parametrize(("name", "cuda", "dali", "gpu_path", "expected"), [
    ("auto", False, True, True, "cpu"),
    ("auto", True, True, True, "dali"),
    ("auto", True, False, True, "gpu"),
    ("auto", True, False, False, "cpu"),  # protocols: no nvJPEG path
    ("cpu", True, True, True, "cpu"),
    ("gpu", False, False, True, "gpu"),
    ("dali", False, True, False, "dali"),
])
def test_resolution(monkeypatch: pytest.MonkeyPatch, name: str, cuda: bool, dali: bool,
                    gpu_path: bool, expected: str) -> None:
    monkeypatch.setattr(P, "dali_available", lambda: dali)
    device = torch.device("cuda" if cuda else "cpu")
    assert P.resolve_input_pipeline(name, device, gpu_path=gpu_path) == expected


def test_dali_without_dali_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "dali_available", lambda: False)
    with pytest.raises(UserError, match=r"dcbench\[dali\]"):
        P.resolve_input_pipeline("dali", "cpu")


def test_gpu_is_not_a_protocol_pipeline() -> None:
    with pytest.raises(UserError, match="auto, cpu, dali"):
        P.resolve_input_pipeline("gpu", "cpu", gpu_path=False)


def test_inexpressible_transform_keeps_the_pil_loader(tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    root = make_jpeg_folder(tmp_path / "s", n_classes=1, per_class=2)
    rotating = ImageFolderDataset(root, v2.Compose([v2.ToImage(), v2.RandomRotation(10),
                                                    *T.center_crop(32, 36).transforms[1:]]))
    assert P.describe_loader(P.image_loader(rotating, 2, pipeline="dali")) == "cpu"
    caffe = ImageFolderDataset(root, T.voc_caffe_train(32))  # the affine warp (dali_warp)
    assert P.describe_loader(P.image_loader(caffe, 2, pipeline="dali")) == "dali"
    center = ImageFolderDataset(root, T.center_crop(32, 36))
    assert P.describe_loader(P.image_loader(center, 2, pipeline="dali")) == "dali"
    assert P.describe_loader(P.image_loader(center, 2, pipeline="auto")) == "cpu"  # CPU


def test_protocol_configs_bound_input_pipeline() -> None:
    protocol = get_protocol("knn")
    assert protocol.resolve_config(overrides=["input_pipeline=dali"]).input_pipeline == "dali"
    with pytest.raises(UserError, match="input_pipeline"):
        protocol.resolve_config(overrides=["input_pipeline=gpu"])
