"""Pooled frozen features: one extraction pass, shared through the feature cache."""

from __future__ import annotations

import torch

from dcbench.data import transforms as T
from dcbench.data.folders import find_dataset
from dcbench.protocols.probe.feature_cache import FeatureCache
from dcbench.protocols.probe.frozen_features import cached_features
from dcbench.protocols.probe.pooling import model_pool_specs
from dcbench.protocols.probe.splits import Sizes


def test_cached_features_extracts_once_and_is_shared(cls_data, small_net, tmp_path):
    sizes = Sizes.for_model(small_net)
    assert (sizes.crop, sizes.resize) == (64, 73)  # round(64 * 256 / 224)
    data = find_dataset(cls_data, "val", T.center_crop(64, 73))
    specs = model_pool_specs(small_net, ["conv2", "conv5"], 64, "dc2018")
    cache = FeatureCache(tmp_path)
    calls = []

    def featurize(x):
        calls.append(len(x))
        return small_net.eval().forward_features(x, ["conv2", "conv5"])

    kw = dict(cache=cache, batch_size=8, device="cpu", progress=False, featurize=featurize)
    first = cached_features(small_net, data, specs, "center(64,73)", **kw)
    n_calls = len(calls)
    second = cached_features(small_net, data, specs, "center(64,73)", **kw)
    assert len(calls) == n_calls  # second call: cache hit, no forward
    assert torch.equal(first["conv5"].features, second["conv5"].features)
    assert first["conv2"].features.shape == (24, 64 * 12 * 12)
    cached_features(small_net, data, specs, "other-transform", **kw)
    assert len(calls) > n_calls  # another transform is another entry
