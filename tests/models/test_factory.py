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
        ("torchvision:resnet18@random", ["conv5", "pool"]),
        ("torchvision:vgg11@random", ["conv1", "conv5", "fc7"]),
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


def test_errors_are_builtin_types_too():
    with pytest.raises(KeyError):
        dcbench.load_model("deepcluster-alexnett")
    with pytest.raises(KeyError):
        dcbench.load_model("arch:alexnett")
    with pytest.raises(FileNotFoundError):
        dcbench.load_model("missing/model.pth.tar")
    model = dcbench.load_model("random-alexnet_small-sobel")
    with pytest.raises(KeyError, match="conv6"):
        model.forward_features(torch.randn(1, 3, 64, 64), ["conv6"])
    with pytest.raises(ValueError, match="RGB batch"):
        model.forward_features(torch.randn(1, 1, 64, 64))
    err = pytest.raises(KeyError, dcbench.load_model, "nope-model").value
    assert isinstance(err, UserError) and str(err).startswith("unknown model 'nope-model'")


def test_timm_like_surface_features_and_logits():
    model = dcbench.load_model("random-alexnet_small-sobel")
    x = torch.randn(2, 3, 64, 64)
    # model(x) without a head: the fc7 embedding, num_features wide
    assert model.num_features == 4096 or model(x).shape == (2, model.num_features)
    assert torch.equal(model(x), model.forward_features(x, ["fc7"])["fc7"])
    # forward_features(x): the last conv map, as timm returns it
    assert model.default_tap == "conv5"
    assert torch.equal(model.forward_features(x), model.forward_features(x, ["conv5"])["conv5"])
    assert model.forward_features(x).dim() == 4
    # with a head: logits; reset_classifier(0) drops it again
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_pretrained_false_is_same_architecture_random_init(tmp_path):
    trained = create_backbone({"arch": "alexnet_small", "sobel": False}, seed=5)
    save_hub_dir(trained, tmp_path / "m")
    fresh = dcbench.load_model(str(tmp_path / "m"), pretrained=False)
    assert fresh.config["arch"] == "alexnet_small" and fresh.config["sobel"] is False
    assert fresh.weights_sha256() != trained.weights_sha256()
    seed0 = create_backbone({"arch": "alexnet_small", "sobel": False}, seed=0)
    assert fresh.weights_sha256() == seed0.weights_sha256()
    # a catalog model with downloadable weights: no download, just the architecture
    offline = dcbench.load_model("deepcluster-alexnet", pretrained=False)
    assert offline.config["arch"] == "alexnet" and offline.config["sobel"] is True
    tv = dcbench.load_model("torchvision:resnet18", pretrained=False)
    assert tv.config["weights"] == "random"


def test_timm_taps_come_from_forward_intermediates():
    timm = pytest.importorskip("timm")
    x = torch.randn(1, 3, 64, 64)
    cnn = dcbench.load_model("timm:resnet18", pretrained=False)
    feats = cnn.forward_features(x, ["conv1", "conv5", "pool"])
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0)
    ref.load_state_dict(cnn.net.state_dict())
    ref.eval()
    maps = ref.forward_intermediates(x, indices=[0, 4], intermediates_only=True)
    assert torch.allclose(feats["conv1"], maps[0]) and torch.allclose(feats["conv5"], maps[1])
    assert torch.allclose(feats["pool"], ref(x), atol=1e-6)
    assert cnn.num_features == 512
    vit = dcbench.load_model("timm:vit_tiny_patch16_224@random")
    assert vit.config["taps"][:2] == ["block1", "block2"] and "block12" in vit.config["taps"]
    out = vit.forward_features(torch.randn(1, 3, 224, 224), ["block12"])["block12"]
    assert out.shape == (1, 192, 14, 14)  # a (N, C, H, W) token grid, not a token list
    assert vit.pretrained_cfg["interpolation"] == "bicubic"


def test_hub_entry_points_take_pretrained():
    model = torch.hub.load(str(REPO), "deepcluster_alexnet", pretrained=False, source="local",
                           trust_repo=True)
    assert model.config["arch"] == "alexnet" and model.config["init_seed"] == 0


@pytest.mark.parametrize("spec", ["torchvision:resnet18@random", "timm:resnet18@random"])
def test_third_party_random_init_is_the_same_network_every_load(spec):
    # one spec, one model: the store groups rows by the weights' sha256, so an unseeded init
    # made every `--model torchvision:NAME@random` run a new, ambiguous model
    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    first = dcbench.load_model(spec).weights_sha256()
    second = dcbench.load_model(spec).weights_sha256()
    assert first == second
    assert torch.equal(torch.rand(2), expected)  # the caller's RNG stream is untouched
