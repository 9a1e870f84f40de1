"""On-disk cache of pooled features, shared by protocols and reruns (`--fast` mode).

An entry is keyed by everything that changes the numbers: the weights sha256, the tap, the
pooling spec, a fingerprint of the dataset (sorted file list + sizes + mtimes) and a text
description of the transform. It is stored under `dcbench.core.home.feature_cache_dir()` as
`<digest>.safetensors` (features float32 (N, D), labels int64 (N,), indices int64 (N,) =
positions in the dataset; undecodable images are absent) plus a `<digest>.json` sidecar
holding the key. Both are written atomically; an entry counts only when both exist, the
sidecar's key and the key stored inside the tensor file (its safetensors metadata) both
match, and the tensors are what `save` writes (dtypes, shapes, finite features, increasing
non-negative indices). Anything else is a miss: recomputed and overwritten, never trusted.
Dataset paths enter the fingerprint as absolute paths (a relative and an absolute --data
share one entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dcbench.core.files import write_json, write_with
from dcbench.core.home import feature_cache_dir

FORMAT_VERSION = 2  # 2: the key inside the tensor file


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Pooled features of one tap over one dataset split."""

    features: torch.Tensor  # (N, D) float32
    labels: torch.Tensor  # (N,) int64
    indices: torch.Tensor  # (N,) int64 positions in the dataset

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """Everything that identifies a cached feature tensor."""

    weights_sha256: str
    layer: str
    pooling: str
    dataset: str
    transform: str

    def digest(self) -> str:
        """A stable file name for this key."""
        return hashlib.sha256(self.text().encode()).hexdigest()[:32]

    def text(self) -> str:
        """The key as stored inside the tensor file (checked on every load)."""
        return json.dumps({"v": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)


def dataset_fingerprint(paths: Sequence[str], labels: Sequence[int] | None = None) -> str:
    """sha256 of the sorted (path, size, mtime_ns[, label]) list: changes when any file does."""
    digest = hashlib.sha256()
    label_of = ({os.path.abspath(p): lab for p, lab in zip(paths, labels, strict=True)}
                if labels is not None else {})
    for path in sorted(paths):
        path = os.path.abspath(path)  # one key whether --data was given relative or absolute
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{path}\0{size}\0{mtime}\0{label_of.get(path, '')}\n".encode())
    return digest.hexdigest()


class FeatureCache:
    """A folder of cached `FeatureSet`s (default `$DCBENCH_HOME/features`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else feature_cache_dir()

    def _paths(self, key: CacheKey) -> tuple[Path, Path]:
        digest = key.digest()
        return self.root / f"{digest}.safetensors", self.root / f"{digest}.json"

    def load(self, key: CacheKey) -> FeatureSet | None:
        """The cached features for `key`, or None if absent, partial or mismatched."""
        tensor_path, meta_path = self._paths(key)
        if not (tensor_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict) or meta.get("key") != dataclasses.asdict(key):
                return None
            with safe_open(str(tensor_path), "pt") as handle:
                stored = handle.metadata() or {}
            if stored.get("dcbench_key") != key.text():
                return None  # a file swapped in from another entry (or not ours)
            tensors = load_file(str(tensor_path))
            feats, labels, indices = tensors["features"], tensors["labels"], tensors["indices"]
        except (OSError, ValueError, KeyError, SafetensorError, RecursionError):
            return None  # a corrupt or foreign entry is a miss, recomputed and overwritten
        shape = list(feats.shape)
        if meta.get("shape") != shape or stored.get("dcbench_shape") != json.dumps(shape):
            return None  # rewritten tensors (e.g. another width) under the right key
        return FeatureSet(feats, labels, indices) if _well_formed(feats, labels, indices) \
            else None

    def save(self, key: CacheKey, features: FeatureSet) -> Path:
        """Store `features` under `key` (tensors first, then the sidecar that validates them)."""
        tensor_path, meta_path = self._paths(key)
        tensors = {
            "features": features.features.detach().to("cpu", torch.float32).contiguous(),
            "labels": features.labels.detach().to("cpu", torch.int64).contiguous(),
            "indices": features.indices.detach().to("cpu", torch.int64).contiguous(),
        }
        metadata = {"dcbench_key": key.text(),
                    "dcbench_shape": json.dumps(list(tensors["features"].shape))}
        write_with(tensor_path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        write_json(meta_path, {
            "format": FORMAT_VERSION,
            "key": dataclasses.asdict(key),
            "shape": list(tensors["features"].shape),
        })
        return tensor_path

    def entries(self) -> list[dict]:
        """Sidecars of every complete entry (for `dcbench data`-style listings and tests)."""
        out = []
        for meta_path in sorted(self.root.glob("*.json")):
            if meta_path.with_suffix(".safetensors").is_file():
                out.append(json.loads(meta_path.read_text()))
        return out


def _well_formed(feats: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> bool:
    """What `save` writes: float32 (N, D) finite features, int64 (N,) labels and strictly
    increasing non-negative int64 indices."""
    if feats.dtype != torch.float32 or labels.dtype != torch.int64 \
            or indices.dtype != torch.int64:
        return False
    if feats.dim() != 2 or labels.dim() != 1 or indices.dim() != 1 \
            or not len(feats) == len(labels) == len(indices):
        return False  # arrays that disagree in length: a miss, never a crash later
    if len(indices) and (int(indices[0]) < 0 or not bool((indices[1:] > indices[:-1]).all())):
        return False
    return bool(torch.isfinite(feats).all())


def fits_dataset(entry: FeatureSet, targets: Sequence[Any]) -> bool:
    """True when a cached entry can describe this dataset: every index is a position in it
    and, for integer class targets, every label is that image's label (other targets, e.g.
    VOC's multi-label strings, are covered by the dataset fingerprint in the key)."""
    if len(entry) and int(entry.indices[-1]) >= len(targets):
        return False
    if not all(isinstance(t, int | np.integer) for t in targets):
        return True
    expected = torch.as_tensor([int(targets[i]) for i in entry.indices.tolist()],
                               dtype=torch.int64)
    return bool(torch.equal(expected, entry.labels))
