"""Layer 1, data: image folders and list files with robust decoding, VOC readers, the
protocol transforms, the uniform-over-clusters sampler, and built-in synthetic datasets.

Modules: `folders` (ImageFolderDataset, ListFileDataset, find_dataset), `decode`, `loader`
(make_loader, Batch, DecodeReport), `transforms`, `samplers`, `voc`, `synthetic` (+
`synthetic_voc`, `shapes`, `synthetic_jpeg`), `check` (+ `voc_check`, `check_report`),
`pipeline` (the one input-pipeline entry: `input_pipeline` cpu | gpu | dali, `image_loader`,
`target_loader`; + `crop_plan`, `planned_images`, `planned_targets`, `dali_pipeline`,
`dali_targets`; `gpu_decode`, `gpu_crops`, `prefetch`).
The `dcbench data` command lives in `dcbench.cli.data`.
"""
