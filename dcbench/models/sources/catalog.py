"""The checkpoint catalog: every named model dcbench knows, and honestly where its weights are.

Sources: `url` (a direct download of an official `.pth.tar`, converted on pull), `hf`
(a Hugging Face Hub repo in dcbench hub format), `random` (built locally, no download),
`none` (described in the literature but no weights are published).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dcbench.core.registry import Registry

OFFICIAL_BASE = "https://dl.fbaipublicfiles.com/deepcluster"
THESIS = "Caron, Unsupervised Representation Learning with Clustering in Deep ConvNets, 2018"
ECCV = "Caron et al., Deep Clustering for Unsupervised Learning of Visual Features, ECCV 2018"


@dataclass(frozen=True)
class CatalogEntry:
    """One named checkpoint: architecture, how it was trained, and where its weights live."""

    name: str
    arch: str
    sobel: bool
    source: Literal["url", "hf", "random", "none"]
    description: str
    dataset: str = ""
    clustering: str = ""
    k: int | None = None
    lr: float | None = None
    wd: float | None = None
    epochs: int | None = None
    url: str | None = None
    hf_repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    paper: str = ""
    license: str = ""
    notes: str = ""
    seed: int = 0
    converter: str = "deepcluster-official"  # checkpoint layout (models/converters.py)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pullable(self) -> bool:
        """Whether `dcbench hub pull` can produce weights for this entry."""
        return self.source in ("url", "hf", "random")

    def availability(self) -> str:
        """One honest phrase: where the weights come from, or that none are published."""
        if self.source == "url":
            check = f"sha256 {self.sha256[:12]}" if self.sha256 else "sha256 recorded on first pull"
            return f"download {self.url} ({check})"
        if self.source == "hf":
            return f"hf-hub:{self.hf_repo}" + (f"@{self.revision}" if self.revision else "")
        if self.source == "random":
            return f"built locally (random init, seed {self.seed})"
        return "no weights published yet: train it with `dcbench train --recipe " + self.name + "`"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for tables and model cards)."""
        return asdict(self)


CATALOG: Registry[CatalogEntry] = Registry("model")


def register(entry: CatalogEntry) -> CatalogEntry:
    """Add an entry; a duplicate name is an error."""
    return CATALOG.register(entry.name, entry)


def get_entry(name: str) -> CatalogEntry:
    """The catalog entry called `name`, or a UserError listing valid names."""
    return CATALOG.get(name)


def has_entry(name: str) -> bool:
    """Whether `name` is a catalog name."""
    return name in CATALOG


def list_entries(pattern: str = "*") -> list[CatalogEntry]:
    """Entries whose name matches a glob, in registration order."""
    return CATALOG.values(pattern)


def _official(arch: str) -> CatalogEntry:
    return CatalogEntry(
        name=f"deepcluster-{arch}", arch=arch, sobel=True, source="url",
        description=f"Official DeepCluster {arch.upper() if arch == 'vgg16' else 'AlexNet'}-BN "
        "release (facebookresearch/deepcluster)",
        dataset="ImageNet (train, no labels)", clustering="k-means", k=10000, lr=0.05, wd=1e-5,
        epochs=500 if arch == "alexnet" else None,
        url=f"{OFFICIAL_BASE}/{arch}/checkpoint.pth.tar", paper=ECCV, license="CC BY-NC 4.0",
        notes="Converted on pull from the legacy .pth.tar (weights_only, strict keys). "
        "Repository issue #95 asks whether the AlexNet release was YFCC100M-trained (unanswered).",
    )


def _thesis(name: str, dataset: str, clustering: str, k: int | None, sobel: bool, lr: float,
            wd: float, epochs: int) -> CatalogEntry:
    return CatalogEntry(
        name=name, arch="alexnet", sobel=sobel, source="none",
        description=f"Thesis Table 5.1 model {name}: AlexNet-BN, {clustering} on {dataset}",
        dataset=dataset, clustering=clustering, k=k, lr=lr, wd=wd, epochs=epochs, paper=THESIS,
        notes="The thesis reports this model (Tables 5.2-5.5) but its weights were never "
        "released; `dcbench train --recipe " + name + "` trains it.",
    )


def _random(arch: str, sobel: bool) -> CatalogEntry:
    kind = "sobel" if sobel else "rgb"
    return CatalogEntry(
        name=f"random-{arch}-{kind}", arch=arch, sobel=sobel, source="random",
        description=f"Random-init {arch} ({kind}), the official init; the 'Random' baseline rows",
        notes="Seed 0 unless `?seed=N` is appended to the name.",
    )


for _arch in ("alexnet", "vgg16"):
    register(_official(_arch))
register(_thesis("pic-imnet-sob", "ImageNet", "PIC", None, True, 0.05, 1e-5, 500))
register(_thesis("km-imnet-sob", "ImageNet", "10K-means", 10000, True, 0.02, 1e-5, 500))
register(_thesis("km-imnet-rgb", "ImageNet", "1K-means", 1000, False, 0.02, 1e-6, 500))
register(_thesis("km-fl1m-sob", "Flickr-1M (YFCC100M subset)", "10K-means", 10000, True, 0.02,
                 1e-5, 167))
register(_thesis("km-fl2m-sob", "Flickr-2M (YFCC100M subset)", "10K-means", 10000, True, 0.02,
                 1e-5, 167))
for _arch, _sobel in (("alexnet", True), ("alexnet", False), ("vgg16", True),
                      ("alexnet_small", True), ("alexnet_small", False), ("resnet50", False)):
    register(_random(_arch, _sobel))


SWAV_BASE = "https://dl.fbaipublicfiles.com/deepcluster"
VISSL_BASE = "https://dl.fbaipublicfiles.com/vissl/model_zoo"
SWAV = "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster " \
    "Assignments (SwAV), NeurIPS 2020"
FAMILY_NOTE = ("ResNet-50 trunk only: the projection head and prototypes of the release are "
               "dropped (counted in the model config); strict keys otherwise.")


def _swav_release(name: str, method: str, file: str, epochs: int, crops: str, top1: str,
                  base: str = SWAV_BASE, converter: str = "swav", where: str = "") -> CatalogEntry:
    return CatalogEntry(
        name=name, arch="resnet50", sobel=False, source="url",
        description=f"{method} ResNet-50, {epochs} epochs, {crops} crops "
        f"({where or 'facebookresearch/swav model zoo'}; ImageNet linear top-1 {top1})",
        dataset="ImageNet (train, no labels)",
        clustering="k-means (3 x 3000 prototypes)" if method == "DeepCluster-v2"
        else "Sinkhorn-Knopp balanced assignment (SeLa-v2)",
        k=3000, epochs=epochs, url=f"{base}/{file}", paper=SWAV, license="CC BY-NC 4.0",
        converter=converter, notes=FAMILY_NOTE,
    )


for _args in (
    ("deepclusterv2-r50-800ep", "DeepCluster-v2", "deepclusterv2_800ep_pretrain.pth.tar", 800,
     "2x224+6x96", "75.2"),
    ("deepclusterv2-r50-400ep", "DeepCluster-v2", "deepclusterv2_400ep_pretrain.pth.tar", 400,
     "2x160+4x96", "74.3"),
    ("deepclusterv2-r50-400ep-2x224", "DeepCluster-v2",
     "deepclusterv2_400ep_2x224_pretrain.pth.tar", 400, "2x224", "70.2"),
    ("selav2-r50-400ep", "SeLa-v2", "selav2_400ep_pretrain.pth.tar", 400, "2x160+4x96", "71.8"),
    ("selav2-r50-400ep-2x224", "SeLa-v2", "selav2_400ep_2x224_pretrain.pth.tar", 400, "2x224",
     "67.2"),
):
    register(_swav_release(*_args))
for _args in (
    ("vissl-deepclusterv2-r50-800ep", "DeepCluster-v2", "deepclusterv2_800ep_pretrain.pth.tar",
     800, "2x224+6x96", "75.18 (VISSL)"),
    ("vissl-deepclusterv2-r50-400ep", "DeepCluster-v2", "deepclusterv2_400ep_pretrain.pth.tar",
     400, "2x160+4x96", "74.32 (VISSL)"),
    ("vissl-deepclusterv2-r50-400ep-2x224", "DeepCluster-v2",
     "deepclusterv2_400ep_2x224_pretrain.pth.tar", 400, "2x224", "70.01 (VISSL)"),
):
    register(_swav_release(*_args, base=VISSL_BASE, converter="vissl-resnet",
                           where="VISSL model zoo, MODEL_ZOO.md"))
register(CatalogEntry(
    name="vissl-deepcluster-alexnet", arch="alexnet", sobel=True, source="url",
    description="The official DeepCluster AlexNet as converted by VISSL "
    "(model zoo deepcluster_alexnet_checkpoint.torch; VISSL IN-1k linear top-1 37.88)",
    dataset="ImageNet (train, no labels)", clustering="k-means", k=10000, epochs=500,
    url=f"{VISSL_BASE}/deepcluster_alexnet_checkpoint.torch", paper=ECCV, license="CC BY-NC 4.0",
    converter="vissl-alexnet-deepcluster",
    notes="VISSL's conversion keeps the conv trunk only: the Sobel front-end is rebuilt (fixed "
    "constants) and fc6/fc7 stay at the official random init, so use conv taps only "
    "(conv1-conv5). Same weights as deepcluster-alexnet's conv layers.",
))
register(CatalogEntry(
    name="mmselfsup-deepcluster-r50-sobel", arch="resnet50", sobel=True, source="url",
    description="MMSelfSup's DeepCluster reproduction: Sobel ResNet-50, 200 epochs, batch 512, "
    "k=10000 (third-party; VOC07 SVM 74.26, ImageNet linear 46.92 on avgpool)",
    dataset="ImageNet (train, no labels)", clustering="k-means", k=10000, epochs=200,
    url="https://download.openmmlab.com/mmselfsup/deepcluster/"
    "deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k-bb8681e2.pth",
    paper=ECCV + " (reproduction by open-mmlab/mmselfsup)", license="Apache-2.0",
    converter="mmselfsup-resnet", extra={"sha256_prefix": "bb8681e2"},
    notes="The file name carries the first 8 hex digits of its sha256 (OpenMMLab convention); "
    "the pull checks them. Neck and 10000-way head dropped. If the checkpoint's 'meta' block "
    "needs pickle globals beyond the weights-only allowlist, the safe loader refuses it.",
))
