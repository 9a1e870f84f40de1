"""With the network unreachable, every download path fails in seconds with one line, exit 2."""

from __future__ import annotations

import socket
import time

import pytest

import dcbench
from dcbench.cli.entry import main
from dcbench.core.errors import NetworkError
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir
from dcbench.models.sources import catalog


@pytest.fixture
def unreachable(monkeypatch, tmp_path):
    """No DNS, no connections; empty torch/HF caches; the offline env flags unset."""
    from huggingface_hub import constants

    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DCBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _one_line_exit_2(argv, capsys, must_name):
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("dcbench: error:"), err
    assert must_name in err[0]
    assert "Traceback" not in err[0]
    assert seconds < 8, f"{argv} took {seconds:.1f}s offline"


def test_torchvision_weights_offline(unreachable, capsys, cls_set, tmp_path):
    with pytest.raises(NetworkError, match="hub.checkpoints.resnet18"):
        dcbench.load_model("torchvision:resnet18")
    with pytest.raises(ConnectionError):  # a builtin type too
        dcbench.load_model("torchvision:resnet50@IMAGENET1K_V2")
    _one_line_exit_2(["eval", "--protocol", "knn", "--model", "torchvision:resnet18@DEFAULT",
                      "--data", str(cls_set), "--out", str(tmp_path / "e")], capsys,
                     str(tmp_path / "torch"))


def test_timm_and_hf_hub_offline(unreachable, capsys, cls_set, tmp_path):
    pytest.importorskip("timm")
    _one_line_exit_2(["eval", "--protocol", "knn", "--model", "timm:resnet18",
                      "--data", str(cls_set), "--out", str(tmp_path / "e")], capsys,
                     "Hugging Face cache")
    _one_line_exit_2(["eval", "--protocol", "knn", "--model", "hf-hub:someone/dc-model",
                      "--data", str(cls_set), "--out", str(tmp_path / "e")], capsys,
                     str(tmp_path / "hf"))


def test_catalog_pull_and_push_offline(unreachable, capsys, monkeypatch, tmp_path):
    entry = catalog.CatalogEntry(name="net-alexnet", arch="alexnet", sobel=True, source="url",
                                 description="x", url="https://example.invalid/a.pth.tar")
    monkeypatch.setitem(catalog.CATALOG._items, entry.name, entry)
    _one_line_exit_2(["hub", "pull", entry.name], capsys, "copy it to")
    folder = tmp_path / "m"
    save_hub_dir(create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0), folder)
    _one_line_exit_2(["hub", "push", str(folder), "--repo", "me/dc-tiny"], capsys,
                     "cannot be reached")
