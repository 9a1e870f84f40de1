"""Per-item outcomes of an evaluation: what each test item scored, so two runs on the same
items can be compared item by item (paired intervals, `leaderboards.paired`).

One run dir holds one `outcomes.safetensors` next to `results.json`: for every (split,
layer, metric) whose value is an average over test items, the arrays that recompute it,
named `<entry>/<field>`, plus a JSON manifest in the file's metadata. Kinds:

- `correct`: `correct` int8 (N,), 1 = top-1 right (crop-aggregated); metric = 100 * mean.
- `multilabel`: `scores` float32 (N, C), `targets` int8 (N, C) (1 positive, 0 negative,
  -1 ignored, e.g. VOC "difficult"); metric = 100 * mean over classes of the AP.
- `confusion`: `inter`, `pred`, `gt` int64 (N, C): per image and class the pixels both
  predicted and true, predicted, true; metric = 100 * mean IoU over defined classes.
- `mean`: `values` float64 (N,); metric = 100 * mean (e.g. per-query AP of retrieval).
- `multilabel-voc`: the arrays of `multilabel`, but each class AP is the VOC all-point
  interpolated AP (precision made monotone from the right, ties in index order: the SVM
  protocols' `svm.core.voc_ap`) instead of sklearn's.

A run that reports several datasets (retrieval: Oxford and Paris) or several models
(low-shot: the checkpoint and its random-init baseline) under one (split, layer, metric)
names them in `dataset` / `model_sha256` (None: the run's only one); `seed` is the seed of
the rows the entry makes (one entry per seed where a run reports one value per seed).

`listing` is the fingerprint of the evaluated dataset's file list (the feature cache's
`dataset_fingerprint`): two entries pair only with the same listing and item count. Items
are in dataset order, undecodable ones absent (the same files drop out of every run).
safetensors bytes depend only on the arrays and metadata, so the file is reproducible.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from dcbench.core.errors import UserError
from dcbench.core.files import write_bytes

OUTCOMES_FILE = "outcomes.safetensors"
FORMAT_VERSION = 1
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "correct": ("correct",),
    "multilabel": ("scores", "targets"),
    "confusion": ("inter", "pred", "gt"),
    "mean": ("values",),
    "multilabel-voc": ("scores", "targets"),
}


@dataclasses.dataclass(frozen=True)
class ItemOutcomes:
    """The per-item arrays behind one (split, layer, metric) value of a run."""

    split: str
    layer: str
    metric: str
    kind: str
    listing: str
    arrays: Mapping[str, np.ndarray]
    seed: int | None = None
    dataset: str | None = None
    model_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KIND_FIELDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}; valid: {list(KIND_FIELDS)}")
        missing = set(KIND_FIELDS[self.kind]) - set(self.arrays)
        if missing:
            raise ValueError(f"{self.kind} outcomes need arrays {sorted(missing)}")
        sizes = {len(np.asarray(a)) for a in self.arrays.values()}
        if len(sizes) != 1:
            raise ValueError("every outcome array must have one row per item")

    @property
    def n_items(self) -> int:
        """Number of test items."""
        return len(next(iter(self.arrays.values())))

    def key(self) -> tuple[str, str, str]:
        """(split, layer, metric): which result value these items make."""
        return self.split, self.layer, self.metric


def correct_outcomes(split: str, layer: str, metric: str, listing: str,
                     correct: np.ndarray, seed: int | None = None) -> ItemOutcomes:
    """Top-1 correctness per item (bool or 0/1) as a `correct` entry."""
    return ItemOutcomes(split, layer, metric, "correct", listing,
                        {"correct": np.asarray(correct).astype(np.int8)}, seed)


def to_bytes(entries: Sequence[ItemOutcomes]) -> bytes:
    """The safetensors bytes of `entries` (deterministic: same arrays, same bytes)."""
    tensors: dict[str, np.ndarray] = {}
    manifest = []
    for i, entry in enumerate(entries):
        fields = KIND_FIELDS[entry.kind]
        for name in fields:
            tensors[f"{i}/{name}"] = np.ascontiguousarray(entry.arrays[name])
        manifest.append({"split": entry.split, "layer": entry.layer, "metric": entry.metric,
                         "kind": entry.kind, "listing": entry.listing, "seed": entry.seed,
                         "n_items": entry.n_items,
                         # only when set: files of single-dataset, single-model runs unchanged
                         **{name: getattr(entry, name) for name in ("dataset", "model_sha256")
                            if getattr(entry, name) is not None}})
    # one metadata key: safetensors writes a metadata map in no fixed order
    meta = {"dcbench_outcomes": json.dumps({"format": FORMAT_VERSION, "entries": manifest},
                                           sort_keys=True)}
    return save(tensors, metadata=meta)


def write_outcomes(path: str | Path, entries: Sequence[ItemOutcomes]) -> Path:
    """Write `entries` atomically to `path` (a run dir's `outcomes.safetensors`)."""
    write_bytes(path, to_bytes(entries))
    return Path(path)


def read_outcomes(path: str | Path) -> list[ItemOutcomes]:
    """The entries of an outcomes file; a UserError naming the file when it is not one."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as handle:  # the header: 8-byte length + JSON (with metadata)
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        manifest = json.loads(header["__metadata__"]["dcbench_outcomes"])["entries"]
        entries = []
        for i, item in enumerate(manifest):
            arrays = {name: tensors[f"{i}/{name}"] for name in KIND_FIELDS[item["kind"]]}
            entries.append(ItemOutcomes(item["split"], item["layer"], item["metric"],
                                        item["kind"], item["listing"], arrays, item["seed"],
                                        item.get("dataset"), item.get("model_sha256")))
        return entries
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a dcbench per-item outcomes file ({err})") from err
