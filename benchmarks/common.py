"""What every benchmark module shares: the `Row` it returns, timing, memory, the machine.

Contract: a benchmark module in `benchmarks/` defines `run(quick: bool) -> list[Row]`.
`quick=True` means CI-sized inputs (seconds, tiny arrays); `quick=False` the sizes quoted in
the README. Every row compares dcbench's figure against a named baseline measured in the same
run on the same inputs; `ratio` says how many times better dcbench is (>1 = dcbench wins)
whatever the unit (see `Row.ratio`).
"""

from __future__ import annotations

import math
import numbers
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: units where a bigger figure is better; any other unit (s, MiB, ...) is lower-is-better
HIGHER_IS_BETTER = frozenset({"img/s", "GFLOP/s", "% of peak", "items/s", "recall", "rows/s"})


@dataclass(frozen=True, kw_only=True)
class Row:
    """One line of the benchmark table.

    Fields are keyword-only (so no figure lands in the wrong column). `benchmark` is the
    module's short name (e.g. `knn_graph`), `what` the measured thing with
    its size, `dcbench`/`baseline` the two figures in `unit`; `baseline_name` names the
    baseline (`-` and `baseline=None` when there is none). `ratio` is derived: the factor
    by which dcbench is better (baseline/dcbench for lower-is-better units, dcbench/baseline
    for higher-is-better ones); None when there is no baseline.
    """

    benchmark: str
    what: str
    dcbench: float
    unit: str
    baseline_name: str = "-"
    baseline: float | None = None
    notes: str = ""
    ratio: float | None = field(init=False)

    def __post_init__(self) -> None:
        figures = [self.dcbench] + ([] if self.baseline is None else [self.baseline])
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in figures):
            raise TypeError(f"Row figures must be numbers, got {self.dcbench!r}, {self.baseline!r}")
        object.__setattr__(self, "dcbench", float(self.dcbench))  # numpy scalars -> float
        if self.baseline is not None:
            object.__setattr__(self, "baseline", float(self.baseline))
        if not (isinstance(self.unit, str) and self.unit):
            raise TypeError(f"Row unit must be a non-empty string, got {self.unit!r}")
        if (self.baseline is None) != (self.baseline_name == "-"):
            raise ValueError("Row: give both baseline_name and baseline, or neither")
        ratio = None
        if self.baseline is not None:
            higher = self.unit in HIGHER_IS_BETTER
            num, den = (self.dcbench, self.baseline) if higher else (self.baseline, self.dcbench)
            ratio = num / den if den else (1.0 if num == 0 else math.inf)
        object.__setattr__(self, "ratio", ratio)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (all fields, ratio included)."""
        return asdict(self)


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], chunksize: int = 32) -> None:
    """Run `fn` over picklable `jobs`: in a process pool (up to 16) when there are more than
    64 of them (writing thousands of benchmark JPEGs), else in this process."""
    workers = max(1, min(16, os.cpu_count() or 1))
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(fn, jobs, chunksize=chunksize))
    else:
        for job in jobs:
            fn(job)


def add_size_args(parser: Any, full: dict[str, Any]) -> None:
    """`--tiny`, `--out` and one `--KEY N` flag per integer size of `full` (a GPU benchmark's
    command line)."""
    parser.add_argument("--tiny", action="store_true", help="CPU-sized inputs (seconds)")
    parser.add_argument("--out", type=Path, help="write rows + machine as JSON here")
    for key, value in full.items():
        if isinstance(value, int):
            parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)


def resolve_sizes(args: Any, full: dict[str, Any], tiny: dict[str, Any], on_gpu: bool
                  ) -> dict[str, Any]:
    """The sizes to run: `tiny` with --tiny or without a GPU, else `full`; flags override."""
    params = dict(tiny if args.tiny or not on_gpu else full)
    params.update({k: getattr(args, k) for k in full if getattr(args, k, None) is not None})
    return params


def timeit(fn: Callable[[], Any], repeat: int = 1, warmup: int = 0) -> tuple[float, Any]:
    """Median wall seconds of `repeat` calls of `fn` after `warmup` calls; also its last value."""
    value = None
    for _ in range(warmup):
        value = fn()
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def matmul_peak_gflops(n: int = 2048, repeat: int = 3) -> float:
    """Measured fp32 matmul throughput (GFLOP/s) of an n^3 torch matmul: the machine's peak.

    Best of `repeat` timed runs after one warm-up, with the current torch thread count; it is
    the denominator of every "% of peak" figure, measured in the same run.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    torch.mm(a, b)
    best = math.inf
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


@dataclass(frozen=True)
class MemoryProbe:
    """Memory of one step run in a fresh process: RSS before it, peak RSS during it (MiB)."""

    before_mib: float
    peak_mib: float
    seconds: float
    stdout: str

    @property
    def extra_mib(self) -> float:
        """What the step itself needed on top of what was resident before it."""
        return max(self.peak_mib - self.before_mib, 0.0)


_PROBE = """
import time

def _status_kib(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(key + " missing from /proc/self/status")

{setup}
with open("/proc/self/clear_refs", "w") as handle:  # reset VmHWM to the current RSS
    handle.write("5")
_before = _status_kib("VmRSS")
_start = time.perf_counter()
{step}
print("MEMPROBE", _before, _status_kib("VmHWM"), time.perf_counter() - _start)
"""


def step_memory(setup: str, step: str, timeout: float = 1800.0) -> MemoryProbe:
    """Run `setup` then `step` (Python source) in a fresh interpreter; measure `step` alone.

    The peak-RSS mark (Linux VmHWM) is reset after `setup`, so the peak belongs to `step`
    and nothing of this process, the imports or the inputs made in `setup` is counted
    twice. Linux only (it reads /proc); raises RuntimeError with the child's stderr on failure.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the memory probe reads /proc/self/status: Linux only")
    script = _PROBE.format(setup=setup, step=step)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{proc.stderr.strip()[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    marker = next(ln for ln in reversed(lines) if ln.startswith("MEMPROBE"))
    _, before, peak, seconds = marker.split()
    out = "\n".join(ln for ln in lines if not ln.startswith("MEMPROBE"))
    return MemoryProbe(float(before) / 1024, float(peak) / 1024, float(seconds), out)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def load_average() -> float | None:
    """The 1-minute load average (how busy the machine was), None where unsupported."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, torch threads, RAM, GPU, versions."""
    import torch

    from dcbench.core.provenance import code_revision, versions

    ram = _ram_gib()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(ram, 1) if ram is not None else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "os": f"{platform.system()} {platform.release()}",
        "load_avg_1m": load_average(),
        "code_revision": code_revision(),
        "versions": versions(),
    }


def short_revision(revision: str) -> str:
    """`abcdef123456+dirty` from a full git sha (with its optional `+dirty`)."""
    sha, _, dirty = revision.partition("+")
    return sha[:12] + (f"+{dirty}" if dirty else "")


def machine_line(info: dict[str, Any]) -> str:
    """One line describing `machine()` for the table's caption."""
    v = info["versions"]
    gpu = info["gpu"] or "no GPU"
    load = info["load_avg_1m"]
    if info.get("load_avg_1m_end") is not None:
        load = f"{load} -> {info['load_avg_1m_end']}"
    return (
        f"{info['cpu']}, {info['cores']} cores, torch threads {info['torch_threads']}, "
        f"{info['ram_gib']} GiB RAM, {gpu}, load {load}; "
        f"dcbench {v['dcbench']}, torch {v['torch']}, torchvision {v['torchvision']}, "
        f"faiss {v['faiss']}, scikit-learn {v['sklearn']}, numpy {v['numpy']}, "
        f"python {v['python']}; code {short_revision(info['code_revision'])}"
    )
