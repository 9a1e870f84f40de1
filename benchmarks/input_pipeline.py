"""Input pipelines side by side: PIL workers vs torchvision's batch JPEG decoder vs DALI.

The three backends of `input_pipeline` read the same generated JPEGs (`data.synthetic_jpeg`,
`sizes="imagenet"`: ImageNet's mix of sizes, some progressive, some CMYK, some EXIF-rotated)
for the two jobs every run does: DeepCluster training crops (RandomResizedCrop 224 + flip)
and centre-crop features (Resize 256 + CenterCrop 224). Figures are images per second of
finished, normalised batches (no network), best of `repeat` alternating passes in one run:

- `PIL workers` (the baseline, `input_pipeline=cpu`): `data.pipeline.image_loader` with N
  DataLoader workers decoding and transforming with PIL/torchvision;
- `torchvision decode_jpeg batch (CPU)`: the `input_pipeline=gpu` path (`data.gpu_decode`)
  on the CPU: workers read bytes, `torchvision.io.decode_jpeg` decodes the batch, crops by
  `roi_align`; on a GPU this is the nvJPEG path, here it is torchvision's CPU decoder;
- `DALI (CPU backend)`: `input_pipeline=dali` with N DALI threads decoding (`device="cpu"`;
  on CUDA it would be `"mixed"`, whose speed is the library's and is not measured here) and
  N DataLoader workers reading the files and drawing the crops (as `workers: N` runs it).

Two protocol-specific jobs compare PIL with DALI alone (the torchvision path is training's):

- the Caffe VOC07 transform (`voc07-cls` `pipeline_all=caffe`, `transforms.voc_caffe_train`
  224: normalise, then one bilinear affine warp with zero fill): the PIL path runs the port
  (`data.caffe_transform`) in N workers, DALI `warp_affine` (`data.dali_warp`) with N
  threads and N reader workers;
- retrieval's database images (`retrieval`, `data.retrieval.RetrievalImages` at the published
  1024 px: the whole image resized so its longest side is 1024, normalised) at batch 1 with
  no loader workers, as `protocols.rmac.extract` reads them: PIL's bilinear resize in the
  calling thread vs a batch-1 DALI graph (`data.item_plans`) with N threads; on every
  fourth JPEG of the set (the same size mix).

N = the machine's CPU count (at most 8): the same cores for every backend. On a machine
with CUDA the torchvision rows run nvJPEG and the DALI rows `device="mixed"` (then the
figures are GPU figures; the README's table is the CPU run).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Row

SEED = 0
RETRIEVAL_SIZE = 1024  # retrieval's published image_size (longest side)
#: job -> what its rows measure
JOBS = {
    "train": "training crops (RandomResizedCrop 224 + flip)",
    "center": "centre-crop features (Resize 256 + CenterCrop 224)",
    "caffe": "Caffe VOC07 warp (voc07-cls pipeline_all=caffe, 224, scale 0.5-2)",
    "retrieval": f"retrieval longest-side resize ({RETRIEVAL_SIZE} px, batch 1, no workers)",
}


def _count(loader: Iterable[Any], device: torch.device) -> int:
    seen = sum(len(batch) for batch in loader)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen


def _dali_loader(dataset: Any, batch: int, workers: int, threads: int,
                 device: torch.device) -> Any:
    """`image_loader(..., pipeline="dali")` with `threads` DALI threads (a DaliLoader)."""
    from dcbench.data.dali_pipeline import DaliLoader
    from dcbench.data.pipeline import image_loader

    loader = image_loader(dataset, batch, pipeline="dali", workers=workers, device=device)
    assert isinstance(loader, DaliLoader)
    loader.threads = threads  # before the first batch builds the graph
    return loader


def _protocol_loaders(root: Path, job: str, batch: int, cores: int, device: torch.device
                      ) -> dict[str, Callable[[], Any]]:
    """PIL and DALI loaders for the Caffe warp or retrieval's resized whole images."""
    from torchvision.transforms import v2

    from dcbench.data import transforms as T
    from dcbench.data.folders import ImageFolderDataset
    from dcbench.data.pipeline import image_loader
    from dcbench.data.retrieval import RetrievalImages

    dataset: Any
    if job == "caffe":
        dataset, workers = ImageFolderDataset(root, T.voc_caffe_train(224)), cores
    else:  # retrieval: every fourth file, whole images, batch 1 in the calling thread
        paths = [Path(p) for p, _ in ImageFolderDataset(root).samples][::4]
        normalise = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])
        dataset, workers = RetrievalImages(paths, RETRIEVAL_SIZE, normalise), 0
    return {
        "pil": lambda: image_loader(dataset, batch, pipeline="cpu", workers=workers),
        "dali": lambda: _dali_loader(dataset, batch, workers, cores, device),
    }


def _loaders(root: Path, job: str, batch: int, cores: int, device: torch.device
             ) -> dict[str, Callable[[], Any]]:
    """Fresh loaders per pass for the backends of `job` (same crops drawn by PIL and DALI);
    `caffe` and `retrieval` only when DALI is installed (PIL vs DALI)."""
    from dcbench.data import transforms as T
    from dcbench.data.dali_pipeline import dali_available
    from dcbench.data.folders import ImageFolderDataset
    from dcbench.data.gpu_decode import BatchDecoder, DecodingLoader, EncodedImages
    from dcbench.data.pipeline import image_loader

    if job in ("caffe", "retrieval"):
        return _protocol_loaders(root, job, batch, cores, device) if dali_available() else {}
    transform = T.deepcluster_train(224) if job == "train" else T.center_crop(224, 256)
    dataset = ImageFolderDataset(root, transform)
    encoded = EncodedImages(ImageFolderDataset(root))

    def decoder() -> BatchDecoder:
        return BatchDecoder(device, 224, T.IMAGENET_MEAN, T.IMAGENET_STD, mode=job, resize=256,
                            generator=torch.Generator().manual_seed(SEED))

    loaders: dict[str, Callable[[], Any]] = {
        "pil": lambda: image_loader(dataset, batch, pipeline="cpu", workers=cores),
        "torchvision": lambda: DecodingLoader(encoded, batch, decoder(), workers=cores),
    }
    if dali_available():
        loaders["dali"] = lambda: _dali_loader(dataset, batch, cores, cores, device)
    return loaders


def measure(root: Path, job: str, batch: int, cores: int, repeat: int,
            device: torch.device) -> dict[str, float]:
    """img/s per backend: one warm-up pass each, then `repeat` alternating passes, best."""
    loaders = _loaders(root, job, batch, cores, device)
    best = dict.fromkeys(loaders, 0.0)
    for make in loaders.values():
        _count(make(), device)  # warm-up: worker start, DALI graph build, page cache
    for _ in range(repeat):
        for name, make in loaders.items():
            torch.manual_seed(SEED)
            start = time.perf_counter()
            seen = _count(make(), device)
            best[name] = max(best[name], seen / (time.perf_counter() - start))
    return best


def run(quick: bool) -> list[Row]:
    """Each job through each backend (see the module docstring), ratio vs PIL."""
    from dcbench.data.synthetic_jpeg import make_jpeg_folder

    cores = max(1, min(8, os.cpu_count() or 1))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tv = "torchvision nvJPEG batch (cuda)" if device.type == "cuda" else \
        "torchvision decode_jpeg batch (CPU)"
    dali = "DALI (mixed, cuda)" if device.type == "cuda" else "DALI (CPU backend)"
    per_class, repeat, batch = (2, 1, 4) if quick else (64, 2, 32)
    if device.type == "cuda" and not quick:
        repeat = 1  # after the warm-up pass: fits gpu_run.sh's 60 s step on 16 cores
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "jpeg", n_classes=4, per_class=per_class,
                                sizes="imagenet", seed=SEED, progressive=0.2, cmyk=0.05,
                                rotated=0.05)
        n = 4 * per_class
        mix = "ImageNet size mix (20% progressive, 5% CMYK)"
        for job, what in JOBS.items():
            size = 1 if job == "retrieval" else batch
            figures = measure(root, job, size, cores, repeat, device)
            if job == "retrieval":
                base = "PIL (calling thread)"
                common = f"{len(range(0, n, 4))} of the {n} JPEGs, {mix}, batch 1"
                dali_notes = f"{common}; {cores} DALI threads on {device.type}"
            else:
                base = f"PIL workers ({cores})"
                common = f"{n} JPEGs, {mix}, batch {batch}"
                dali_notes = f"{common}; {cores} DALI threads + {cores} reader workers on " \
                    f"{device.type}"
            if "torchvision" in figures:
                rows.append(Row(benchmark="input_pipeline", what=f"{what}: {tv}",
                                dcbench=figures["torchvision"], unit="img/s",
                                baseline_name=base, baseline=figures["pil"],
                                notes=f"{common}; input_pipeline=gpu on {device.type} "
                                f"({cores} workers read bytes)"))
            if "dali" in figures:
                rows.append(Row(benchmark="input_pipeline", what=f"{what}: {dali}",
                                dcbench=figures["dali"], unit="img/s", baseline_name=base,
                                baseline=figures["pil"], notes=dali_notes))
    return rows
