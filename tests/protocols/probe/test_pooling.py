"""Pooled dimensions per layer and dialect, against the published tables and real pooling."""

from __future__ import annotations

import pytest
import torch

from dcbench.protocols.probe.pooling import PoolSpec, fallback_grid, pool_features, pool_spec

# AlexNet conv maps at 224 px (deepcluster-official.md 3.1)
ALEXNET_224 = {"conv1": (96, 55, 55), "conv2": (256, 27, 27), "conv3": (384, 13, 13),
               "conv4": (384, 13, 13), "conv5": (256, 13, 13)}
RESNET_224 = {"conv1": (64, 112, 112), "conv2": (256, 56, 56), "conv3": (512, 28, 28),
              "conv4": (1024, 14, 14), "conv5": (2048, 7, 7)}
# Published dims; goyal2019 by hand: conv1 (55-19)//4+1 = 10 -> 96*100, conv2 (27-12)//3+1 = 6
# -> 256*36, conv3/4 (13-9)+1 = 5 -> 384*25, conv5 (13-8)+1 = 6 -> 256*36.
EXPECTED = {
    ("alexnet", "dc2018"): [9600, 9216, 9600, 9600, 9216],
    ("alexnet", "goyal2019"): [9600, 9216, 9600, 9600, 9216],
    ("resnet50", "dc2018"): [9216, 9216, 8192, 9216, 8192],
    ("resnet50", "goyal2019"): [9216, 9216, 8192, 9216, 8192],
}


@pytest.mark.parametrize(("arch", "table"), list(EXPECTED))
def test_published_tables_give_published_dims(arch, table):
    shapes = ALEXNET_224 if arch == "alexnet" else RESNET_224
    for layer, expected in zip(shapes, EXPECTED[(arch, table)], strict=True):
        spec = pool_spec(arch, layer, shapes[layer], 224, table)
        assert spec.kind == "avg"
        assert spec.output_dim(shapes[layer]) == expected
        pooled = pool_features(torch.zeros(2, *shapes[layer]), spec)
        assert pooled.shape == (2, expected)


def test_dc2018_alexnet_kernels_are_the_official_ones():
    got = [pool_spec("alexnet", f"conv{i}", ALEXNET_224[f"conv{i}"], 224) for i in range(1, 6)]
    assert [(s.kernel, s.stride, s.padding) for s in got] == [
        (6, 6, 3), (4, 4, 0), (3, 3, 1), (3, 3, 1), (2, 2, 0)]


def test_vgg16_documented_grids():
    shapes = {"conv1": (64, 224, 224), "conv2": (128, 112, 112), "conv3": (256, 56, 56),
              "conv4": (512, 28, 28), "conv5": (512, 14, 14)}
    dims = [pool_spec("vgg16", k, v, 224).output_dim(v) for k, v in shapes.items()]
    assert dims == [9216, 8192, 9216, 8192, 8192]


def test_fallback_rule_closest_to_9600_capped_by_map():
    # alexnet_small at 64 px: conv1 32x32x32 -> s=17 (9248; s=18 gives 10368)
    assert fallback_grid(32, 32, 32) == 17
    assert fallback_grid(64, 15, 15) == 12  # 64*144 = 9216
    assert fallback_grid(96, 7, 7) == 7  # map smaller than the target: kept whole
    spec = pool_spec("alexnet", "conv1", (96, 63, 63), 256)  # not the table's input size
    assert spec.kind == "adaptive" and spec.grid == 10  # 96*100 = 9600
    assert pool_spec("alexnet_small", "fc7", (256,), 64).kind == "none"


def test_pool_features_matches_a_hand_average():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = pool_features(x, PoolSpec("avg", 2, 2, 0)).view(2, 3, 2, 2)
    assert torch.allclose(out[1, 2, 0, 1], x[1, 2, 0:2, 2:4].mean())
    padded = pool_features(x, PoolSpec("avg", 3, 3, 1)).view(2, 3, 2, 2)
    # count_include_pad (PyTorch default, as in eval_linear.py): zeros count in the mean
    assert torch.allclose(padded[0, 0, 0, 0], x[0, 0, 0:2, 0:2].sum() / 9)


def test_real_alexnet_specs_from_the_model():
    from dcbench.models import create_backbone
    from dcbench.protocols.probe.pooling import model_pool_specs

    net = create_backbone({"arch": "alexnet", "sobel": True}, seed=0)
    layers = list(ALEXNET_224)
    for table in ("dc2018", "goyal2019"):
        specs = model_pool_specs(net, layers, 224, table)
        shapes = net.feature_shapes(layers, 224)
        assert shapes == ALEXNET_224
        dims = [specs[k].output_dim(shapes[k]) for k in layers]
        assert dims == EXPECTED[("alexnet", table)]
