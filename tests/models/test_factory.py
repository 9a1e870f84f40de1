"""`load_model` specs, taps, input checks, determinism, and the torch.hub entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import dcbench
from dcbench.core.errors import UserError
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "layers"),
    [
        ("random-alexnet_small-sobel", ["conv1", "conv5", "fc7"]),
        ("arch:alexnet_small?sobel=false&num_classes=5&seed=3", ["conv2", "fc6"]),
        ("torchvision:resnet18", ["conv5", "pool"]),
        ("torchvision:vgg11", ["conv1", "conv5", "fc7"]),
        ("timm:resnet18@random", ["conv3", "pool"]),
    ],
)
def test_specs_load_and_expose_taps(spec, layers):
    model = dcbench.load_model(spec)
    out = model.forward_features(torch.randn(2, 3, 64, 64), layers)
    assert list(out) == layers
    assert all(t.shape[0] == 2 for t in out.values())
    assert not model.training


def test_unknown_names_list_valid_ones():
    with pytest.raises(UserError, match="valid:.*deepcluster-alexnet"):
        dcbench.load_model("deepcluster-alexnett")
    model = dcbench.load_model("random-alexnet_small-sobel")
    with pytest.raises(UserError, match="conv5"):
        model.forward_features(torch.randn(1, 3, 64, 64), ["conv6"])
    with pytest.raises(UserError, match="not found"):
        dcbench.load_model("missing/model.pth.tar")


def test_too_small_input_is_refused_clearly():
    model = create_backbone({"arch": "alexnet", "sobel": True}, seed=0)
    with pytest.raises(UserError, match="at least 63x63"):
        model.forward_features(torch.randn(1, 3, 40, 40), ["conv1"])
    out = model.forward_features(torch.randn(1, 3, 96, 128), ["conv5", "fc7"])
    assert out["fc7"].shape == (1, 4096)


def test_seeded_init_is_deterministic():
    a = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=7)
    b = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=7)
    c = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=8)
    assert a.weights_sha256() == b.weights_sha256() != c.weights_sha256()


def test_hub_folder_round_trip(tmp_path):
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 7}, seed=1)
    save_hub_dir(model, tmp_path / "m", card="# card\n")
    loaded = dcbench.load_model(str(tmp_path / "m"))
    assert loaded.weights_sha256() == model.weights_sha256()
    assert loaded.config["num_classes"] == 7
    # a bare .safetensors next to its config.json loads too
    same = dcbench.load_model(str(tmp_path / "m" / "model.safetensors"))
    assert same.weights_sha256() == model.weights_sha256()


def test_hubconf_local_entry_points():
    model = torch.hub.load(str(REPO), "load", "random-alexnet_small-rgb", source="local",
                           trust_repo=True)
    assert model.config["arch"] == "alexnet_small" and model.config["sobel"] is False


def test_list_models_globs():
    assert dcbench.list_models("deepcluster-*") == ["deepcluster-alexnet", "deepcluster-vgg16"]
    assert "deepclusterv2-r50-800ep" in dcbench.list_models("deepclusterv2*")
    assert "arch:vgg16" in dcbench.list_models()


def test_no_bare_torch_load_in_the_package():
    offenders = []
    for path in (REPO / "dcbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                           and k.value.value is True for k in node.keywords)
                if not safe:
                    offenders.append(f"{path}:{node.lineno}")
    assert offenders == []
