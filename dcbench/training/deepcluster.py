"""The DeepCluster loop (thesis Algorithms 1 and 2; deepcluster-official.md section 2).

Each epoch: embed the images (center crops, eval mode, fc7 before its ReLU), PCA-whiten,
cluster (k-means or PIC, rank 0), broadcast the pseudo-labels, re-initialise the top layer,
train one pass sampled uniformly over pseudo-labels, log, and commit a resumable state.
Everything random in epoch e is seeded from (seed, e, purpose), so a run resumed from the
state of epoch e-1 replays epoch e exactly (bit-identical on CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from dcbench.clustering import diagnostics
from dcbench.clustering.backend import resolve_backend
from dcbench.clustering.kmeans import derived_seed
from dcbench.core import config as cfg
from dcbench.core.devices import resolve_device
from dcbench.core.distributed import (
    DistInfo,
    barrier,
    broadcast_array,
    gather_varying,
    init_from_env,
    shard,
    shutdown,
    sync_buffers,
)
from dcbench.core.errors import UserError
from dcbench.core.faults import inject_fault
from dcbench.core.files import append_line
from dcbench.core.liveness import record_process
from dcbench.core.provenance import code_revision, config_hash, device_name, versions
from dcbench.core.trackers import open_tracker
from dcbench.core.tracking import Tracker, TrackingOptions, activated
from dcbench.core.version import __version__
from dcbench.data.folders import ImageFolderDataset, require_decodable
from dcbench.data.gpu_decode import BatchDecoder, DecodingLoader, EncodedImages
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import image_loader, resolve_input_pipeline
from dcbench.data.samplers import DistributedUniformLabelSampler
from dcbench.data.transforms import center_crop, deepcluster_train
from dcbench.models import create_backbone
from dcbench.models.model_card import render_model_card
from dcbench.training.cluster_step import (
    cluster_features,
    cluster_on_device,
    cluster_sharded,
    diagnostic_rows,
    gather_selected,
    label_diagnostics,
)
from dcbench.training.config import TrainConfig
from dcbench.training.ddp import wrap_trunk
from dcbench.training.embeddings import compact_rows_, embed_on_device, gather_to_main
from dcbench.training.live import SECTION, report_epoch
from dcbench.training.precision import configure_numerics, memory_format, resolve_precision
from dcbench.training.rundir import RunDir
from dcbench.training.train_pass import PassSettings, train_pass

# purposes of derived seeds (never reuse a number: it would correlate two random streams)
SEED_SUBSET, SEED_CLUSTER, SEED_TOP, SEED_SAMPLER, SEED_TORCH, SEED_LOADER, SEED_DIAG, SEED_SGT = (
    range(8)
)
# keys that may change on --resume (they do not change the numbers of the run)
RESUMABLE_KEYS = {"epochs", "workers", "progress", "device", "image_every"}


def _bars_on(config: TrainConfig, info: DistInfo) -> bool:
    """Bars on rank 0 when asked (`progress`) or on a terminal; `DCBENCH_PROGRESS=0` (set by
    `dcbench train --no-progress`) turns them off everywhere."""
    if os.environ.get("DCBENCH_PROGRESS", "") == "0":
        return False
    return info.is_main and (config.progress or sys.stderr.isatty())


def _bar(config: TrainConfig, info: DistInfo, total: int, desc: str) -> tqdm:
    enabled = _bars_on(config, info)
    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


def _check_resume(run: RunDir, config: TrainConfig, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume it with different settings."""
    run.check_target(resume)
    if not run.is_run() or not run.has_finished_epoch():
        return  # a new folder, or a run that never finished an epoch: (re)start it
    if not resume:
        raise UserError(f"{run.root} already holds a run; pass --resume or choose a new --out")
    # a key added since the run started counts as its default (the behaviour it ran with)
    saved = {**yaml.safe_load(cfg.dump_yaml(TrainConfig())), **cfg.load_yaml(run.config)}
    now = yaml.safe_load(cfg.dump_yaml(config))
    changed = sorted(k for k in now if k not in RESUMABLE_KEYS and saved.get(k) != now[k])
    if changed:
        raise UserError(f"cannot resume {run.root} with different settings: {', '.join(changed)}",
                        detail="  only " + ", ".join(sorted(RESUMABLE_KEYS)) + " may change")


def model_card(config: TrainConfig, record: dict[str, Any] | None,
               backbone_config: dict[str, Any], data_dir: Path) -> str:
    """The trained model's card, from the one card builder (`dcbench hub card` refreshes it
    with evaluation results from the store)."""

    record = record or {}  # fixed key order: a record read back from log.jsonl is sorted
    last = {k: record[k] for k in ("epoch", "train_loss", "clustering_loss", "nmi_prev",
                                   "nmi_labels", "n_clusters", "ratio_edge_intra_class")
            if k in record}
    training = {**cfg.to_dict(config), "data": str(data_dir), "last_epoch": last}
    provenance = {"trained_by": f"dcbench {__version__} train", "code_revision": code_revision()}
    name = f"deepcluster-{config.arch}-{'sobel' if config.sobel else 'rgb'}-{config.clustering}"
    return render_model_card(backbone_config, name=name, provenance=provenance,
                             training=training)


def train(config: TrainConfig, data_dir: str | Path, out_dir: str | Path,
          resume: bool = False, tracking: TrackingOptions | None = None) -> dict[str, Any]:
    """Run (or resume) DeepCluster training; returns the last epoch's log record. With
    `tracking`, rank 0 reports each epoch to TensorBoard / W&B (`training.live`)."""
    config.validate()
    info = init_from_env("cuda" if config.device.startswith("cuda") or (
        config.device == "auto" and torch.cuda.is_available()) else "cpu")
    try:
        with contextlib.ExitStack() as closing:  # the trackers close with the run
            return _train(config, Path(data_dir), RunDir(out_dir), resume, info,
                          (tracking, closing))
    finally:
        shutdown(info)


def _train(config: TrainConfig, data_dir: Path, run: RunDir, resume: bool,
           info: DistInfo, tracking: tuple[TrackingOptions | None, contextlib.ExitStack]
           ) -> dict[str, Any]:
    device = resolve_device(config.device, info.local_rank)
    precision = resolve_precision(config.precision, device)
    numerics = configure_numerics(device, precision)  # cudnn.benchmark, explicit TF32
    backend = resolve_backend(config.clustering_backend, device)
    sharded = info.active and backend.startswith("torch")  # faiss: gather to rank 0
    backbone = create_backbone(config.model_config(), seed=config.seed).to(device)
    mc = backbone.config
    size = config.input_size or int(mc["input_size"])
    resize = config.resize or round(size * 256 / 224)
    pipeline = resolve_input_pipeline(config.input_pipeline, device)
    on_device = pipeline == "gpu"
    if on_device:  # workers read bytes; decode + crops on the device (data.gpu_decode)
        cluster_set = train_set = EncodedImages(ImageFolderDataset(data_dir))
    else:
        cluster_set = ImageFolderDataset(data_dir, center_crop(size, resize, mc["mean"],
                                                               mc["std"]))
        train_set = ImageFolderDataset(data_dir, deepcluster_train(
            size, tuple(config.crop_scale), tuple(config.crop_ratio), config.hflip,
            mc["mean"], mc["std"]))
    center_decoder = BatchDecoder(device, size, mc["mean"], mc["std"], mode="center",
                                  resize=resize) if on_device else None
    n_total, targets = len(cluster_set), cluster_set.targets
    require_decodable(getattr(cluster_set, "base", cluster_set).samples, data_dir)
    n_used = min(config.subset_size or n_total, n_total)
    if config.clustering == "kmeans" and config.k > n_used:
        raise UserError(f"k={config.k} exceeds the {n_used} images clustered per epoch")
    if config.pca_dim > backbone.embedding_dim:
        raise UserError(f"pca_dim={config.pca_dim} exceeds the {backbone.embedding_dim}-d "
                        f"{config.arch} embedding; choose pca_dim <= {backbone.embedding_dim}")
    _check_resume(run, config, resume)
    barrier(info)  # every rank has checked the run dir before rank 0 writes into it
    body_opt = torch.optim.SGD(list(backbone.trunk_parameters()), lr=config.lr,
                               momentum=config.momentum, weight_decay=config.weight_decay)
    start, prev = 0, None
    if resume and run.has_state():
        state = run.load_checked_state(backbone, n_total)
        backbone.reset_top_layer(int(state["top_layer_out"]))
        backbone.load_state_dict(state["model"])
        body_opt.load_state_dict(state["optimizer"])
        start, prev = int(state["epoch"]), state["prev_labels"].numpy()
        if start > config.epochs:  # a tampered state, or fewer epochs asked than were done
            raise UserError(f"resume state {run.state} says {start} epochs are done, more "
                            f"than the {config.epochs} asked; pass --epochs >= {start}")
    if info.is_main:
        run.begin(cfg.dump_yaml(config), {**versions(), "code_revision": code_revision(),
                                          "device": device_name(str(device)),
                                          "world_size": info.world_size}, start)
        record_process(run.root, "train", tracking[0] and tracking[0].command)
    tracker = tracking[1].enter_context(activated(open_tracker(
        run.root, tracking[0], config={**cfg.to_dict(config), "versions": versions()},
        name=run.root.resolve().name) if info.is_main else Tracker()))
    tracker.start_section(SECTION, start)  # a resumed run: steps from `start` on, once
    barrier(info)
    backbone.to(memory_format=memory_format(device, precision))
    report = DecodeReport()
    settings = PassSettings(lr=config.lr, weight_decay=config.weight_decay, sgt=config.sgt,
                            precision=precision, trunk_ddp=wrap_trunk(backbone, info, device))
    record: dict[str, Any] | None = (run.read_log() or [None])[-1] if info.is_main else None
    run_bar = tqdm(total=config.epochs, initial=start, desc="training", unit="epoch",
                   disable=not _bars_on(config, info),
                   file=sys.stderr, dynamic_ncols=True)  # the whole run, with its ETA
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        # Algorithm 2: a fresh random subset each epoch (Algorithm 1 when subset_size = 0)
        if n_used < n_total:
            rng = np.random.default_rng(derived_seed(config.seed, epoch, SEED_SUBSET))
            subset = np.sort(rng.choice(n_total, n_used, replace=False))
        else:
            subset = np.arange(n_total)
        # one network on every rank: BatchNorm running statistics drift apart during a pass
        # (each rank's own batches); rank 0's are the ones saved, so a resumed run and an
        # uninterrupted one embed with the same statistics
        sync_buffers(backbone, info)
        with _bar(config, info, len(subset), f"epoch {epoch} features") as bar:
            feats, ok_t = embed_on_device(backbone, cluster_set, subset,
                                          batch_size=config.batch_size, device=device,
                                          workers=config.workers, info=info, report=report,
                                          progress=bar.update, precision=precision,
                                          decoder=center_decoder, pipeline=pipeline)
        t1 = time.perf_counter()
        labels = np.full(n_total, -1, dtype=np.int64)
        rec: dict[str, Any] = {"epoch": epoch, "clustering_backend": backend,
                               "input_pipeline": pipeline, "precision": precision, **numerics}
        seed = derived_seed(config.seed, epoch, SEED_CLUSTER)
        resplit: dict[str, int] = {}  # k-means: empty clusters re-split (thesis 3.2)
        if sharded:
            start_row, stop_row = shard(len(subset), info)
            mine = subset[start_row:stop_row][ok_t.cpu().numpy()]
            sub_labels, loss, reduced_local = cluster_sharded(compact_rows_(feats, ok_t), config,
                                                              seed, info, device, resplit)
            used = gather_varying(torch.from_numpy(mine).to(device), info).cpu().numpy()
            labels[used] = sub_labels
            rows = diagnostic_rows(used, targets, config, epoch, SEED_DIAG)
            picked = gather_selected(reduced_local, rows, info) if rows is not None else None
        else:  # faiss under torchrun: the embeddings go to rank 0 only
            feats = gather_to_main(feats, len(subset), info)
            ok_t = gather_to_main(ok_t.to(torch.uint8), len(subset), info)
        if info.is_main:
            inject_fault("cluster", epoch)
            if not sharded:
                assert feats is not None and ok_t is not None
                used = subset[ok_t.bool().cpu().numpy()]
                sub_labels, loss, picked, rows = _cluster_main(
                    compact_rows_(feats, ok_t.bool()), used, targets, config, epoch, seed,
                    backend, resplit)
                labels[used] = sub_labels
            rec.update(clustering_s=time.perf_counter() - t1, clustering_loss=loss,
                       **diagnostics.cluster_size_stats(sub_labels))
            if config.clustering == "kmeans":
                rec["n_empty_resplit"] = int(resplit.get("empty_resplit", 0))
            rec["nmi_prev"] = None if prev is None else diagnostics.assignment_nmi(
                labels, prev, config.nmi_average)
            rec.update(label_diagnostics(picked, rows, used, labels, targets, config))
        feats = ok_t = None  # free the embeddings' device memory before the training pass
        if not sharded:
            labels = broadcast_array(labels if info.is_main else None, info, device)
        n_clusters = int(labels.max()) + 1
        top_gen = torch.Generator().manual_seed(derived_seed(config.seed, epoch, SEED_TOP))
        backbone.reset_top_layer(n_clusters, top_gen)
        n_draws = int(config.reassign * int((labels >= 0).sum()))
        sampler = DistributedUniformLabelSampler(
            labels, n_draws, seed=derived_seed(config.seed, SEED_SAMPLER),
            rank=info.rank, world_size=info.world_size, rule=config.sampler)
        sampler.set_epoch(epoch)
        torch.manual_seed(derived_seed(config.seed, epoch, SEED_TORCH))
        loader = _train_loader(train_set, config, epoch, sampler, info, device, mc,
                               pipeline)
        t2 = time.perf_counter()
        sgt_gen = torch.Generator().manual_seed(derived_seed(config.seed, epoch, SEED_SGT))
        with _bar(config, info, len(sampler), f"epoch {epoch} train") as bar:
            train_loss = train_pass(
                backbone, loader, labels, body_opt, settings, device, info, sgt_gen, report,
                progress=lambda n, loss, b=bar: (b.update(n), loss is not None
                                                 and b.set_postfix(loss=f"{loss:.3f}")))
        if info.is_main:
            rec.update(features_s=t1 - t0, train_s=time.perf_counter() - t2,
                       train_loss=train_loss, n_images=int(len(subset)),
                       n_bad_images=report.count, n_draws=n_draws, time=time.time(),
                       epoch_s=time.perf_counter() - t0)
            run.save_assignment(epoch, labels)
            inject_fault("save", epoch)
            append_line(run.log, json.dumps(rec, sort_keys=True))
            # reported before the commit: a kill in between re-runs the epoch, whose steps
            # the resumed run's writer purges (each step appears once)
            report_epoch(tracker, rec, labels, lr=config.lr, model=backbone,
                         images=tracking[0] and tracking[0].images, image_every=config.image_every)
            state = {"epoch": epoch + 1, "model": backbone.state_dict(),
                     "optimizer": body_opt.state_dict(), "prev_labels": torch.from_numpy(labels),
                     "top_layer_out": n_clusters, "config_hash": config_hash(cfg.to_dict(config))}
            run.commit(backbone, state, {"deepcluster_epoch": epoch + 1})
            print(_summary_line(rec), file=sys.stderr, flush=True)
            record = rec
        prev = labels
        run_bar.update(1)
        barrier(info)
    run_bar.close()
    if info.is_main:
        # The published model has no clustering head: its k outputs are the last epoch's
        # pseudo-labels, re-drawn every epoch, and the official evaluation code drops it too.
        # So `model(x)` of a trained model is its embedding (width `num_features`);
        # checkpoints/latest keeps the head for --resume.
        backbone.remove_top_layer()
        run.write_final(backbone, model_card(config, record, backbone.config, data_dir),
                        {"deepcluster_epochs": config.epochs, "trained_by": "dcbench train"})
        if report.count:
            print(report.summary(), file=sys.stderr)
    return record or {}


def _cluster_main(x: torch.Tensor, used: np.ndarray, targets: np.ndarray, config: TrainConfig,
                  epoch: int, seed: int, backend: str, stats: dict[str, int] | None = None
                  ) -> tuple[np.ndarray, float, Any, np.ndarray | None]:
    """Rank 0's clustering of the valid rows `x` (on the device): (labels, loss, the reduced
    rows the label diagnostics use, their positions). A torch backend keeps everything on
    the device; faiss gets the rows on the host (as numpy, shared with `x` on a CPU)."""
    rows = diagnostic_rows(used, targets, config, epoch, SEED_DIAG)
    if backend.startswith("torch"):
        sub_labels, loss, reduced_t = cluster_on_device(x, config, seed, backend, stats)
        picked: Any = (reduced_t[torch.from_numpy(rows).to(reduced_t.device)]
                       if rows is not None else None)
        return sub_labels, loss, picked, rows
    sub_labels, loss, reduced = cluster_features(x.float().cpu().numpy(), config, seed,
                                                 backend, stats)
    return sub_labels, loss, (reduced[rows] if rows is not None else None), rows


def _train_loader(train_set: Any, config: TrainConfig, epoch: int, sampler: Any,
                  info: DistInfo, device: torch.device, mc: dict[str, Any],
                  pipeline: str) -> Any:
    """The training pass's loader: PIL crops in workers (`cpu`), DALI with the same crops
    (`dali`), or bytes decoded on the device with crops drawn from a generator seeded by
    (seed, epoch, rank) (`gpu`)."""
    batch = max(1, config.batch_size // info.world_size)
    loader_gen = torch.Generator().manual_seed(derived_seed(config.seed, epoch, SEED_LOADER))
    if pipeline != "gpu":
        return image_loader(train_set, batch, pipeline=pipeline, device=device, sampler=sampler,
                            workers=config.workers, generator=loader_gen,
                            pin_memory=device.type == "cuda")
    size = config.input_size or int(mc["input_size"])
    crops = torch.Generator().manual_seed(derived_seed(config.seed, epoch, SEED_LOADER, info.rank))
    decoder = BatchDecoder(device, size, mc["mean"], mc["std"], mode="train",
                           scale=tuple(config.crop_scale), ratio=tuple(config.crop_ratio),
                           flip=config.hflip, generator=crops)
    return DecodingLoader(train_set, batch, decoder, sampler=sampler, workers=config.workers,
                          generator=loader_gen)


def _summary_line(rec: dict[str, Any]) -> str:
    def fmt(key: str, spec: str = ".3f") -> str:
        value = rec.get(key)
        return "-" if value is None else format(value, spec)

    return (f"epoch {rec['epoch']}: clusters {rec.get('n_clusters')} "
            f"(max share {fmt('largest_share', '.2f')}), clustering {fmt('clustering_s', '.1f')}s "
            f"loss {fmt('clustering_loss', '.4g')}, train loss {fmt('train_loss')}, "
            f"NMI prev {fmt('nmi_prev')}, NMI labels {fmt('nmi_labels')}, "
            f"ratio edge intra-class {fmt('ratio_edge_intra_class')}")


__all__ = ["RESUMABLE_KEYS", "cluster_features", "model_card", "train"]
