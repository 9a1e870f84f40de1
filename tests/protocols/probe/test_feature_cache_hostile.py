"""Feature-cache entries that disagree are misses; a hit still reports the skipped files."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from dcbench.data.folders import ImageFolderDataset
from dcbench.data.loader import DecodeReport
from dcbench.data.transforms import center_crop
from dcbench.protocols.probe.feature_cache import CacheKey, FeatureCache, FeatureSet
from dcbench.protocols.probe.frozen_features import cached_features
from dcbench.protocols.probe.pooling import model_pool_specs

KEY = CacheKey("sha", "conv1", "pool", "data", "center")


def test_arrays_of_different_length_are_a_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    path = cache.save(KEY, FeatureSet(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64),
                                      torch.arange(4)))
    assert cache.load(KEY) is not None
    save_file({"features": torch.zeros(4, 3), "labels": torch.zeros(3, dtype=torch.int64),
               "indices": torch.arange(5)}, str(path))
    assert cache.load(KEY) is None
    save_file({"features": torch.zeros(4), "labels": torch.zeros(4, dtype=torch.int64),
               "indices": torch.arange(4)}, str(path))
    assert cache.load(KEY) is None
    path.with_suffix(".json").write_text("[1, 2]")
    assert cache.load(KEY) is None


def test_cache_hit_keeps_the_skipped_file_report(cls_set: Path, small_net, tmp_path) -> None:
    dataset = ImageFolderDataset(cls_set / "train", center_crop(32, 32))
    specs = model_pool_specs(small_net, ["conv1"], 32, "dc2018")
    cache = FeatureCache(tmp_path / "features")
    reports = []
    for _ in range(2):  # miss, then hit
        report = DecodeReport()
        cached_features(small_net, dataset, specs, "center32", cache=cache, batch_size=16,
                        device="cpu", progress=False, report=report)
        reports.append(report.files)
    assert len(reports[0]) == 4 and reports[1] == reports[0]
