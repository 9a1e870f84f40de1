"""`TrainConfig`: every knob of a DeepCluster run, and the recipes shipped with the package.

Defaults are the official release settings (deepcluster-official.md 2.1: AlexNet, Sobel,
k-means k=10000, lr 0.05, wd 1e-5, momentum 0.9, batch 256, reassign 1, seed 31). A run
resolves: defaults < recipe YAML < `--set key=value`; the resolved config is saved in the run
directory.

Where dcbench deliberately differs from the 2018 code (docs/fidelity.md), a key switches to
the reference behaviour, and the preset `faithful-2018` turns all of them at once: name a
recipe as `<recipe>+faithful-2018` (listed by `dcbench train --list-recipes`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from dcbench.core import config as cfg
from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, MAX_SEED, MAX_WORKERS, bounded
from dcbench.core.errors import UserError, did_you_mean
from dcbench.core.registry import Registry


@dataclass
class TrainConfig:
    """A DeepCluster training run (see the recipes in dcbench/training/recipes/)."""

    # model
    arch: str = "alexnet"
    sobel: bool = True
    # clustering (on the embedding tap: fc7 before its ReLU; pool for ResNet)
    clustering: Literal["kmeans", "pic"] = "kmeans"
    k: int = bounded(10000, ge=1, le=MAX_COUNT)
    pca_dim: int = bounded(256, ge=1, le=MAX_COUNT)
    kmeans_iters: int = bounded(20, ge=1, le=100000)
    pic_nnn: int = bounded(5, ge=1, le=10000)
    pic_sigma: float = bounded(0.2, gt=0, le=1e3)
    pic_alpha: float = bounded(0.001, ge=0, le=1)
    pic_iters: int = bounded(200, ge=1, le=100000)
    pic_singletons: Literal["redistribute", "keep", "drop"] = "redistribute"
    pic_dtype: Literal["float64", "float32"] = "float64"  # float32: the official iteration
    clustering_backend: Literal["auto", "faiss", "torch"] = "auto"  # auto: faiss-gpu if the
    # installed faiss has GPU support (no pip extra: see clustering.backend), torch on CUDA,
    # faiss-cpu on CPU (the run log records which ran)
    # Algorithm 2: cluster + train on a fresh random subset each epoch
    subset_size: int = bounded(0, ge=0, le=MAX_COUNT)
    # optimisation (constant LR, no schedule)
    epochs: int = bounded(200, ge=1, le=1000000)
    lr: float = bounded(0.05, ge=0, le=10)
    momentum: float = bounded(0.9, ge=0, lt=1)
    weight_decay: float = bounded(1e-5, ge=0, le=1)
    batch_size: int = bounded(256, ge=1, le=MAX_COUNT)
    reassign: float = bounded(1.0, gt=0, le=1e3)  # draws per epoch = reassign x (images clustered)
    # >0: stochastic gradient over targets, rows updated per batch
    sgt: int = bounded(0, ge=0, le=MAX_COUNT)
    # uniform: exactly uniform over clusters (thesis 3.2); official-2018: the released code's
    # UnifLabelSampler + ReassignedDataset indexing (in effect proportional to cluster size)
    sampler: Literal["uniform", "official-2018"] = "uniform"
    # data and augmentation (Section 4.3)
    # 0: the architecture's native size (224, or 64 for alexnet_small)
    input_size: int = bounded(0, ge=0, le=MAX_IMAGE_SIDE)
    # short side before the clustering center crop; 0: round(size*256/224)
    resize: int = bounded(0, ge=0, le=MAX_IMAGE_SIDE)
    crop_scale: tuple[float, float] = bounded((0.08, 1.0), gt=0, le=1)
    crop_ratio: tuple[float, float] = bounded((0.75, 4 / 3), gt=0, le=100)
    hflip: bool = True
    workers: int = bounded(4, ge=0, le=MAX_WORKERS)
    input_pipeline: Literal["auto", "cpu", "gpu", "dali"] = "auto"  # gpu: workers read bytes,
    # JPEGs are decoded and augmented on the GPU (torchvision nvJPEG); dali: NVIDIA DALI with
    # the PIL path's crops; auto = dali on CUDA when installed, else gpu on CUDA, else cpu
    # (PIL in workers); see data/pipeline.py
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast + channels_last
    # on CUDA, fp32 on CPU
    # bookkeeping
    seed: int = bounded(31, ge=0, le=MAX_SEED)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # k of the ratio edge intra-class diagnostic (labelled data only)
    knn_ratio_k: int = bounded(10, ge=1, le=MAX_COUNT)
    # ratio-edge diagnostic on at most this many images (0 = all)
    diagnostics_max: int = bounded(20000, ge=0, le=MAX_COUNT)
    # NMI in the training log: sklearn >= 0.22 (arithmetic) or the 2018 sklearn (geometric)
    nmi_average: Literal["arithmetic", "geometric"] = "arithmetic"
    progress: bool = False  # force the progress bar when stderr is not a terminal
    # TensorBoard / W&B images (clusters, conv1 filters) every N epochs; 0 = never
    image_every: int = bounded(10, ge=0, le=1000000)

    def validate(self) -> TrainConfig:
        """Refuse impossible values with a UserError naming the key: each key's declared
        range (also for a config built in Python), then the rules across keys."""
        cfg.check_bounds(self)
        checks = [
            (self.crop_scale[0] <= self.crop_scale[1], "crop_scale must be 0<a<=b<=1"),
            (self.crop_ratio[0] <= self.crop_ratio[1], "crop_ratio must be 0<a<=b"),
            (self.clustering_backend in ("auto", "faiss", "torch"),
             "clustering_backend must be auto, faiss or torch"),
            (self.input_pipeline in ("auto", "cpu", "gpu", "dali"),
             "input_pipeline must be auto, cpu, gpu or dali"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"invalid training config: {message}")
        return self

    def model_config(self) -> dict[str, Any]:
        """The dict given to `dcbench.models.create_backbone`."""
        return {"arch": self.arch, "sobel": self.sobel, "num_classes": 0}


# Presets: overlays applied on top of a recipe (`<recipe>+<preset>`), below --set overrides.
PRESETS: dict[str, dict[str, Any]] = {
    # every training switch at the behaviour of facebookresearch/deepcluster (docs/fidelity.md)
    "faithful-2018": {
        "sampler": "official-2018",
        # the 2018 code ran PIC under NumPy 1.x, whose promotion made W (and v after the
        # first step) float64; float32 is the same code under NumPy >= 2
        "pic_dtype": "float64",
        "nmi_average": "geometric",
        "diagnostics_max": 0,
    },
}
PRESET_DESCRIPTIONS = {
    "faithful-2018": "as the 2018 code ran: official sampler indexing, geometric NMI, "
    "full-graph ratio edge",
}


def recipes_dir() -> Path:
    """The folder of the shipped recipe YAML files."""
    return Path(str(resources.files("dcbench.training") / "recipes"))


RECIPES: Registry[Path] = Registry("recipe")
for _path in sorted(recipes_dir().glob("*.yaml")):  # a recipe is defined by its YAML file
    RECIPES.register(_path.stem, _path)


def shipped_recipes() -> list[str]:
    """Names of the shipped recipe files."""
    return RECIPES.names()


def list_recipes() -> list[str]:
    """Names of the shipped recipes, then each with every preset (`name+preset`)."""
    names = shipped_recipes()
    return names + [f"{n}+{p}" for n in names for p in PRESETS]


def split_preset(name: str) -> tuple[str, dict[str, Any]]:
    """`recipe+preset` -> (recipe, the preset's overlay); a plain name -> (name, {})."""
    base, plus, preset = name.rpartition("+")
    if not plus:
        return name, {}
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; " + did_you_mean(preset, list(PRESETS)))
    return base, dict(PRESETS[preset])


def recipe_layer(name: str) -> dict[str, Any]:
    """The YAML mapping of a recipe (a shipped name or a path to a YAML file), with the
    overlay of a `+preset` suffix applied."""
    name, overlay = split_preset(name)
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = cfg.load_yaml(path)
    else:
        data = cfg.load_yaml(RECIPES.get(name))
    data = dict(data)
    data.pop("description", None)
    return {**data, **overlay}


def resolve_config(recipe: str, overrides: list[str] | None = None, **fields: Any) -> TrainConfig:
    """Defaults < recipe < keyword fields (e.g. epochs) < `--set` overrides; validated."""
    layers = [recipe_layer(recipe), {k: v for k, v in fields.items() if v is not None}]
    return cfg.resolve(TrainConfig, *layers, overrides=overrides).validate()


def recipe_description(name: str) -> str:
    """The `description:` line of a shipped recipe ('' if none); `+preset` adds its summary."""
    base, _ = split_preset(name)
    data = cfg.load_yaml(RECIPES.get(base))
    text = str(data.get("description", ""))
    if base != name:
        text = f"{base}, {PRESET_DESCRIPTIONS[name.rpartition('+')[2]]}"
    return text


def field_names() -> list[str]:
    """All TrainConfig keys (for help texts)."""
    return [f.name for f in dataclasses.fields(TrainConfig)]
