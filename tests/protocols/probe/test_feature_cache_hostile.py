"""Feature-cache entries that disagree are misses; a hit still reports the skipped files."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
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


def _tamper(path: Path, **changes: torch.Tensor) -> None:
    """Rewrite a cache file with some tensors changed and its metadata (the key) kept."""
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    save_file({**tensors, **changes}, str(path), metadata=metadata)


def _entry(cache: FeatureCache, key: CacheKey, value: float, n: int = 4) -> Path:
    return cache.save(key, FeatureSet(torch.full((n, 3), value), torch.zeros(n, dtype=torch.int64),
                                      torch.arange(n)))


def test_a_swapped_file_is_a_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    other = dataclasses.replace(KEY, weights_sha256="other")
    path_a, path_b = _entry(cache, KEY, 0.0), _entry(cache, other, 1.0)
    path_a.write_bytes(path_b.read_bytes())  # model B's features under model A's name
    assert cache.load(other) is not None
    assert cache.load(KEY) is None


@pytest.mark.parametrize("change", ["width", "nan", "inf", "bf16", "float64-labels"])
def test_tampered_tensors_with_the_key_kept_are_a_miss(tmp_path: Path, change: str) -> None:
    cache = FeatureCache(tmp_path)
    path = _entry(cache, KEY, 0.5)
    feats = torch.full((4, 3), 0.5)
    if change == "width":
        _tamper(path, features=torch.zeros(4, 5))
    elif change == "nan":
        _tamper(path, features=feats.index_put_((torch.tensor([1]),), torch.tensor(math.nan)))
    elif change == "inf":
        _tamper(path, features=feats.index_put_((torch.tensor([2]),), torch.tensor(math.inf)))
    elif change == "bf16":
        _tamper(path, features=feats.to(torch.bfloat16))
    else:
        _tamper(path, labels=torch.zeros(4, dtype=torch.float64))
    assert cache.load(KEY) is None


@pytest.mark.parametrize("indices", [[-1, 0, 1, 2], [0, 1, 2, 10_000], [0, 0, 1, 2], [3, 2, 1, 0]],
                         ids=["negative", "out-of-range", "repeated", "unsorted"])
def test_tampered_indices_are_recomputed_not_trusted(cls_set: Path, small_net, tmp_path: Path,
                                                     indices: list[int]) -> None:
    dataset = ImageFolderDataset(cls_set / "train", center_crop(32, 32))
    specs = model_pool_specs(small_net, ["conv1"], 32, "dc2018")
    cache = FeatureCache(tmp_path / "features")

    def run(use: FeatureCache | None) -> tuple[FeatureSet, list]:
        report = DecodeReport()
        out = cached_features(small_net, dataset, specs, "center32", cache=use, batch_size=16,
                              device="cpu", progress=False, report=report)
        return out["conv1"], report.files

    fresh, fresh_report = run(None)
    run(cache)
    (path,) = cache.root.glob("*.safetensors")
    hit = cache.load(next(iter(_keys(cache))))
    n = len(hit)
    bad = torch.tensor(indices + list(range(4, n)), dtype=torch.int64)
    if indices == [3, 2, 1, 0]:
        bad = torch.cat([torch.tensor(indices), hit.indices[4:]])
    _tamper(path, indices=bad)
    again, again_report = run(cache)
    assert torch.equal(again.indices, fresh.indices)
    assert torch.equal(again.features, fresh.features)
    assert again_report == fresh_report and len(fresh_report) == 4


def _keys(cache: FeatureCache) -> list[CacheKey]:
    return [CacheKey(**entry["key"]) for entry in cache.entries()]


def test_relative_and_absolute_data_paths_share_one_entry(cls_set: Path, small_net, tmp_path,
                                                          monkeypatch) -> None:
    specs = model_pool_specs(small_net, ["conv1"], 32, "dc2018")
    cache = FeatureCache(tmp_path / "features")
    monkeypatch.chdir(cls_set.parent)
    for root in (cls_set / "train", Path(cls_set.name) / "train"):
        dataset = ImageFolderDataset(root, center_crop(32, 32))
        cached_features(small_net, dataset, specs, "center32", cache=cache, batch_size=16,
                        device="cpu", progress=False)
    assert len(list(cache.root.glob("*.safetensors"))) == 1
