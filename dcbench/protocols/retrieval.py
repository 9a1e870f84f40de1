"""`retrieval`: Oxford5k / Paris6k instance retrieval with R-MAC (ECCV 2018 Table 5).

Faithful to the official `eval_retrieval.py` (DeepCluster repository, after Gordo et al.'s
deep_retrieval and Tolias et al.'s R-MAC):
- images resized so the longest side is `image_size` (1024; PIL bilinear), ImageNet
  normalisation; queries cropped to their box after the resize;
- the map is the last conv block with Sobel applied when the model has it: tap `conv5`
  (VGG16: `features` without the last max-pool; AlexNet: conv5 after its ReLU; ResNet: res5);
- L = 3 R-MAC levels with 40% overlap; each region max-pooled and L2-normalised;
  PCA-whitening to 512 dims learned on the region descriptors of the *other* dataset (Paris
  for Oxford and vice versa; up to 10k images; eigenvalues clamped at 1e-5 of the largest);
  L2 -> sum over regions -> L2; dot-product ranking of the whole database;
- AP per query by the Oxford `compute_ap` rule (good + ok positive, junk skipped, trapezoid
  over recall), `map` = mean over the 55 queries; the 20 corrupt Paris images are skipped
  and reported. A query whose image cannot be decoded, or with no good/ok image in the
  decodable database, is skipped and reported (`skipped_queries` in metrics.json), never
  scored (the published sets have none).
Differs: the AP is computed in Python (tested against the C++ rule) rather than by the
binary; whitening keeps min(512, channels) dims (AlexNet conv5 has 256); regions of zero
size on tiny maps are left out (the official code would fail); crops smaller than the
network's minimum input are upsized. Dialects: `dc2018` (the official code under today's
NumPy: the region count chosen in float64); `faithful-2018` (`region_grid=float32`: the
2018 NumPy 1.x computed that choice in float32, which changes it on ~0.3% of map shapes).
`data_dir` holds `oxford5k/` and `paris6k/` (also accepted: `oxford`, `paris`), each in the
released layout (see `dcbench.data.retrieval`). Region descriptors are saved in shards under
`work_dir` and reused on `--resume`. Rows (percent): dataset `oxford5k` / `paris6k`, split
`test`, layer `rmac`, metric `map` and one `ap_<query>` per query. Per-item outcomes: the
per-query APs behind each dataset's `map` (a `mean` entry naming its dataset, keyed by the
scored queries + the decodable database), so `compare` resamples queries.
Schedules: `published`; `smoke` (built-in synthetic set): longest side 160 px.
`input_pipeline: dali` decodes, resizes and box-crops with DALI (the same sizes and boxes,
pixels within JPEG-decoder tolerance; its shards are kept in `<name>-dali/`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torchvision.transforms import v2

from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, bounded
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.core.outcomes import ItemOutcomes
from dcbench.data.pipeline import effective_pipeline, resolve_input_pipeline
from dcbench.data.retrieval import RetrievalImages, RetrievalSet
from dcbench.engine.resumable import status as log
from dcbench.protocols.base import (
    CONV_LAYERS,
    Protocol,
    ProtocolConfig,
    Result,
    register_protocol,
    results_from_metrics,
    run_info,
)
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.rmac.extract import extract_regions
from dcbench.protocols.rmac.oxford_ap import retrieval_aps
from dcbench.protocols.rmac.regions import RegionGrid, aggregate
from dcbench.protocols.rmac.whitening import as_tensors, fit_whitening

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

FOLDERS = {"oxford5k": ("oxford5k", "oxford", "oxbuild"), "paris6k": ("paris6k", "paris")}
OTHER = {"oxford5k": "paris6k", "paris6k": "oxford5k"}
# R-MAC level l has regions of width 2 min(W, H) / (l + 1): past 10 levels they shrink to a
# cell or two of conv5 at the published 1024 px, and the region count grows as l^3.
MAX_RMAC_LEVELS = 10


@dataclasses.dataclass
class RetrievalConfig(ProtocolConfig):
    """R-MAC retrieval; defaults = the official `eval_retrieval.py` settings."""

    datasets: list[str] = bounded(default_factory=lambda: ["oxford5k", "paris6k"],
                                  choices=tuple(FOLDERS), min_len=1)
    layer: str = bounded("conv5", choices=CONV_LAYERS)
    image_size: int = bounded(1024, ge=32, le=MAX_IMAGE_SIDE)
    levels: int = bounded(3, ge=1, le=MAX_RMAC_LEVELS)
    region_grid: RegionGrid = "float64"  # float32: the 2018 NumPy's region-count arithmetic
    pca_dims: int = bounded(512, ge=1, le=MAX_COUNT)
    pca_source: Literal["other", "self"] = "other"
    pca_max_images: int = bounded(10000, ge=1, le=MAX_COUNT)
    eps_ratio: float = bounded(1e-5, ge=0, lt=1)
    shard_size: int = bounded(256, ge=1, le=MAX_COUNT)


def find_folder(data_dir: Path, dataset: str) -> Path:
    """The sub-folder of `data_dir` holding `dataset` (or `data_dir` itself if it is named so)."""
    if dataset not in FOLDERS:
        raise UserError(f"unknown retrieval dataset {dataset!r}; choose from {list(FOLDERS)}")
    if data_dir.name.lower() in FOLDERS[dataset]:
        return data_dir
    for name in FOLDERS[dataset]:
        for candidate in (data_dir / name, data_dir / name.capitalize()):
            if candidate.is_dir():
                return candidate
    raise UserError(f"{data_dir} has no {dataset} folder (tried {', '.join(FOLDERS[dataset])})")


def rmac_map(db: list[torch.Tensor | None], queries: list[torch.Tensor | None],
             whitening: tuple[np.ndarray, np.ndarray], names: list[str],
             sets: RetrievalSet) -> tuple[dict[str, float], dict[str, str]]:
    """Pure core: region descriptors + whitening -> per-query AP and mAP (fractions), and the
    queries left out with why: an undecodable query image (no descriptor) or no positive
    (good + ok) among the decodable database images. The Oxford/Paris protocol has none;
    scoring them would be a number about nothing (a zero descriptor, or AP 0)."""
    mean, projection = as_tensors(*whitening)
    kept = [i for i, d in enumerate(db) if d is not None]
    kept_names = [names[i] for i in kept]
    skipped: dict[str, str] = {}
    for q, desc in zip(sets.queries, queries, strict=True):
        if desc is None:
            skipped[q.name] = "query image could not be decoded"
        elif not q.positives & set(kept_names):
            skipped[q.name] = "no good or ok image in the decodable database"
    scored = [i for i, q in enumerate(sets.queries) if q.name not in skipped]
    if not scored:
        raise UserError(f"no retrieval query can be scored ({len(skipped)} skipped: "
                        f"{'; '.join(f'{k}: {v}' for k, v in list(skipped.items())[:3])})")
    database = torch.stack([aggregate(db[i], mean, projection) for i in kept]).numpy()
    query = np.stack([aggregate(queries[i], mean, projection).numpy() for i in scored])
    chosen = [sets.queries[i] for i in scored]
    aps = retrieval_aps(query @ database.T, kept_names, [q.positives for q in chosen],
                        [q.junk for q in chosen])
    metrics = {"map": float(aps.mean())}
    metrics.update({f"ap_{q.name}": float(ap) for q, ap in zip(chosen, aps, strict=True)})
    return metrics, skipped


def query_outcomes(layer: str, dataset: str, sets: RetrievalSet, metrics: dict[str, float],
                   skipped: dict[str, str], db: list) -> ItemOutcomes:
    """The per-query APs (fractions, query order) behind `map` of one dataset, a `mean`
    entry keyed by the scored queries' and the decodable database images' files."""
    scored = [q.name for q in sets.queries if q.name not in skipped]
    files = [str(path) for q, path in zip(sets.queries, sets.query_paths, strict=True)
             if q.name not in skipped]  # a query image may be a database image too
    files += [str(path) for path, r in zip(sets.paths, db, strict=True) if r is not None]
    listing = dataset_fingerprint(files, [f"query {name}" for name in scored]
                                  + ["database"] * (len(files) - len(scored)))
    values = np.array([metrics[f"ap_{name}"] for name in scored], dtype=np.float64)
    return ItemOutcomes("test", layer, "map", "mean", listing, {"values": values},
                        dataset=dataset)


def _sets(data_dir: str | Path, config: RetrievalConfig
          ) -> tuple[dict[str, str], dict[str, RetrievalSet]]:
    """(dataset -> the dataset whitening it, dataset -> its `RetrievalSet`) of a run,
    refused when a size is out of range or a folder is missing."""
    if config.image_size < 32 or config.levels < 1 or config.pca_dims < 1:
        raise UserError("retrieval needs image_size >= 32, levels >= 1 and pca_dims >= 1")
    root = Path(data_dir).expanduser()
    sources = {d: OTHER[d] if config.pca_source == "other" else d for d in config.datasets}
    sets = {d: RetrievalSet(find_folder(root, d))  # sorted: the same first refusal always
            for d in sorted({*config.datasets, *sources.values()})}
    return sources, sets


@register_protocol("retrieval")
class Retrieval(Protocol):
    """Oxford5k / Paris6k R-MAC retrieval mAP on the last conv block (ECCV Table 5)."""

    Config = RetrievalConfig
    DIALECTS = {"dc2018": {}, "faithful-2018": {"region_grid": "float32"}}
    SCHEDULES = {"published": {}, "smoke": {"image_size": 160}}
    summary = "Oxford5k/Paris6k instance retrieval: R-MAC (L=3, 1024 px), PCA-whitened, mAP"

    def check_data(self, data_dir: str | Path, config: RetrievalConfig) -> None:
        """The sizes, and every dataset folder the run reads (its own and the whitening's),
        with its ground truth."""
        _sets(data_dir, config)

    def run(self, model: Backbone, data_dir: str | Path, config: RetrievalConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Describe both datasets' images and queries, whiten, rank, score (Oxford AP)."""
        sources, sets = _sets(data_dir, config)
        model.check_layers([config.layer])
        model.to(device).eval()
        pipeline = resolve_input_pipeline(config.input_pipeline, device, gpu_path=False)
        transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize(model.config["mean"], model.config["std"])])

        def featurize(images: torch.Tensor) -> torch.Tensor:
            return model.forward_features(images, [config.layer])[config.layer]

        def describe(name: str, paths: list[Path], boxes: list | None) -> list:
            images = RetrievalImages(paths, config.image_size, transform, boxes,
                                     min_side=model.MIN_INPUT_SIZE)
            # DALI's pixels differ slightly from PIL's: their shards are kept apart
            suffix = "-dali" if effective_pipeline(images, pipeline, device) == "dali" else ""
            shard_dir = work_dir / (name + suffix) if work_dir is not None else None
            return extract_regions(featurize, images, levels=config.levels,
                                   grid=config.region_grid,
                                   shard_dir=shard_dir, shard_size=config.shard_size,
                                   device=device, progress=progress, desc=name,
                                   pipeline=pipeline)

        db = {d: describe(f"{d}-db", s.paths, None) for d, s in sorted(sets.items())}
        for d, regions in db.items():
            if all(r is None for r in regions):
                raise UserError(f"retrieval: none of the {len(regions)} database images of {d} "
                                f"({sets[d].root}) could be decoded")
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset="retrieval")
        layer = "rmac" if config.layer == "conv5" else f"rmac-{config.layer}"
        rows: list[Result] = []
        summary: dict[str, dict] = {}
        for d in config.datasets:
            current = sets[d]
            if current.blacklisted:
                log(f"{self.name}: skipped {len(current.blacklisted)} known-corrupt images of "
                    f"{d}: {', '.join(current.blacklisted)}")
            failed = [current.names[i] for i, r in enumerate(db[d]) if r is None]
            if failed:
                log(f"{self.name}: {len(failed)} images of {d} could not be decoded and are "
                    f"left out: {', '.join(failed[:10])}")
            queries = describe(f"{d}-queries", current.query_paths,
                               [q.box for q in current.queries])
            train = [r for r in db[sources[d]][: config.pca_max_images] if r is not None]
            mean, projection, kept = fit_whitening(torch.cat(train).numpy(), config.pca_dims,
                                                   config.eps_ratio)
            metrics, skipped = rmac_map(db[d], queries, (mean, projection), current.names,
                                        current)
            if skipped:
                log(f"{self.name}: {len(skipped)} queries of {d} skipped (not scored): "
                    + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
            self.keep_outcomes([query_outcomes(layer, d, current, metrics, skipped, db[d])])
            percent = {k: 100.0 * v for k, v in metrics.items()}
            rows += results_from_metrics(dataclasses.replace(info, dataset=d), percent,
                                         split="test", layer=layer)
            summary[d] = {"map": percent["map"], "pca_source": sources[d],
                          "pca_energy_kept": kept, "skipped_corrupt": current.blacklisted,
                          "undecodable": failed, "database_size": len(current.names) - len(failed),
                          "skipped_queries": skipped,
                          "queries_scored": len(current.queries) - len(skipped)}
            log(f"{self.name} {d}: mAP {percent['map']:.2f} over "
                f"{len(current.queries) - len(skipped)} queries "
                f"(whitening from {sources[d]}, {100 * kept:.1f}% energy)")
        if work_dir is not None:
            write_json(work_dir / "metrics.json", summary)
        return rows
