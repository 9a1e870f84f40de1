"""Peak memory of the clustering step as N grows: dcbench vs scikit-learn PCA + KMeans.

For each N, two fresh Python processes: dcbench's step (`pca_whiten` + `run_kmeans` from
`dcbench.clustering.kmeans`) and scikit-learn's (`PCA(whiten=True, svd_solver="randomized")`,
L2 normalisation, `KMeans(n_init=1)`). Each imports its libraries and draws the same seeded
N x D float32 input first; the peak-RSS mark is then reset (`common.step_memory`), so the
figure is the memory the clustering itself needs on top of the interpreter, the libraries and
the input. A last row gives the growth per 10,000 extra rows.
"""

from __future__ import annotations

from benchmarks.common import Row, step_memory

SEED = 0

_SETUP = """
import numpy as np
{imports}
x = np.random.default_rng({seed}).standard_normal(({n}, {d}), dtype=np.float32)
"""

_SIDES = {
    "dcbench": (
        "from dcbench.clustering.kmeans import pca_whiten, run_kmeans",
        "labels, _ = run_kmeans(pca_whiten(x, {p}), {k}, niter={it}, seed={seed})",
    ),
    "sklearn": (
        "from sklearn.cluster import KMeans\n"
        "from sklearn.decomposition import PCA\n"
        "from sklearn.preprocessing import normalize",
        "y = normalize(PCA({p}, whiten=True, svd_solver='randomized', random_state={seed})"
        ".fit_transform(x))\n"
        "labels = KMeans({k}, n_init=1, max_iter={it}, random_state={seed}).fit_predict(y)",
    ),
}


def measure(side: str, n: int, d: int, p: int, k: int, iters: int) -> tuple[float, float, float]:
    """(MiB the clustering adds, total peak MiB, seconds) for one side in a fresh process."""
    imports, step = _SIDES[side]
    fields = {"n": n, "d": d, "p": p, "k": k, "it": iters, "seed": SEED}
    step = step.format(**fields) + "\nprint('CLUSTERS', len(np.unique(labels)))"
    probe = step_memory(_SETUP.format(imports=imports, **fields), step)
    clusters = int(next(ln.split()[1] for ln in probe.stdout.splitlines()
                        if ln.startswith("CLUSTERS")))
    if clusters < 2:
        raise RuntimeError(f"{side} clustering of N={n} found {clusters} cluster(s)")
    return probe.extra_mib, probe.peak_mib, probe.seconds


def run(quick: bool) -> list[Row]:
    """Clustering-step MiB per N (dcbench vs scikit-learn), then MiB per extra 10k rows."""
    if quick:
        sizes, d, p, k, iters = (2000, 4000), 512, 64, 20, 10
    else:
        sizes, d, p, k, iters = (10_000, 20_000, 40_000, 80_000), 4096, 256, 500, 20
    rows, extra = [], {}
    for n in sizes:
        dc, dc_peak, dc_s = measure("dcbench", n, d, p, k, iters)
        sk, sk_peak, sk_s = measure("sklearn", n, d, p, k, iters)
        extra[n] = (dc, sk)
        input_mib = n * d * 4 / 2**20
        rows.append(Row(
            benchmark="memory", what=f"clustering step peak memory, N={n:,} x {d} -> {p}, k={k}",
            dcbench=dc, unit="MiB",
            baseline_name="scikit-learn PCA(randomized, whiten) + KMeans", baseline=sk,
            notes=f"input {input_mib:.0f} MiB (not counted); process peak {dc_peak:.0f} vs "
            f"{sk_peak:.0f} MiB; step {dc_s:.1f}s vs {sk_s:.1f}s"))
    lo, hi = sizes[0], sizes[-1]
    per = 10_000 / (hi - lo)
    dc_slope = (extra[hi][0] - extra[lo][0]) * per
    sk_slope = (extra[hi][1] - extra[lo][1]) * per
    rows.append(Row(
        benchmark="memory", what=f"growth of that peak per 10,000 more rows (N {lo:,} -> {hi:,})",
        dcbench=dc_slope, unit="MiB", baseline_name="scikit-learn PCA + KMeans",
        baseline=sk_slope,
        notes=f"the input itself adds {10_000 * d * 4 / 2**20:.0f} MiB per 10,000 rows "
        "(not counted)"))
    return rows
