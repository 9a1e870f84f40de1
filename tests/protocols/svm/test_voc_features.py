"""SVM feature extraction: the whole image squashed (no crop), VOC ids and labels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import VOCClassification
from dcbench.models import create_backbone
from dcbench.protocols.svm.voc_features import squash_transform, voc_split_features


def test_squash_keeps_the_whole_image():
    image = Image.new("RGB", (200, 100))
    image.paste((255, 255, 255), (0, 0, 20, 100))  # a white band on the far left
    out = squash_transform(50, 64, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(image)
    assert out.shape == (3, 50, 50)
    assert out[:, :, 0].mean() > 0.9  # a center crop would have cut the band off


@pytest.mark.parametrize("short", [256, None])
def test_split_features_rows_follow_the_voc_split(tmp_path, monkeypatch, short):
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    root = make_voc_set(tmp_path / "voc", n_train=4, n_val=4, n_test=4, size=64, seed=0)
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    feats = voc_split_features(model, root, "trainval", ["conv5"], pooling="goyal2019",
                               resize_short=short, use_cache=True, batch_size=4, device="cpu",
                               progress=False)
    voc = VOCClassification(root, 2007, "trainval")
    assert feats.ids == voc.ids and np.array_equal(feats.labels, voc.labels)
    again = voc_split_features(model, root, "trainval", ["conv5"], pooling="goyal2019",
                               resize_short=short, use_cache=True, batch_size=4, device="cpu",
                               progress=False)
    assert torch.equal(torch.from_numpy(again.features["conv5"]),
                       torch.from_numpy(feats.features["conv5"]))


def test_dali_features_of_the_squash_are_cached_apart_from_the_pil_ones(tmp_path):
    """With resize_short (the default squash) `input_pipeline=dali` reads through DALI: its
    features are close to PIL's but not equal, and the feature cache keeps them apart, so a
    later cpu run gets exactly the features of an uncached cpu run."""
    pytest.importorskip("nvidia.dali")
    root = make_voc_set(tmp_path / "voc", n_train=4, n_val=4, n_test=4, size=96, seed=0)
    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)

    def features(pipeline, use_cache):
        return voc_split_features(model, root, "trainval", ["conv5"], pooling="goyal2019",
                                  resize_short=256, use_cache=use_cache, batch_size=4,
                                  device="cpu", progress=False, pipeline=pipeline)

    dali = features("dali", True).features["conv5"]
    cached_cpu = features("cpu", True).features["conv5"]
    plain_cpu = features("cpu", False).features["conv5"]
    assert np.array_equal(cached_cpu, plain_cpu)
    assert not np.array_equal(dali, plain_cpu)
    assert np.abs(dali - plain_cpu).mean() < 0.03 * np.abs(plain_cpu).mean()  # measured 0.8%
