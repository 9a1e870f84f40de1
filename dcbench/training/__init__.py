"""Layer 5, DeepCluster training (thesis chapters 3-4, official main.py), with the official
bugs fixed or behind named switches.

Modules: `config` (TrainConfig + shipped recipes), `embeddings` (sharded embedding
extraction for clustering), `train_pass` (one epoch of SGD, SGT), `deepcluster` (the
resumable loop, `train`), `rundir` (atomic run directory). Clustering itself lives in
`dcbench.clustering`; the `dcbench train` command in `dcbench.cli.train`.
"""
