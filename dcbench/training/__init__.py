"""DeepCluster training (thesis chapters 3-4, official main.py), with the official bugs fixed.

Modules: `clustering` (pca_whiten, run_kmeans with no empty cluster), `pic` (run_pic),
`diagnostics` (NMI, cluster sizes, ratio_edge_intra_class), `features` (sharded embedding
extraction), `train_pass` (one epoch of SGD, SGT), `deepcluster` (the resumable loop, `train`),
`config` (TrainConfig + shipped recipes), `rundir` (atomic run directory), `distributed`
(torchrun/DDP helpers), `command` (`dcbench train`). Nothing is imported here, so
`dcbench --help` stays fast.
"""
