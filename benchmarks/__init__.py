"""dcbench's performance benchmarks: each one measures dcbench against a named baseline.

Run them all with `python -m benchmarks [--quick] [--only NAME] [--output FILE]` or
`dcbench bench ...` (the same runner, `dcbench.cli.bench`); the result is one markdown table
(benchmark, what, dcbench figure, baseline, baseline figure, unit, ratio, notes) under a
line describing the machine.

The contract for a benchmark module (every module in this folder except `common` and
`__main__` that defines `run`):

    from benchmarks.common import Row

    def run(quick: bool) -> list[Row]:
        '''quick=True: CI-sized inputs, a few seconds; False: the README's sizes.'''
        ...
        return [Row(benchmark="mine", what="thing, N=1000", dcbench=1.2, unit="s",
                    baseline_name="scikit-learn X", baseline=3.4, notes="...")]

`Row` fields are keyword-only and figures are numbers. `Row.ratio` is computed, not passed:
the factor by which dcbench is better than the baseline (baseline/dcbench for times and
memory, dcbench/baseline for throughputs; the higher-is-better units are listed in
`common.HIGHER_IS_BETTER`, e.g. `img/s`). Use the defaults `baseline_name="-"`,
`baseline=None` for an absolute figure. Seed every RNG and measure dcbench and its baseline on
the same inputs in the same run (memory: in fresh processes, see `common.step_memory`).
Helpers in `common`: `timeit`, `matmul_peak_gflops`, `step_memory`, `machine`.
"""
