"""Layer 1, data: image folders and list files with robust decoding, VOC readers, the
protocol transforms, the uniform-over-clusters sampler, and built-in synthetic datasets.

Modules: `folders` (ImageFolderDataset, ListFileDataset, find_dataset), `decode`, `loader`
(make_loader, Batch, DecodeReport), `transforms`, `samplers`, `voc`, `synthetic` (+
`synthetic_voc`, `shapes`), `check` (+ `voc_check`, `check_report`). The `dcbench data`
command lives in `dcbench.cli.data`.
"""
