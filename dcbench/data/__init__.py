"""Data: image folders and list files with robust decoding, VOC readers, the protocol
transforms, the uniform-over-clusters sampler, and built-in synthetic datasets.

Modules (imported on demand so `import dcbench.data` stays cheap):
`folders` (ImageFolderDataset, ListFileDataset, find_dataset, make_loader, open_image),
`decode`, `loader`, `transforms`, `samplers`, `voc`, `synthetic` (+ `synthetic_voc`,
`shapes`), `check` (+ `voc_check`) and `command` (`dcbench data synth|check`).
"""
