"""Benchmark: DeepCluster's clustering step against scikit-learn, on planted N x 4096 features.

    python benchmarks/clustering.py --sizes 10000 50000 200000 --k 1000
    python benchmarks/clustering.py --sizes 20000 --pic-sizes 5000 20000 --out bench.json

k-means: dcbench `pca_whiten(256)` + `run_kmeans(k, 20 iterations)` versus scikit-learn
`PCA(256, whiten=True)` + L2 normalisation + `KMeans(k, n_init=1, max_iter=20)` (the same
number of Lloyd iterations; sklearn's k-means++ init is part of its cost). PIC: dcbench
`run_pic` (nnn=5, sigma from the data unless --pic-sigma) versus `SpectralClustering(k_true,
affinity="nearest_neighbors")`, both on the same PCA-whitened 256-d features.

Each method runs in a fresh subprocess (so peak memory is its own: ru_maxrss minus the RSS
after loading the data) on the same float32 data (planted clusters: centres in a 64-d latent
space mixed into 4096-d, plus noise). Reported: seconds, time ratio sklearn / dcbench, NMI to
the planted labels, peak extra memory. Results are printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(path: Path, n: int, dim: int, k_true: int, seed: int) -> None:
    """Planted clusters: latent 64-d centres, random mixing to `dim`, Gaussian noise."""
    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.standard_normal((k_true, latent)).astype(np.float32) * 1.5
    mixing = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    truth = rng.integers(0, k_true, n)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 20000):
        rows = truth[start : start + 20000]
        z = centres[rows] + rng.standard_normal((len(rows), latent), dtype=np.float32)
        noise = rng.standard_normal((len(rows), dim), dtype=np.float32) * 0.5
        out[start : start + len(rows)] = z @ mixing + noise + 0.3
    out.flush()
    np.save(path.with_suffix(".truth.npy"), truth)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, data_path: str, k: int, pca: int, seed: int, pic_nnn: int = 5,
           pic_sigma: float = 0.0) -> dict:
    """Run one method on the data file; returns seconds, NMI and peak extra memory."""
    import sklearn.cluster
    import sklearn.decomposition  # noqa: F401
    from sklearn.metrics import normalized_mutual_info_score

    import dcbench.clustering.pic  # noqa: F401

    x = np.load(data_path)  # into RAM: both methods start from an in-memory array
    truth = np.load(Path(data_path).with_suffix(".truth.npy"))
    k_true = len(np.unique(truth))
    base = rss_mb()
    stages: dict[str, float] = {}
    start = time.perf_counter()
    if method == "dcbench-kmeans":
        from dcbench.clustering.kmeans import pca_whiten, run_kmeans

        reduced = pca_whiten(x, pca)
        stages["pca_s"] = time.perf_counter() - start
        labels, _ = run_kmeans(reduced, k, niter=20, seed=seed)
    elif method == "sklearn-kmeans":
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import normalize

        reduced = normalize(PCA(pca, whiten=True, random_state=seed).fit_transform(x))
        stages["pca_s"] = time.perf_counter() - start
        labels = KMeans(k, n_init=1, max_iter=20, random_state=seed).fit_predict(reduced)
    else:
        from dcbench.clustering.kmeans import pca_whiten

        reduced = pca_whiten(x, pca)  # shared preprocessing, not timed
        start = time.perf_counter()
        if method == "dcbench-pic":
            from dcbench.clustering.pic import knn_search, run_pic

            sigma = pic_sigma or float(np.sqrt(np.median(knn_search(reduced, pic_nnn)[0])))
            labels, _ = run_pic(reduced, nnn=pic_nnn, sigma=sigma)
        else:
            from sklearn.cluster import SpectralClustering

            labels = SpectralClustering(k_true, affinity="nearest_neighbors", n_neighbors=10,
                                        random_state=seed).fit_predict(reduced)
    seconds = time.perf_counter() - start
    return {"method": method, "n": len(x), "seconds": seconds,
            "nmi": float(normalized_mutual_info_score(truth, labels)),
            "n_clusters": int(len(np.unique(labels))), "peak_extra_mb": rss_mb() - base,
            **stages}


def run_in_subprocess(method: str, data: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--data-file", str(data),
           "--k", str(args.k), "--pca", str(args.pca), "--pic-nnn", str(args.pic_nnn),
           "--pic-sigma", str(args.pic_sigma),
           "--seed", str(args.seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"method": method, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (also the defaults `run(quick)` starts from)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000, 50000, 200000],
                        help="N for the k-means comparison")
    parser.add_argument("--pic-sizes", type=int, nargs="*", default=[5000, 20000],
                        help="N for the PIC vs spectral comparison")
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--k", type=int, default=1000, help="k-means k")
    parser.add_argument("--k-true", type=int, default=1000, help="planted clusters")
    parser.add_argument("--pca", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pic-nnn", type=int, default=5, help="PIC neighbours (DeepCluster: 5)")
    parser.add_argument("--pic-sigma", type=float, default=0.0,
                        help="PIC kernel width; 0 = sqrt(median squared k-NN distance) of the "
                        "data (DeepCluster's 0.2 underflows every edge on this data)")
    parser.add_argument("--out", type=Path, help="write results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    return parser


def measure(args: argparse.Namespace, echo: bool = True) -> list[dict]:
    """Run every (N, method pair) of the plan, each method in its own subprocess."""
    rows = []
    plan = [(n, ("dcbench-kmeans", "sklearn-kmeans")) for n in args.sizes]
    plan += [(n, ("dcbench-pic", "sklearn-spectral")) for n in args.pic_sizes]
    with tempfile.TemporaryDirectory(prefix="dcbench-bench-") as tmp:
        for n, methods in plan:
            data = Path(tmp) / f"x{n}.npy"
            if not data.exists():
                make_data(data, n, args.dim, min(args.k_true, n // 10), args.seed)
            pair = [run_in_subprocess(m, data, args) for m in methods]
            ours, ref = pair
            if "error" not in ours and "error" not in ref:
                ours["speedup_vs_sklearn"] = ref["seconds"] / ours["seconds"]
            rows += pair
            for r in pair:
                if echo:
                    print(_fmt(r), file=sys.stderr, flush=True)
    return rows


def run(quick: bool) -> list:
    """Suite entry point: k-means step vs scikit-learn and PIC vs SpectralClustering."""
    from benchmarks.common import Row

    sizes = ["--sizes", "3000", "--pic-sizes", "1000", "--dim", "512", "--k", "50",
             "--k-true", "50"] if quick else ["--sizes", "10000", "50000", "200000",
                                              "--pic-sizes", "2000", "5000"]
    args = build_parser().parse_args(sizes)
    results = measure(args, echo=False)
    out = []
    for ours, ref in zip(results[0::2], results[1::2], strict=True):
        if "error" in ours or "error" in ref:
            failure = ours.get("error") or ref.get("error")
            raise RuntimeError(f"clustering benchmark failed: {failure}")
        kmeans = ours["method"] == "dcbench-kmeans"
        what = (f"PCA-whiten {args.dim}->256 + k-means k={args.k}, N={ours['n']:,}" if kmeans
                else f"PIC (nnn=5) on PCA-whitened features, N={ours['n']:,}")
        out.append(Row(
            benchmark="clustering", what=what, dcbench=ours["seconds"], unit="s",
            baseline_name="scikit-learn PCA(whiten) + KMeans" if kmeans
            else "scikit-learn SpectralClustering (k-NN affinity)",
            baseline=ref["seconds"],
            notes=f"NMI to planted truth {ours['nmi']:.3f} vs {ref['nmi']:.3f}; peak extra "
                  f"{ours['peak_extra_mb']:.0f} vs {ref['peak_extra_mb']:.0f} MiB"))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_file, args.k, args.pca, args.seed,
                                args.pic_nnn, args.pic_sigma)))
        return 0
    rows = measure(args)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['method']:18s} FAILED {r['error']}"
    ratio = r.get("speedup_vs_sklearn")
    return (f"{r['method']:18s} N={r['n']:>7d} {r['seconds']:8.1f}s NMI {r['nmi']:.3f} "
            f"clusters {r['n_clusters']:>6d} peak +{r['peak_extra_mb']:7.0f} MiB"
            + (f" (PCA {r['pca_s']:.1f}s)" if "pca_s" in r else "")
            + (f"  speedup x{ratio:.1f}" if ratio else ""))


if __name__ == "__main__":
    sys.exit(main())
