"""DeepCluster at ImageNet scale on one GPU (issue 15): where an epoch's time goes, in one run.

    PYTHONPATH=. python benchmarks/gpu_epoch.py --out gpu_epoch.json      # on a CUDA machine
    PYTHONPATH=. python benchmarks/gpu_epoch.py --tiny                    # CPU check (tests)

Every figure is measured next to its baseline in the same run, on the same inputs:
(a) model only, batch already on the device: AlexNet (Sobel, 224 px) training and inference
    images/s in bf16 autocast + channels_last against fp32; plus the bf16 fidelity check
    (NMI between k-means of the same network's fp32 and bf16 embeddings, built-in data);
(b) end to end from JPEG files on disk (500x375, written first): the clustering pass (center
    crop + embedding) and the training pass (RandomResizedCrop + flip + SGD step) through
    the device pipeline (`dcbench.data.gpu_decode`: bytes in workers, nvjpeg, crops on the
    GPU) against today's pipeline (PIL decode + transforms in DataLoader workers);
(c) clustering of N x 256 whitened features (generated on the device, planted clusters),
    k=10,000, 20 iterations: the torch k-means on the GPU at N = 1.28M; faiss-cpu (and
    faiss-gpu when installed) on `--faiss-rows` rows against torch on the same rows (faiss-cpu
    at 1.28M would take many minutes, so its 1.28M time is extrapolated linearly, stated in
    the notes); PCA-whitening of 4096-d features on the device; PIC (torch k-NN graph) on
    `--pic-rows` rows against PIC with the faiss-cpu graph;
(d) a real epoch, phase by phase (`benchmarks/gpu_phases.py`): features, clustering (whitening,
    k-means, diagnostics), training, checkpoint, after a warm-up; each phase fitted as fixed +
    per-image from two measured sizes, the formula checked against one measured whole epoch
    at a larger size (must agree within 15%), then evaluated at ImageNet's 1.28M images next
    to the paper's ~35 minutes on a P100. Only measured phases enter the formula; the (c)
    rows are comparisons, not inputs to it.

`--tiny` (and any run without CUDA) uses CPU sizes that take seconds; `dcbench bench` runs it
through `run(quick)` like the other modules (tiny sizes without a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import normalized_mutual_info_score

from benchmarks.common import Row, add_size_args, machine, map_jobs, resolve_sizes
from benchmarks.gpu_phases import PHASES, measure_epoch, predict
from dcbench.clustering.backend import kmeans, knn_search_torch, whiten_on_device
from dcbench.clustering.kmeans import faiss_available, fit_whitening, gpu_available
from dcbench.clustering.pic import run_pic
from dcbench.core.distributed import DistInfo
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.gpu_decode import BatchDecoder, DecodingLoader, EncodedImages
from dcbench.data.loader import make_loader
from dcbench.data.samplers import UniformLabelSampler
from dcbench.data.synthetic import make_classification_set
from dcbench.data.transforms import center_crop, deepcluster_train
from dcbench.models import create_backbone
from dcbench.training.embeddings import extract_embeddings
from dcbench.training.precision import bf16_fidelity, configure_numerics, memory_format
from dcbench.training.train_pass import PassSettings, train_pass

NAME = "gpu_epoch"
IMAGENET = 1_281_167
PAPER_EPOCH_S = 35 * 60  # thesis / paper: about 35 minutes per epoch on a P100

FULL = {"arch": "alexnet", "size": 224, "batch": 256, "model_batches": 20, "jpegs": 8192,
        "jpeg_w": 500, "jpeg_h": 375, "workers": 16, "rows": IMAGENET, "k": 10000, "dim": 256,
        "faiss_rows": 20000, "pic_rows": 200000, "pca_rows": 200000, "pca_in": 4096,
        "fidelity_per_class": 100, "fidelity_k": 100, "epoch_n1": 4096, "epoch_n2": 16384,
        "epoch_n3": 1_000_000, "epoch_k": 1000, "epoch_pca": 256, "epoch_diag": 20000,
        "epoch_repeats": 1, "epoch_budget_s": 120}
TINY = {"arch": "alexnet_small", "size": 32, "batch": 8, "model_batches": 2, "jpegs": 64,
        "jpeg_w": 50, "jpeg_h": 40, "workers": 0, "rows": 3000, "k": 30, "dim": 16,
        "faiss_rows": 1500, "pic_rows": 600, "pca_rows": 800, "pca_in": 64,
        "fidelity_per_class": 12, "fidelity_k": 16, "epoch_n1": 64, "epoch_n2": 192,
        "epoch_n3": 384, "epoch_k": 8, "epoch_pca": 16, "epoch_diag": 0,
        "epoch_repeats": 5, "epoch_budget_s": 0}


def sync(device: torch.device) -> float:
    """Wall clock after the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    start = sync(device)
    value = fn()
    return sync(device) - start, value


# ---- (a) model only ----------------------------------------------------------------------
def _model_steps(model: Any, x: torch.Tensor, y: torch.Tensor, bf16: bool
                 ) -> tuple[Callable[[], None], Callable[[], None]]:
    """One SGD training step and one embedding forward of `model` on the batch `x`."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    kind = x.device.type

    def step() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            model.forward_features(x, [model.embedding_tap])

    return step, infer


def model_rows(p: dict[str, Any], device: torch.device) -> list[Row]:
    """Training and inference images/s with the batch on the device: bf16 vs fp32."""
    figures: dict[tuple[str, str], float] = {}
    for precision in ("fp32", "bf16"):
        model = create_backbone({"arch": p["arch"], "sobel": True, "num_classes": 0}, seed=0)
        model = model.to(device).to(memory_format=memory_format(device, precision))
        model.reset_top_layer(1000, torch.Generator().manual_seed(0))
        fmt = memory_format(device, precision)
        x = torch.randn(p["batch"], 3, p["size"], p["size"], device=device
                        ).contiguous(memory_format=fmt)
        y = torch.randint(0, 1000, (p["batch"],), device=device)
        step, infer = _model_steps(model, x, y, precision == "bf16")
        for label, fn in (("train", step), ("inference", infer)):
            model.train(label == "train")
            for _ in range(2):
                fn()
            seconds, _ = timed(lambda fn=fn: [fn() for _ in range(p["model_batches"])], device)
            figures[(label, precision)] = p["batch"] * p["model_batches"] / seconds
    what = f"{p['arch']} Sobel {p['size']}px batch {p['batch']}, batch on the device"
    return [Row(benchmark=NAME, what=f"(a) model-only {label}, {what}",
                dcbench=figures[(label, "bf16")], unit="img/s", baseline_name="fp32",
                baseline=figures[(label, "fp32")],
                notes="bf16 autocast" + (" + channels_last" if device.type == "cuda" else ""))
            for label in ("train", "inference")]


def fidelity_row(p: dict[str, Any], device: torch.device, root: Path) -> Row:
    """NMI of k-means on fp32 vs bf16 embeddings of the built-in images (same network)."""
    make_classification_set(root / "fid", train_per_class=p["fidelity_per_class"],
                            val_per_class=1, size=64, seed=0)
    model = create_backbone({"arch": p["arch"], "sobel": True, "num_classes": 0}, seed=0)
    model = model.to(device)
    size = int(model.config["input_size"])
    data = ImageFolderDataset(root / "fid" / "train", center_crop(
        size, round(size * 256 / 224), model.config["mean"], model.config["std"]))
    idx = np.arange(len(data))
    configure_numerics(device, "fp32")  # true IEEE fp32 for the reference embeddings
    feats = {prec: extract_embeddings(model, data, idx, batch_size=p["batch"], device=device,
                                      precision=prec)[0] for prec in ("fp32", "bf16")}
    configure_numerics(device, "bf16" if device.type == "cuda" else "fp32")
    k = min(p["fidelity_k"], len(idx) // 2)
    dim = max(1, min(p["dim"], feats["fp32"].shape[1] // 4, len(idx) - 1))
    nmi = bf16_fidelity(feats["fp32"], feats["bf16"], k=k, pca_dim=dim)
    return Row(benchmark=NAME, what=f"(a) bf16 fidelity: NMI(k-means fp32, bf16), {len(idx)} "
               f"built-in images, k={k}", dcbench=nmi, unit="NMI",
               notes="target >= 0.95; same network, same seed")


# ---- (b) end to end from JPEG files ------------------------------------------------------
def _write_jpeg(args: tuple[str, int, int, int]) -> None:
    path, w, h, seed = args
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    img = coarse.resize((w, h), Image.BILINEAR)
    noise = rng.integers(-12, 12, (h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def write_jpegs(root: Path, p: dict[str, Any]) -> Path:
    """`root/jpeg/c{0..9}/*.jpg`: `p['jpegs']` smooth noisy photos-like JPEGs."""
    jobs = []
    for i in range(p["jpegs"]):
        folder = root / "jpeg" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"{i:06d}.jpg"), p["jpeg_w"], p["jpeg_h"], i))
    map_jobs(_write_jpeg, jobs, chunksize=64)
    return root / "jpeg"


def pass_speeds(folder: Path, p: dict[str, Any], device: torch.device, pipeline: str
                ) -> tuple[float, float]:
    """Steady-state (clustering-pass img/s, training-pass img/s) through `pipeline` (pil |
    device): after a warm-up pass, both passes are timed on n/4 and on n images and the
    rate is the difference (n - n/4) / (t_n - t_n/4), so per-pass start-up (worker spawn,
    decoder init, autotuning) is not counted as throughput (it is in (d)'s fixed costs)."""
    precision = "bf16" if device.type == "cuda" else "fp32"
    model = create_backbone({"arch": p["arch"], "sobel": True, "num_classes": 0}, seed=0)
    model = model.to(device).to(memory_format=memory_format(device, precision))
    mean, std, size = model.config["mean"], model.config["std"], p["size"]
    resize = round(size * 256 / 224)
    if pipeline == "pil":
        cluster_set = ImageFolderDataset(folder, center_crop(size, resize, mean, std))
        train_set = ImageFolderDataset(folder, deepcluster_train(size, mean=mean, std=std))
        decoder = None
    else:
        cluster_set = train_set = EncodedImages(ImageFolderDataset(folder))
        decoder = BatchDecoder(device, size, mean, std, mode="center", resize=resize)
    model.reset_top_layer(100, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(list(model.trunk_parameters()), lr=0.01, momentum=0.9)
    settings = PassSettings(lr=0.01, weight_decay=1e-5, precision=precision)

    def passes(m: int) -> tuple[float, float]:
        t_feat, _ = timed(lambda: extract_embeddings(
            model, cluster_set, np.arange(m), batch_size=p["batch"], device=device,
            workers=p["workers"], precision=precision, decoder=decoder), device)
        labels = np.full(len(cluster_set), -1)
        labels[:m] = np.arange(m) % 100
        sampler = UniformLabelSampler(labels, m, seed=0)
        if pipeline == "pil":
            loader: Any = make_loader(train_set, p["batch"], sampler=sampler,
                                      workers=p["workers"], pin_memory=device.type == "cuda")
        else:
            loader = DecodingLoader(train_set, p["batch"], BatchDecoder(
                device, size, mean, std, mode="train",
                generator=torch.Generator().manual_seed(0)), sampler=sampler,
                workers=p["workers"])
        t_train, _ = timed(lambda: train_pass(model, loader, labels, opt, settings, device,
                                              DistInfo(), torch.Generator().manual_seed(0)),
                           device)
        return t_feat, t_train

    n = len(cluster_set)
    small = max(p["batch"], n // 4)
    passes(small)  # warm-up
    t_small, t_full = passes(small), passes(n)
    # the marginal rate; where the difference drowns in noise (tiny CPU sizes: under a
    # fifth of the pass), the plain rate of the full pass
    return tuple((n - small) / (b - a) if b - a > 0.2 * b else n / b  # type: ignore[return-value]
                 for a, b in zip(t_small, t_full, strict=True))


def pipeline_rows(p: dict[str, Any], device: torch.device, folder: Path) -> list[Row]:
    """Both passes through the device pipeline against the PIL pipeline, same files."""
    pil = pass_speeds(folder, p, device, "pil")
    dev = pass_speeds(folder, p, device, "device")
    what = (f"{p['jpegs']} JPEGs {p['jpeg_w']}x{p['jpeg_h']} on disk -> {p['arch']} "
            f"{p['size']}px, {p['workers']} workers")
    rows = [Row(benchmark=NAME, what=f"(b) end-to-end {label} pass, {what}", dcbench=d,
                unit="img/s", baseline_name="PIL in DataLoader workers", baseline=b,
                notes="steady state after a warm-up; device pipeline: one byte buffer per batch "
                "from the workers, decode_jpeg on the device, roi_align crops, prefetch thread")
            for label, d, b in (("clustering", dev[0], pil[0]), ("training", dev[1], pil[1]))]
    return rows


# ---- (c) clustering ----------------------------------------------------------------------
def planted(n: int, d: int, k_true: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """n x d L2-normalised rows around k_true random centres, generated on `device`."""
    g = torch.Generator(device=device).manual_seed(seed)
    centers = torch.randn(k_true, d, generator=g, device=device)
    out = torch.empty(n, d, device=device)
    for s in range(0, n, 262144):
        m = min(262144, n - s)
        ids = torch.randint(0, k_true, (m,), generator=g, device=device)
        out[s : s + m] = centers[ids] + 0.7 * torch.randn(m, d, generator=g, device=device)
    return out / out.norm(dim=1, keepdim=True)


def clustering_rows(p: dict[str, Any], device: torch.device) -> list[Row]:
    """k-means (torch vs faiss), PCA-whitening and PIC, each next to its baseline (these are
    comparisons; the epoch formula of (d) uses only its own measured phases)."""
    rows: list[Row] = []
    torch_name = "torch-cuda" if device.type == "cuda" else "torch-cpu"
    k, dim = p["k"], p["dim"]
    x = planted(p["rows"], dim, k, device)
    t_big, (labels, _) = timed(lambda: kmeans(x, k, 20, 0, torch_name), device)
    assert np.bincount(labels, minlength=k).min() >= 1
    rows.append(Row(benchmark=NAME, what=f"(c) k-means {p['rows']} x {dim}, k={k}, 20 it",
                    dcbench=t_big, unit="s",
                    notes=f"{torch_name}, measured at this size; target <= 30 s on one GPU"))
    small = x[: p["faiss_rows"]].contiguous()
    ks = min(k, p["faiss_rows"] // 4)
    t_torch_small, (l_torch, _) = timed(lambda: kmeans(small, ks, 20, 0, torch_name), device)
    if faiss_available():  # optional on the GPU machines (no faiss there)
        small_np = small.cpu().numpy()
        t_faiss, (l_faiss, _) = timed(lambda: kmeans(small_np, ks, 20, 0, "faiss-cpu"), device)
        agree = normalized_mutual_info_score(l_torch, l_faiss)
        rows.append(Row(benchmark=NAME, what=f"(c) k-means {p['faiss_rows']} x {dim}, k={ks}, "
                        "20 it", dcbench=t_torch_small, unit="s", baseline_name="faiss-cpu",
                        baseline=t_faiss, notes=f"{torch_name}; NMI(torch, faiss) {agree:.3f}"))
    if gpu_available():
        t_fg, _ = timed(lambda: kmeans(small_np, ks, 20, 0, "faiss-gpu"), device)
        rows.append(Row(benchmark=NAME, what=f"(c) k-means {p['faiss_rows']} x {dim}, k={ks}",
                        dcbench=t_torch_small, unit="s", baseline_name="faiss-gpu",
                        baseline=t_fg, notes=torch_name))
    # PCA-whitening of 4096-d embeddings on the device (the step before k-means)
    feats = torch.randn(p["pca_rows"], p["pca_in"], device=device)
    t_pca, _ = timed(lambda: whiten_on_device(feats, min(dim, p["pca_in"] // 4), device), device)
    t_pca_cpu, _ = timed(lambda: fit_whitening(feats[: p["pca_rows"] // 4].cpu(),
                                               min(dim, p["pca_in"] // 4)), device)
    rows.append(Row(benchmark=NAME, what=f"(c) PCA-whitening {p['pca_rows']} x {p['pca_in']} "
                    f"-> {min(dim, p['pca_in'] // 4)}", dcbench=t_pca, unit="s",
                    baseline_name="same code on CPU, 1/4 rows x4", baseline=4 * t_pca_cpu,
                    notes=f"features kept on {device.type}"))
    # PIC: torch k-NN graph vs faiss-cpu graph (the power iteration is the same scipy code)
    pic_x = x[: p["pic_rows"]].contiguous()
    t_pic, _ = timed(lambda: run_pic(pic_x, nnn=5, backend=torch_name), device)
    t_knn, _ = timed(lambda: knn_search_torch(pic_x, 5), device)
    t_pic_faiss = None
    if faiss_available():
        pic_np = pic_x.cpu().numpy()
        t_pic_faiss, _ = timed(lambda: run_pic(pic_np, nnn=5, use_gpu=False), device)
    rows.append(Row(benchmark=NAME, what=f"(c) PIC {p['pic_rows']} x {dim}, 5-NN graph",
                    dcbench=t_pic, unit="s",
                    baseline_name="PIC, faiss-cpu graph" if t_pic_faiss else "-",
                    baseline=t_pic_faiss, notes=f"{torch_name} graph {t_knn:.1f} s of it"))
    return rows


# ---- (d) the epoch -----------------------------------------------------------------------
def epoch_rows(p: dict[str, Any], device: torch.device, folder: Path, tmp: Path
               ) -> tuple[list[Row], dict[str, Any]]:
    """The measured phases, the formula's check against a measured whole epoch, and the
    ImageNet epoch from the formula (see `gpu_phases`)."""
    m = measure_epoch(folder, p, device, tmp)
    n1, n2, n3 = m["n"]
    fits = m["fits"]
    rows = [Row(benchmark=NAME, what=f"(d) epoch phase {phase} at n={n2}",
                dcbench=m["phases"]["n2"][phase], unit="s",
                notes=f"{m['phases']['n1'][phase]:.3g} s at n={n1}; fit: fixed "
                f"{fits[phase][0]:.3g} s + {fits[phase][1] * 1e6:.4g} us/img")
            for phase in PHASES]
    rows.append(Row(benchmark=NAME, what=f"(d) whole epoch at n={n3}: formula vs measured",
                    dcbench=m["predicted"], unit="s", baseline_name="measured whole epoch",
                    baseline=m["measured"],
                    notes=f"agreement {m['agreement']:.3f} (must be within 0.85-1.15)"))
    seconds = predict(fits, IMAGENET)
    rows.append(Row(benchmark=NAME, what="(d) ImageNet epoch (1,281,167 images) from the "
                    "measured phases", dcbench=seconds, unit="s",
                    baseline_name="paper (P100, ~35 min)", baseline=PAPER_EPOCH_S,
                    notes=f"{IMAGENET / seconds:.0f} img/s over the epoch; k={p['epoch_k']} "
                    f"in the fit (ImageNet runs k=10,000: see the (c) k-means row); "
                    f"target <= 300 s; numerics {m['numerics']}"))
    return rows, m


def measure(p: dict[str, Any], device: torch.device, parts: str = "abcd",
            sink: Path | None = None) -> tuple[list[Row], dict[str, Any]]:
    """The chosen parts, in order; prints each row as it is measured and appends it to the
    JSON-lines file `sink` (so a run cut short keeps what it measured). Returns the rows
    and the epoch's detailed measurements (phases per size, fits)."""
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    configure_numerics(device, "bf16" if device.type == "cuda" else "fp32")

    def show(new: list[Row]) -> None:
        for r in new:
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
            base = "" if r.baseline is None else f" | {r.baseline_name}: {r.baseline:.4g}"
            print(f"{r.what}: {r.dcbench:.4g} {r.unit}{base} | ratio {ratio} | {r.notes}",
                  file=sys.stderr, flush=True)
            if sink is not None:
                with open(sink, "a", encoding="utf-8") as f:
                    f.write(json.dumps(r.to_dict()) + "\n")
        rows.extend(new)

    with tempfile.TemporaryDirectory() as tmp:
        if "a" in parts:
            show(model_rows(p, device))
            show([fidelity_row(p, device, Path(tmp))])
        folder = write_jpegs(Path(tmp), p) if ("b" in parts or "d" in parts) else None
        if "b" in parts and folder is not None:
            show(pipeline_rows(p, device, folder))
        if "d" in parts and folder is not None:
            new, extra["epoch"] = epoch_rows(p, device, folder, Path(tmp))
            show(new)
    if "c" in parts:
        show(clustering_rows(p, device))
    return rows, extra


def run(quick: bool) -> list[Row]:
    """`dcbench bench` entry: full sizes on a CUDA GPU (quick: tiny), tiny without one."""
    on_gpu = torch.cuda.is_available()
    params = dict(FULL if on_gpu and not quick else TINY)
    return measure(params, torch.device("cuda" if on_gpu else "cpu"))[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(parser, FULL)
    parser.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    parser.add_argument("--rows-jsonl", type=Path, help="append each row here as measured")
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.tiny:
        print("gpu_epoch: no CUDA GPU here: running the tiny CPU sizes", file=sys.stderr)
    params = resolve_sizes(args, FULL, TINY, on_gpu)
    rows, extra = measure(params, torch.device("cuda" if on_gpu else "cpu"), args.parts,
                          args.rows_jsonl)
    report = {"machine": machine(), "params": params, "rows": [r.to_dict() for r in rows],
              **extra}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
