"""`dcbench eval`'s plan: the phases, the estimated time and the quicker forms, printed
before a run starts (and all that `--dry-run` does)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dcbench.cli.eval_dist import launched_processes
from dcbench.data import transforms as T
from dcbench.data.pipeline_choice import explain_input_pipeline
from dcbench.engine.throughput import seconds_per_image
from dcbench.protocols.plan import dataset_sizes, format_duration, plan_eval, sample_images
from dcbench.protocols.probe.splits import Sizes


def print_plan(proto: Any, args: argparse.Namespace, config: Any, model: Any, device: str,
               quick: list[tuple[str, Any]]) -> None:
    """The run's phases and estimated time (network passes x a rate measured on a few real
    batches here), and the quicker forms of the same command, on stderr."""
    sizes = dataset_sizes(proto.name, args.data, config)  # the protocol's dataset checks
    input_size = int(model.config.get("input_size", 224))
    plan = plan_eval(proto.name, config, sizes, input_size=input_size,
                     processes=launched_processes())
    sz = Sizes.for_model(model)
    batch = 8  # 3 batches: one warm-up, two timed
    rate = seconds_per_image(
        model.to(device), sample_images(args.data, 3 * batch),
        T.center_crop(sz.crop, sz.resize, mean=sz.mean, std=sz.std),
        lambda x: model.forward_features(x, [model.embedding_tap]), device=device,
        batch_size=batch)
    print(f"plan: {proto.name}, schedule {args.schedule}"
          + (" (whole run; finished parts are skipped)" if args.resume else ""), file=sys.stderr)
    print("  input pipeline: " + explain_input_pipeline(
        getattr(config, "input_pipeline", "cpu"), device, gpu_path=False), file=sys.stderr)
    for line in plan.describe(rate):
        print(line, file=sys.stderr)
    if rate is None:
        print("  (too few images to time: no time estimate)", file=sys.stderr)
    else:
        print(f"  rate: {rate * 1000:.2f} ms per image = decode + {sz.crop}-px forward, timed on "
              f"2 batches of {batch} real images after a warm-up batch, on {device}, in one "
              "process (loader workers make a real run faster)", file=sys.stderr)
    for flags, cfg in quick:
        other = plan_eval(proto.name, cfg, sizes, input_size=input_size,
                          processes=launched_processes())
        if other.image_passes >= 0.9 * plan.image_passes:
            continue  # not quicker in network passes (e.g. smoke only trims CPU work)
        when = f"about {format_duration(other.seconds(rate))}" if rate is not None else \
            f"{other.image_passes / max(plan.image_passes, 1):.1%} of the work"
        print(f"  quicker: add {flags}: {when}", file=sys.stderr)
