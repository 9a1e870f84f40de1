"""Linear probes: `--fast` (cached center-crop features) vs faithful linear-conv, and the
feature-extraction throughput as a fraction of this machine's matmul peak.

1. The same linear-conv run (built-in synthetic data, random-init AlexNet-Sobel-small,
   conv1-conv5, smoke schedule) in faithful mode (augmented crops through the frozen network
   every epoch, 10-crop test) and in fast mode (features extracted once, probes trained on
   tensors, center-crop test): wall time of each and the top-1 gap per layer.
2. Extraction throughput (the work fast mode does once): FLOPs of the network per image
   (torch's FlopCounterMode) x images/s / measured fp32 matmul peak, for dcbench's tap
   extraction (forward to conv5 with five taps + pooling) vs torchvision's plain AlexNet conv
   trunk on the same batch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import Row, matmul_peak_gflops, timeit


def _run_linear_conv(data: Path, fast: bool, epochs: int) -> tuple[float, dict[str, float]]:
    """Wall seconds and val top-1 per layer of one linear-conv run (fresh feature cache)."""
    from dcbench.models import create_backbone
    from dcbench.protocols import get_protocol

    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    proto = get_protocol("linear-conv")
    config = proto.resolve_config(schedule="smoke",
                                  overrides=[f"fast={str(fast).lower()}", f"epochs={epochs}"])
    start = time.perf_counter()
    rows = proto.run(model, data, config, run_id="bench", device="cpu", progress=False,
                     work_dir=None)
    seconds = time.perf_counter() - start
    return seconds, {r.layer: r.value for r in rows if r.split == "val" and r.metric == "top1"}


def fast_vs_faithful(quick: bool) -> list[Row]:
    """Time ratio and accuracy gap of fast vs faithful linear-conv on the built-in data."""
    import os

    from dcbench.data.synthetic import make_classification_set

    per_class, epochs = (16, 2) if quick else (64, 10)
    saved_home = os.environ.get("DCBENCH_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DCBENCH_HOME"] = str(Path(tmp) / "home")  # a cold feature cache
        try:
            data = make_classification_set(Path(tmp) / "data", n_classes=8,
                                           train_per_class=per_class, val_per_class=16, seed=0)
            t_fast, fast = _run_linear_conv(data, True, epochs)
            t_faithful, faithful = _run_linear_conv(data, False, epochs)
        finally:
            if saved_home is None:
                os.environ.pop("DCBENCH_HOME", None)
            else:
                os.environ["DCBENCH_HOME"] = saved_home
    n = 8 * per_class
    rows = [Row(benchmark="probes",
                what=f"linear-conv conv1-5, {n} train / 128 val 64-px images, {epochs} epochs",
                dcbench=t_fast, unit="s", baseline_name="faithful mode (augmented, 10-crop)",
                baseline=t_faithful,
                notes="fast = features extracted once into a cold cache, center-crop test")]
    for layer in fast:
        rows.append(Row(benchmark="probes", what=f"top-1 gap fast - faithful, {layer}",
                        dcbench=fast[layer] - faithful[layer], unit="points",
                        notes=f"fast {fast[layer]:.1f} vs faithful {faithful[layer]:.1f} "
                              "(one seed; 128 val images: +-4 points is noise)"))
    return rows


def _flops_per_image(fn, batch: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(batch)
    return counter.get_total_flops() / batch.shape[0]


def extraction_throughput(quick: bool) -> list[Row]:
    """dcbench tap extraction vs torchvision AlexNet trunk, as % of the matmul peak."""
    import torchvision

    from dcbench.models import create_backbone
    from dcbench.protocols.probe.pooling import model_pool_specs, pool_features

    peak = matmul_peak_gflops(1024 if quick else 2048)
    arch, size = ("alexnet_small", 64) if quick else ("alexnet", 224)
    model = create_backbone({"arch": arch, "sobel": False}, seed=0).eval()
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    specs = model_pool_specs(model, layers, size, "dc2018")
    batch = torch.randn(64 if quick else 32, 3, size, size,
                        generator=torch.Generator().manual_seed(0))

    def ours(x: torch.Tensor) -> list[torch.Tensor]:
        out = model.forward_features(x, layers)
        return [pool_features(out[k], specs[k]) for k in layers]

    trunk = torchvision.models.alexnet(weights=None).features.eval()
    rows = []
    for name, fn in (("dcbench taps conv1-5 + pooling", ours),
                     ("torchvision AlexNet conv trunk", trunk)):
        flops = _flops_per_image(fn, batch)
        with torch.no_grad():
            seconds, _ = timeit(lambda f=fn: f(batch), repeat=3, warmup=1)
        rate = batch.shape[0] / seconds
        rows.append((name, flops, rate, 100.0 * flops * rate / (peak * 1e9)))
    (_, f_ours, r_ours, p_ours), (_, f_tv, r_tv, p_tv) = rows
    return [Row(benchmark="probes",
                what=f"feature extraction, {arch} @{size}px, batch {batch.shape[0]}",
                dcbench=p_ours, unit="% of peak",
                baseline_name="torchvision AlexNet conv trunk, same batch",
                baseline=p_tv,
                notes=f"ours {f_ours / 1e9:.3f} GFLOP/img at {r_ours:.0f} img/s; torchvision "
                      f"{f_tv / 1e9:.3f} GFLOP/img at {r_tv:.0f} img/s; peak {peak:.0f} GFLOP/s")]


def run(quick: bool) -> list[Row]:
    """Both measurements (quick: 128 training images, 2 epochs, the 64-px network)."""
    return fast_vs_faithful(quick) + extraction_throughput(quick)
