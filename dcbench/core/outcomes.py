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
- `detection`: `npos` int32 (N, C), each image's non-difficult boxes per class, plus one
  record per ranked detection that the devkit counts (TP or FP; a hit on a difficult box is
  left out, as the devkit ignores it): `det_image` int32 (its image's row), `det_class`
  int16, `det_score` float32, `det_tp` int8 (1 TP, 0 FP), in the evaluation's ranking (by
  class, then rank). Matching only involves one image, so the records are fixed under image
  resampling; metric = 100 * mean over classes of the AP recomputed from them, by the rule
  in `options` (`ap_method` 11point | all, `ap_thresholds` exact | devkit).

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
    "detection": ("npos", "det_image", "det_class", "det_score", "det_tp"),
}
# per-record arrays (one row per record, not per item) of the kinds that have them
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "detection": ("det_image", "det_class", "det_score", "det_tp"),
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
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)  # metric rule
    dataset: str | None = None
    model_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KIND_FIELDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}; valid: {list(KIND_FIELDS)}")
        missing = set(KIND_FIELDS[self.kind]) - set(self.arrays)
        if missing:
            raise ValueError(f"{self.kind} outcomes need arrays {sorted(missing)}")
        records = RECORD_FIELDS.get(self.kind, ())
        sizes = {len(np.asarray(a)) for k, a in self.arrays.items() if k not in records}
        if len(sizes) != 1:
            raise ValueError("every outcome array must have one row per item")
        if records:
            _check_records(self.arrays, records, self.n_items)
        if self.kind == "detection":
            _check_detections(self.arrays)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(
                self.options).items()):
            raise ValueError("outcome options must map names to strings")

    @property
    def n_items(self) -> int:
        """Number of test items."""
        records = RECORD_FIELDS.get(self.kind, ())
        return len(next(a for k, a in self.arrays.items() if k not in records))

    def key(self) -> tuple[str, str, str]:
        """(split, layer, metric): which result value these items make."""
        return self.split, self.layer, self.metric


def _check_records(arrays: Mapping[str, np.ndarray], fields: Sequence[str],
                   n_items: int) -> None:
    """Record arrays: one length, and each record's item row (`det_image`) in range."""
    if len({len(np.asarray(arrays[name])) for name in fields}) != 1:
        raise ValueError("every record array must have one row per record")
    rows = np.asarray(arrays[fields[0]])
    if rows.size and (rows.min() < 0 or rows.max() >= n_items):
        raise ValueError(f"record item rows must be in [0, {n_items})")


def _check_detections(arrays: Mapping[str, np.ndarray]) -> None:
    """`npos` (N, C) counts, records of a class in [0, C) flagged 0 (FP) or 1 (TP)."""
    npos = np.asarray(arrays["npos"])
    if npos.ndim != 2 or (npos.size and npos.min() < 0):
        raise ValueError("detection npos must be (images, classes) counts")
    classes, tp = np.asarray(arrays["det_class"]), np.asarray(arrays["det_tp"])
    if classes.size and (classes.min() < 0 or classes.max() >= npos.shape[1]):
        raise ValueError(f"detection classes must be in [0, {npos.shape[1]})")
    if not np.isin(tp, (0, 1)).all():
        raise ValueError("detection det_tp must be 0 (FP) or 1 (TP)")


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
        if entry.options:  # only kinds with a metric rule carry one (older bytes unchanged)
            manifest[-1]["options"] = dict(entry.options)
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
                                        dict(item.get("options", {})), item.get("dataset"),
                                        item.get("model_sha256")))
        return entries
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a dcbench per-item outcomes file ({err})") from err
