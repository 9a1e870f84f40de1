"""The feature cache: round trip, key isolation, dataset fingerprints, reuse across calls."""

from __future__ import annotations

import os

import torch

from dcbench.protocols.probe.feature_cache import (
    CacheKey,
    FeatureCache,
    FeatureSet,
    dataset_fingerprint,
)


def _key(**kw) -> CacheKey:
    base = dict(weights_sha256="a" * 64, layer="conv3", pooling="avg(k=3,s=3,p=1)",
                dataset="fp", transform="center_crop(crop=64)")
    base.update(kw)
    return CacheKey(**base)


def test_round_trip_and_key_isolation(tmp_path):
    cache = FeatureCache(tmp_path)
    feats = FeatureSet(torch.randn(5, 7), torch.arange(5), torch.tensor([0, 1, 3, 4, 6]))
    cache.save(_key(), feats)
    got = cache.load(_key())
    assert torch.equal(got.features, feats.features) and torch.equal(got.indices, feats.indices)
    for other in (_key(layer="conv4"), _key(weights_sha256="b" * 64), _key(dataset="fp2"),
                  _key(transform="ten_crop"), _key(pooling="adaptive(5x5)")):
        assert cache.load(other) is None
    assert [e["key"]["layer"] for e in cache.entries()] == ["conv3"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_partial_entry_is_ignored(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.save(_key(), FeatureSet(torch.zeros(2, 3), torch.zeros(2).long(), torch.arange(2)))
    next(tmp_path.glob("*.json")).unlink()  # as if killed between the two writes
    assert cache.load(_key()) is None


def test_fingerprint_changes_with_content_and_labels(tmp_path):
    files = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"x" * (i + 1))
        files.append(str(path))
    fp = dataset_fingerprint(files, [0, 1, 1])
    assert fp == dataset_fingerprint(list(reversed(files)), [1, 1, 0])  # order-free
    assert fp != dataset_fingerprint(files, [0, 1, 0])
    os.utime(files[0], ns=(1, 1))
    assert fp != dataset_fingerprint(files, [0, 1, 1])


