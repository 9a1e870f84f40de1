"""Official DeepCluster checkpoints: key layout, conversion, outputs vs plain functional code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import dcbench
from dcbench.models import create_backbone

# Official AlexNet conv specs (features index, stride, padding) and pools after convs 1, 2, 5.
ALEXNET_CONVS = [(0, 4, 2), (4, 1, 2), (8, 1, 1), (11, 1, 1), (14, 1, 1)]


def official_alexnet_state_dict(k: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict in the exact key layout main.py saves (features wrapped in DataParallel)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {
        "sobel.0.weight": torch.full((1, 3, 1, 1), 1 / 3), "sobel.0.bias": torch.zeros(1),
        "sobel.1.weight": torch.tensor([[[[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]],
                                        [[[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]]]),
        "sobel.1.bias": torch.zeros(2),
    }
    shapes = [(96, 2, 11), (256, 96, 5), (384, 256, 3), (384, 384, 3), (256, 384, 3)]
    for (idx, _, _), (cout, cin, ks) in zip(ALEXNET_CONVS, shapes, strict=True):
        sd[f"features.module.{idx}.weight"] = torch.randn(cout, cin, ks, ks, generator=g) * 0.05
        sd[f"features.module.{idx}.bias"] = torch.randn(cout, generator=g) * 0.1
        bn = f"features.module.{idx + 1}"
        sd[f"{bn}.weight"] = 1 + 0.1 * torch.randn(cout, generator=g)
        sd[f"{bn}.bias"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"{bn}.running_mean"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"{bn}.running_var"] = 0.5 + torch.rand(cout, generator=g)
    sd["classifier.1.weight"] = torch.randn(4096, 9216, generator=g) * 0.01
    sd["classifier.1.bias"] = torch.randn(4096, generator=g) * 0.01
    sd["classifier.4.weight"] = torch.randn(4096, 4096, generator=g) * 0.01
    sd["classifier.4.bias"] = torch.randn(4096, generator=g) * 0.01
    sd["top_layer.weight"] = torch.randn(k, 4096, generator=g) * 0.01
    sd["top_layer.bias"] = torch.zeros(k)
    return sd


def save_official(path, sd: dict[str, torch.Tensor], arch: str = "alexnet") -> None:
    torch.save({"epoch": 500, "arch": arch, "state_dict": sd,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.05, "params": [0, 1]}]}},
               path)


def functional_alexnet(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """AlexNet-BN-Sobel written out with torch.nn.functional only (no dcbench code)."""
    x = F.conv2d(x, sd["sobel.0.weight"], sd["sobel.0.bias"])
    x = F.conv2d(x, sd["sobel.1.weight"], sd["sobel.1.bias"], padding=1)
    out = {}
    for n, (idx, stride, pad) in enumerate(ALEXNET_CONVS, start=1):
        p, bn = f"features.module.{idx}", f"features.module.{idx + 1}"
        x = F.conv2d(x, sd[f"{p}.weight"], sd[f"{p}.bias"], stride=stride, padding=pad)
        x = F.batch_norm(x, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"],
                         sd[f"{bn}.weight"], sd[f"{bn}.bias"], training=False, eps=1e-5)
        x = F.relu(x)
        out[f"conv{n}"] = x
        if n in (1, 2, 5):
            x = F.max_pool2d(x, 3, 2)
    x = x.flatten(1)
    out["fc6"] = F.linear(x, sd["classifier.1.weight"], sd["classifier.1.bias"])
    out["fc7"] = F.linear(F.relu(out["fc6"]), sd["classifier.4.weight"], sd["classifier.4.bias"])
    out["logits"] = F.linear(F.relu(out["fc7"]), sd["top_layer.weight"], sd["top_layer.bias"])
    return out


def test_official_checkpoint_outputs_match_functional_recomputation(tmp_path):
    sd = official_alexnet_state_dict(k=10)
    path = tmp_path / "checkpoint.pth.tar"
    save_official(path, sd)
    model = dcbench.load_model(str(path))
    assert model.config["arch"] == "alexnet" and model.config["sobel"] is True
    assert model.config["num_classes"] == 10
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.forward_features(x, ["conv1", "conv3", "conv5", "fc6", "fc7"])
        logits = model(x)
        ref = functional_alexnet(x, sd)
    for layer in ("conv1", "conv3", "conv5", "fc6", "fc7"):
        torch.testing.assert_close(ours[layer], ref[layer], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-4, atol=1e-4)


def test_fc_taps_are_pre_relu():
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0).eval()
    out = model.forward_features(torch.randn(4, 3, 64, 64), ["fc6", "fc7"])
    assert (out["fc6"] < 0).any() and (out["fc7"] < 0).any()


def test_official_key_sets_match_the_reference_tables():
    alex = create_backbone({"arch": "alexnet", "sobel": True, "num_classes": 10000}, seed=0)
    keys = {k for k in alex.state_dict() if not k.endswith("num_batches_tracked")}
    expected = {k.replace(".module.", ".") for k in official_alexnet_state_dict(10000)}
    assert keys == expected
    assert len(keys) == 40
    assert sum(alex.state_dict()[k].numel() for k in keys) == 99_245_256
    vgg = create_backbone({"arch": "vgg16", "sobel": True, "num_classes": 10000}, seed=0)
    vgg_keys = {k for k in vgg.state_dict() if not k.endswith("num_batches_tracked")}
    assert len(vgg_keys) == 88
    assert sum(vgg.state_dict()[k].numel() for k in vgg_keys) == 175_246_888
    convs = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
    assert {f"features.{i}.weight" for i in convs} <= vgg_keys
    assert vgg.state_dict()["classifier.0.weight"].shape == (4096, 25088)
    assert vgg.state_dict()["features.0.weight"].shape == (64, 2, 3, 3)


def test_sobel_is_frozen_and_exact():
    model = create_backbone({"arch": "alexnet", "sobel": True}, seed=0)
    assert all(not p.requires_grad for p in model.sobel.parameters())
    trunk_ids = {id(p) for p in model.trunk_parameters()}
    assert not any(id(p) in trunk_ids for p in model.sobel.parameters())
    img = torch.zeros(1, 3, 8, 8)
    img[..., :, 4:] = 3.0  # a vertical edge, same in all channels
    grad = model.sobel(img)
    assert grad[0, 0, 4, 3].item() == -4.0 * 3.0 and grad[0, 1, 4, 3].item() == 0.0


def test_rgb_model_has_no_sobel_keys():
    model = create_backbone({"arch": "alexnet", "sobel": False}, seed=0)
    assert model.sobel is None
    assert model.state_dict()["features.0.weight"].shape == (96, 3, 11, 11)
    assert not any(k.startswith("sobel") for k in model.state_dict())
