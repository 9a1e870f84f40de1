"""`low-shot` (thesis Figure 5.1): the whole network fine-tuned on n labelled images per class,
from the checkpoint vs from random init, over 10 seeded draws; top-1 with 10-crop, mean/std.

Honest selection: a stratified `heldout_fraction` of the training set is set aside first;
the n-per-class draws come from the rest. The lr and the number of iterations are chosen per
(n, init) on the held-out part using draw 0, then every draw is trained with them and tested
on val once. The draws (dataset positions and file paths) are saved to
`work_dir/low_shot_indices.json`; pass `indices_file=PATH` to reuse someone else's draws.
The thesis tuned by k-fold cross-validation and did not publish the schedule: the
iteration budget and lr candidates here are dcbench's defaults.
Both inits are fixed across draws (the random one is seeded with `seed`), so the spread over
draws measures the choice of labelled images. Rows: layer `all/<n>-shot` (whole network
trained), one `top1` per draw (seed = seed + d, the draw's seed) and `top1_mean` /
`top1_std` over draws; the random-init baseline is reported under its own model name
`random-<arch>` and the sha256 of its initial weights.
Images are read through `input_pipeline` (`data.pipeline`; `dali`: the same stream, crops,
flips and labels as the PIL path, pixels within JPEG-decoder tolerance). Per-item outcomes
(`draw_outcomes`): each draw's val top-1 hits behind its `top1` row and each image's hit
rate over the draws behind `top1_mean`, per init (named by its weights' sha256).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.core.outcomes import ItemOutcomes, correct_outcomes
from dcbench.core.state_files import read_json_state
from dcbench.core.sync_bn import BN_SYNC_CHOICES
from dcbench.data import transforms as T
from dcbench.engine.resumable import ResultJournal, status
from dcbench.models import create_backbone
from dcbench.protocols.base import (
    Protocol,
    ProtocolConfig,
    Result,
    register_protocol,
    results_from_metrics,
    run_info,
)
from dcbench.protocols.metrics import mean_std
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.probe.item_track import decode_hits, encode_hits
from dcbench.protocols.probe.network_finetune import (
    FinetuneSettings,
    finetune,
    top1,
    top1_hits,
)
from dcbench.protocols.probe.splits import (
    Sizes,
    load_splits,
    stratified_split,
    with_transform,
)

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

INITS = ("pretrained", "random")


@dataclasses.dataclass
class LowShotConfig(ProtocolConfig):
    """Shots per class, draws, inits, and the fine-tuning budget (lr candidates selected)."""

    shots: list[int] = bounded(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64], ge=1,
                               le=MAX_COUNT, min_len=1)
    draws: int = bounded(10, ge=1, le=100000)
    inits: list[str] = bounded(default_factory=lambda: list(INITS), choices=INITS, min_len=1)
    lrs: list[float] = bounded(default_factory=lambda: [0.01, 0.001], gt=0, le=10, min_len=1)
    weight_decay: float = bounded(1e-4, ge=0, le=1)
    momentum: float = bounded(0.9, ge=0, lt=1)
    iterations: int = bounded(5000, ge=1, le=MAX_COUNT)
    eval_every: int = bounded(500, ge=1, le=MAX_COUNT)
    batch_size: int = bounded(256, ge=1, le=MAX_COUNT)
    eval_batch_size: int = bounded(128, ge=1, le=MAX_COUNT)
    ten_crop: bool = True
    heldout_fraction: float = bounded(0.05, gt=0, lt=1)
    indices_file: str = ""
    eval_split: str = "val"
    # under torchrun: the trunk's BN statistics over the whole batch (`global`, what one
    # process computes) or each rank's slice (`rank`, before this key); core/sync_bn.py
    bn_sync: str = bounded("global", choices=BN_SYNC_CHOICES)

    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"bn_sync": "rank"}  # older run dirs
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"bn_sync": "global"}  # old rows stay current


def draw_low_shot(labels: np.ndarray, n: int, seed: int, pool: np.ndarray | None = None
                  ) -> np.ndarray:
    """Pure: n positions per class drawn without replacement from `pool` (default: all)."""
    labels = np.asarray(labels)
    pool = np.arange(labels.size) if pool is None else np.asarray(pool)
    rng = np.random.default_rng([int(seed), int(n)])
    picked = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        if members.size < n:
            raise ValueError(f"class {c} has {members.size} images, fewer than n={n}")
        picked.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(picked))


_NO_SHOT = ("no shot count in {shots} fits the training set: the smallest class is too small "
            "after the held-out split")


def make_draws(labels: np.ndarray, shots: list[int], draws: int, seed: int, pool: np.ndarray
               ) -> dict[int, list[np.ndarray]]:
    """All draws: for each feasible n, `draws` sets (draw d uses seed + d)."""
    return {n: [draw_low_shot(labels, n, seed + d, pool) for d in range(draws)]
            for n in feasible_shots(labels, shots, pool)}


def feasible_shots(labels: np.ndarray, shots: list[int], pool: np.ndarray) -> list[int]:
    """The shot counts n of `shots` every class of the pool can fill (n <= its smallest)."""
    smallest = int(np.bincount(labels[pool]).min()) if pool.size else 0
    return [n for n in shots if n <= smallest]


def summarize(per_draw: list[float]) -> dict[str, float]:
    """Pure: mean and std (ddof=1) of the per-draw top-1."""
    mean, std = mean_std(per_draw)
    return {"top1_mean": mean, "top1_std": std}


def draw_outcomes(layer: str, listing: str, model_sha256: str, seed: int,
                  per_draw: list[np.ndarray | None]) -> list[ItemOutcomes]:
    """The per-item outcomes of one (init, n): each draw's val top-1 hits behind its `top1`
    row (seed = seed + d) and, behind `top1_mean`, each image's hit rate over the draws (a
    `mean` entry: its mean is the mean of the draws' top-1, so a paired interval resamples
    the val images with the draws held fixed). A draw without recorded hits (a run resumed
    from a journal of an older version) has no entry and leaves `top1_mean` without one."""
    entries = [dataclasses.replace(correct_outcomes("val", layer, "top1", listing, hits,
                                                    seed + d), model_sha256=model_sha256)
               for d, hits in enumerate(per_draw) if hits is not None]
    if per_draw and all(h is not None for h in per_draw):
        rate = np.mean(np.stack(per_draw).astype(np.float64), axis=0)
        entries.append(ItemOutcomes("val", layer, "top1_mean", "mean", listing,
                                    {"values": rate}, model_sha256=model_sha256))
    return entries


def save_draws(path: Path, dataset: Any, heldout: np.ndarray, draws: dict[int, list[np.ndarray]]
               ) -> None:
    """Write the draws with file paths and a dataset fingerprint, so others can reuse them."""
    paths = dataset.paths
    write_json(path, {
        "dataset_fingerprint": dataset_fingerprint(paths, list(dataset.targets)),
        "heldout": heldout.tolist(),
        "draws": {str(n): [{"positions": d.tolist(), "files": [paths[i] for i in d]}
                           for d in sets] for n, sets in draws.items()},
    })


def load_draws(path: Path, dataset: Any) -> tuple[np.ndarray, dict[int, list[np.ndarray]]]:
    """Read saved draws, refusing them if the dataset changed since they were made."""
    data = read_json_state(path, "low-shot indices file",
                           keys={"dataset_fingerprint": str, "draws": dict},
                           hint="remove it to draw again")
    if data.get("dataset_fingerprint") != dataset_fingerprint(dataset.paths,
                                                              list(dataset.targets)):
        raise UserError(f"{path} was drawn from a different version of the training set")
    draws = {int(n): [np.asarray(d["positions"], dtype=np.int64) for d in sets]
             for n, sets in data["draws"].items()}
    return np.asarray(data["heldout"], dtype=np.int64), draws


@register_protocol("low-shot")
class LowShot(Protocol):
    """n images per class, whole network fine-tuned, checkpoint vs random init (Fig. 5.1)."""

    Config = LowShotConfig
    summary = "whole-network fine-tuning on n labels per class vs random init (Figure 5.1)"
    DIALECTS: dict[str, dict[str, Any]] = {"dc2018": {}}
    # smoke: a minute on the built-in data: 2 shot counts, 3 draws, 50 iterations, one lr,
    # center-crop testing instead of 10-crop.
    SCHEDULES: dict[str, dict[str, Any]] = {
        "published": {},
        "smoke": {"shots": [4, 16], "draws": 3, "lrs": [0.02], "iterations": 50,
                  "eval_every": 25, "batch_size": 32, "eval_batch_size": 64,
                  "heldout_fraction": 0.2, "ten_crop": False},
    }

    def check_data(self, data_dir: str | Path, config: LowShotConfig) -> None:
        """The settings, and a shot count every class can fill after the held-out split
        (the saved draws of `indices_file` instead when given)."""
        splits = self._splits(data_dir, config)
        if config.indices_file:
            load_draws(Path(config.indices_file), splits.train)
            return
        labels = np.asarray(splits.train.targets)
        pool_rel, _ = stratified_split(labels, config.heldout_fraction, config.seed)
        if not feasible_shots(labels, list(config.shots), pool_rel):
            raise UserError(_NO_SHOT.format(shots=config.shots))

    @staticmethod
    def _splits(data_dir: str | Path, config: LowShotConfig) -> Any:
        """The train/val splits, once the settings are checked."""
        bad = sorted(set(config.inits) - set(INITS))
        if bad or not config.inits:
            raise UserError(f"unknown low-shot init(s) {bad}; valid: {', '.join(INITS)}")
        if config.draws < 1 or config.iterations < 1 or config.eval_every < 1 or not config.lrs:
            raise UserError("low-shot needs draws, iterations, eval_every >= 1 and an lr")
        return load_splits(data_dir, config.eval_split)

    def run(self, model: Backbone, data_dir: str | Path, config: LowShotConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Select (lr, iterations) on held-out with draw 0, then fine-tune every draw."""
        splits = self._splits(data_dir, config)
        labels = splits.train.targets
        if config.indices_file:
            heldout, draws = load_draws(Path(config.indices_file), splits.train)
        else:
            pool_rel, heldout = stratified_split(labels, config.heldout_fraction, config.seed)
            draws = make_draws(labels, list(config.shots), config.draws, config.seed, pool_rel)
        if not draws:
            raise UserError(_NO_SHOT.format(shots=config.shots))
        skipped = sorted(set(config.shots) - set(draws))
        if skipped:
            status(f"low-shot: skipping n={skipped} (not enough images per class)")
        if work_dir is not None:
            save_draws(work_dir / "low_shot_indices.json", splits.train, heldout, draws)
        sizes = Sizes.for_model(model)
        train_set = with_transform(splits.train, T.deepcluster_train(
            sizes.crop, mean=sizes.mean, std=sizes.std))
        evaluation = (T.ten_crop if config.ten_crop else T.center_crop)(
            sizes.crop, sizes.resize, mean=sizes.mean, std=sizes.std)
        held_set = with_transform(splits.train, evaluation)
        val_set = with_transform(splits.val, evaluation)
        journal = ResultJournal(work_dir / "low_shot.jsonl" if work_dir else None)
        listing = dataset_fingerprint(splits.val.paths, list(splits.val.targets))
        done = journal.completed()
        rows: list[Result] = []
        for init in config.inits:
            info = run_info(self._network(model, init, config.seed), self.name, config,
                            run_id=run_id, device=device, dataset=splits.name)
            if init == "random":
                info = dataclasses.replace(info, model=f"random-{model.config['arch']}")
            for n, sets in draws.items():
                key, layer = f"{init}/{n}", f"all/{n}-shot"
                lr, iterations = done.get(key + "/selection") or self._select(
                    model, init, sets[0], splits.num_classes, train_set, held_set, heldout,
                    config, device, progress, work_dir, key, done, journal)
                journal.record(key + "/selection", [lr, iterations])
                per_draw, per_draw_hits = [], []
                for d, positions in enumerate(sets):
                    value = done.get(f"{key}/draw{d}")
                    if value is None:
                        net = self._network(model, init, config.seed)
                        settings = self._settings(config, lr, iterations, config.seed + d)
                        finetune(net, splits.num_classes, train_set, positions, settings,
                                 lambda m: 0.0, device=device, progress=progress,
                                 checkpoint=_ckpt(work_dir, f"{key}/draw{d}"),
                                 desc=f"{key} draw {d}", pipeline=config.input_pipeline,
                                 bn_sync=config.bn_sync)
                        value, hits = top1_hits(net, val_set, None, config.eval_batch_size,
                                                device, pipeline=config.input_pipeline)
                        # the hits first: a run killed in between redoes the draw
                        journal.record(f"{key}/draw{d}/items", encode_hits(hits))
                        journal.record(f"{key}/draw{d}", value)
                    items = journal.get(f"{key}/draw{d}/items")
                    per_draw.append(value)
                    per_draw_hits.append(None if items is None else decode_hits(items))
                    rows += results_from_metrics(info, {"top1": value}, split="val",
                                                 layer=layer, seed=config.seed + d)
                summary = summarize(per_draw)
                rows += results_from_metrics(info, summary, split="val", layer=layer)
                self.keep_outcomes(draw_outcomes(layer, listing, info.model_sha256,
                                                 config.seed, per_draw_hits))
                status(f"low-shot {init} n={n}: top1 {summary['top1_mean']:.2f} +- "
                    f"{summary['top1_std']:.2f} over {len(per_draw)} draws "
                    f"(lr {lr:g}, {iterations} iterations)")
        return rows

    @staticmethod
    def _network(model: Backbone, init: str, seed: int) -> Backbone:
        """A trainable copy of the checkpoint, or the same architecture freshly initialised."""
        if init == "pretrained":
            net = copy.deepcopy(model).cpu()
            net.name = model.name
        else:

            config = {k: v for k, v in model.config.items() if k != "taps"}
            try:
                net = create_backbone(config, seed=seed)
            except UserError as err:
                raise UserError(f"low-shot cannot build a random-init {config.get('arch')} "
                                f"baseline ({err}); run with --set inits=[pretrained]") from None
        for param in net.parameters():
            param.requires_grad_(True)
        sobel = getattr(net, "sobel", None)
        if sobel is not None:
            for param in sobel.parameters():
                param.requires_grad_(False)
        return net

    @staticmethod
    def _settings(config: LowShotConfig, lr: float, iterations: int, seed: int
                  ) -> FinetuneSettings:
        return FinetuneSettings(lr, config.weight_decay, config.momentum, iterations,
                                min(config.eval_every, iterations), config.batch_size,
                                config.eval_batch_size, seed)

    def _select(self, model: Backbone, init: str, positions: np.ndarray, num_classes: int,
                train_set: Any, held_set: Any, heldout: np.ndarray, config: LowShotConfig,
                device: str, progress: bool, work_dir: Path | None, key: str,
                done: dict[str, Any], journal: ResultJournal) -> tuple[float, int]:
        """Best (lr, iterations) on the held-out split, from fine-tuning draw 0."""
        best = (config.lrs[0], config.iterations, -1.0)
        for lr in config.lrs:
            name = f"{key}/select/lr={lr:g}"
            curve = done.get(name)
            if curve is None:
                net = self._network(model, init, config.seed)
                settings = self._settings(config, lr, config.iterations, config.seed)
                curve = finetune(net, num_classes, train_set, positions, settings,
                                 lambda m: top1(m, held_set, heldout, config.eval_batch_size,
                                                device, pipeline=config.input_pipeline),
                                 device=device, progress=progress,
                                 checkpoint=_ckpt(work_dir, name), desc=f"{key} select lr={lr:g}",
                                 pipeline=config.input_pipeline, bn_sync=config.bn_sync)
                journal.record(name, curve)
            for iteration, score in curve:
                if score > best[2]:
                    best = (lr, iteration, score)
        return best[0], best[1]


def _ckpt(work_dir: Path | None, name: str) -> Path | None:
    """Where the fine-tuning run `name` (e.g. 'random/4/draw2') checkpoints itself."""
    if work_dir is None:
        return None
    return work_dir / "checkpoints" / ("low_shot_" + name.replace("/", "_") + ".pt")
