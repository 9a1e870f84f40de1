"""The protocol registry, the `Protocol` interface and the long-format `Result` row.

A protocol is a class registered by name (`@register_protocol("linear-conv")`) with:
- `Config`: a dataclass whose defaults are the published protocol (the `dc2018` dialect);
- `DIALECTS`: named presets (dict of config overrides), e.g. `goyal2019`, never silent
  differences;
- `SCHEDULES`: named run-length presets (`published` = the paper, `smoke` = minutes on the
  built-in data);
- a pure core function (tensors in, metrics dict out) in its module;
- `run(model, data_dir, config, *, run_id, device, progress, work_dir) -> list[Result]`
  which does the I/O (data loading, checkpoints in `work_dir`) around the core; it hands
  the per-item outcomes behind its averaged metrics to `keep_outcomes` (the CLI writes them
  to `outcomes.safetensors` next to `results.json`, see `core.outcomes`).

`check_data(data_dir, config)` refuses, before anything is printed or written, what the run
would refuse from the datasets' sizes and labels alone (no model, no decoding).

`run` resumes from whatever it finds in `work_dir` (probe checkpoints, saved draws); the
CLI guarantees `work_dir` is fresh unless the user passed `--resume`.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dcbench.core.bounds import MAX_SEED, bounded
from dcbench.core.config import resolve, to_dict
from dcbench.core.errors import UserError, did_you_mean
from dcbench.core.outcomes import ItemOutcomes
from dcbench.core.provenance import code_revision, config_hash, device_name
from dcbench.core.registry import Registry
from dcbench.core.rows import Result
from dcbench.core.version import __version__
from dcbench.data.pipeline import PROTOCOL_PIPELINES

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

# Metric and split vocabulary shared by all protocols (the leaderboards read these names).
METRICS = (
    "top1", "top5", "top1_best_epoch", "accuracy", "nmi", "ari",
    "ratio_edge_intra_class", "ratio_edge_intra_class_random", "map", "miou",
    "cluster_size_min", "cluster_size_max", "cluster_size_cv",
)
METRIC_PREFIXES = ("ap_", "iou_")
# Aggregates over repeated draws (low-shot): "<metric>_mean" / "_std" / "_min" / "_max".
METRIC_SUFFIXES = ("_mean", "_std", "_min", "_max")
SPLITS = ("val", "test", "train-heldout", "train")
# The frozen conv taps the classification probes evaluate by default.
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclasses.dataclass
class ProtocolConfig:
    """Fields every protocol config has; subclasses add their own (all with defaults)."""

    dialect: str = "dc2018"
    seed: int = bounded(0, ge=0, le=MAX_SEED)
    # who decodes and crops the images (data/pipeline.py): auto = DALI on CUDA when
    # installed, else PIL in workers; same order, crops and labels either way
    input_pipeline: str = bounded("auto", choices=PROTOCOL_PIPELINES)


class Protocol(abc.ABC):
    """Base class of a registered protocol. Subclasses set the class attributes below."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = ProtocolConfig
    DIALECTS: ClassVar[dict[str, dict[str, Any]]] = {"dc2018": {}}
    SCHEDULES: ClassVar[dict[str, dict[str, Any]]] = {"published": {}}
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def run(
        self,
        model: Backbone,
        data_dir: str | Path,
        config: Any,
        *,
        run_id: str,
        device: str,
        progress: bool,
        work_dir: Path | None,
    ) -> list[Result]:
        """Run the protocol on `model` and `data_dir`, returning result rows."""

    def check_data(self, data_dir: str | Path, config: Any) -> None:
        """Refuse (a UserError: one line, exit 2) what `config` cannot do with the data at
        `data_dir`, from the datasets' listings and labels alone: no model, no image decoded.
        These are the refusals a run would otherwise reach only after the plan, the model
        load and the run dir (knn's k above the training set, a low-shot n above a class,
        ...). `dcbench eval` and `dcbench reproduce` call it before printing or writing
        anything; `run` keeps its own checks for Python callers. Default: nothing."""
        return None

    def keep_outcomes(self, entries: list[ItemOutcomes]) -> None:
        """Record per-item outcomes of this run (paired intervals need them)."""
        self.__dict__.setdefault("_outcomes", []).extend(entries)

    def item_outcomes(self) -> list[ItemOutcomes]:
        """The per-item outcomes `run` recorded (empty for protocols without any)."""
        return list(self.__dict__.get("_outcomes", []))

    def resolve_config(
        self,
        *,
        dialect: str | None = None,
        schedule: str = "published",
        layers: list[Mapping[str, Any]] | None = None,
        overrides: list[str] | None = None,
    ) -> Any:
        """Config = defaults < dialect preset < schedule preset < extra layers < `--set`."""

        dialect = dialect or "dc2018"
        if dialect not in self.DIALECTS:
            raise UserError(
                f"protocol {self.name!r} has no dialect {dialect!r}; "
                + did_you_mean(dialect, list(self.DIALECTS))
            )
        if schedule not in self.SCHEDULES:
            raise UserError(
                f"protocol {self.name!r} has no schedule {schedule!r}; "
                + did_you_mean(schedule, list(self.SCHEDULES))
            )
        stack: list[dict[str, Any]] = [
            dict(self.DIALECTS[dialect]),
            {"dialect": dialect},
            dict(self.SCHEDULES[schedule]),
        ]
        stack.extend(dict(layer) for layer in layers or [])
        return resolve(self.Config, *stack, overrides=overrides)


PROTOCOLS: Registry[type[Protocol]] = Registry("protocol")

# Modules that register the built-in protocols; imported on first registry lookup.
BUILTIN_MODULES = (
    "dcbench.protocols.linear_conv",
    "dcbench.protocols.mlp",
    "dcbench.protocols.low_shot",
    "dcbench.protocols.knn",
    "dcbench.protocols.knn_graph",
    "dcbench.protocols.nmi",
    "dcbench.protocols.voc07_cls",
    "dcbench.protocols.voc07_det",
    "dcbench.protocols.voc12_seg",
    "dcbench.protocols.voc07_svm",
    "dcbench.protocols.voc07_lowshot_svm",
    "dcbench.protocols.retrieval",
)
_loaded = False


def register_protocol(name: str) -> Callable[[type[Protocol]], type[Protocol]]:
    """Class decorator registering a `Protocol` subclass under `name`; duplicates raise."""

    def decorator(cls: type[Protocol]) -> type[Protocol]:
        if not (isinstance(cls, type) and issubclass(cls, Protocol)):
            raise TypeError(f"@register_protocol({name!r}) expects a Protocol subclass")
        if not dataclasses.is_dataclass(cls.Config):
            raise TypeError(f"protocol {name!r}: Config must be a dataclass")
        cls.name = name
        return PROTOCOLS.register(name, cls)

    return decorator


def _load_builtins() -> None:
    """Import the protocol modules once (a not-yet-written module is skipped, not fatal)."""
    global _loaded
    if _loaded:
        return
    for module_name in BUILTIN_MODULES:
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
    _loaded = True


def list_protocols() -> list[str]:
    """Registered protocol names, sorted."""
    _load_builtins()
    return PROTOCOLS.names()


def get_protocol(name: str) -> Protocol:
    """A fresh instance of the protocol registered as `name` (UserError listing valid ones)."""
    _load_builtins()
    return PROTOCOLS.get(name)()


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """The columns shared by every row of one protocol run (built once by `run_info`)."""

    run_id: str
    model: str
    model_sha256: str
    protocol: str
    dialect: str
    dataset: str
    seed: int
    config_hash: str
    dcbench_version: str
    code_revision: str
    device: str
    timestamp: str


def run_info(
    model: Backbone,
    protocol: str,
    config: Any,
    *,
    run_id: str,
    device: str,
    dataset: str,
) -> RunInfo:
    """Collect provenance for one run: model id, config hash, code revision, device, time."""

    cfg = to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
    unhashed = getattr(type(config), "HASH_DEFAULTS", {})
    return RunInfo(
        run_id=run_id,
        model=str(getattr(model, "name", model.config.get("arch", "model"))),
        model_sha256=model.weights_sha256(),
        protocol=protocol,
        dialect=str(cfg.get("dialect", "dc2018")),
        dataset=dataset,
        seed=int(cfg.get("seed", 0)),
        # The seed is its own column: runs differing only by seed are the same config, so
        # the leaderboard averages them (mean +- std) instead of calling older seeds stale.
        # The input pipeline is like the device: same protocol, same crops, pixels within
        # JPEG-decoder tolerance; it stays out of the hash (old results stay current).
        # A Config's HASH_DEFAULTS: keys added later that stay out of the hash while they
        # hold the value that reproduces the runs made before them.
        config_hash=config_hash({k: v for k, v in cfg.items()
                                 if k not in ("seed", "input_pipeline")
                                 and not (k in unhashed and unhashed[k] == v)}),
        dcbench_version=__version__,
        code_revision=code_revision(),
        device=device_name(device),
        timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def check_metric_name(metric: str) -> None:
    """Refuse metric names outside the shared vocabulary (a typo would split leaderboards)."""
    base = metric
    for suffix in METRIC_SUFFIXES:
        if metric.endswith(suffix) and metric[: -len(suffix)] in METRICS:
            base = metric[: -len(suffix)]
    if base not in METRICS and not metric.startswith(METRIC_PREFIXES):
        raise ValueError(f"metric {metric!r} is not in the shared vocabulary {METRICS}")


def results_from_metrics(
    info: RunInfo,
    metrics: Mapping[str, float],
    *,
    split: str,
    layer: str,
    seed: int | None = None,
) -> list[Result]:
    """One `Result` row per metric; `layer` is the tap measured or the trained part ('all')."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    rows = []
    for metric, value in metrics.items():
        check_metric_name(metric)
        base = dataclasses.asdict(info)
        if seed is not None:
            base["seed"] = int(seed)
        rows.append(Result(split=split, layer=layer, metric=metric, value=float(value), **base))
    return rows


def dataset_name(data_dir: str | Path) -> str:
    """A short dataset label for result rows: the data folder's name (or list file stem)."""
    path = Path(data_dir).expanduser().resolve()
    return path.stem if path.is_file() else path.name
