"""Visualisations of thesis Section 5.3 (and the official visu/ scripts) as PNG figures.

Modules, each with a pure core returning arrays and a `dcbench viz VERB` front-end in
`dcbench.cli.viz`:
- `filters`: first-layer filters, composed with the Sobel front-end for Sobel models
  (`effective_filters(model)`, `filters_image(model)`).
- `neighbors`: k-NN queries on pooled, L2-normalised taps, several models side by side
  (`find_neighbors(models, folder, ...)`, `neighbors_image(...)`).
- `activations`: top images per channel by spatial-mean activation
  (`find_top_activations(model, folder, layer, channels)`, `activations_image(...)`).
- `ascent`: gradient ascent on the input (`gradient_ascent(model, layer, channel, config)`,
  `ascent_figure(...)`).
- `curves`: NMI / losses / cluster statistics from `log.jsonl` (`read_curves`, `curves_figure`).
- `grid` (tiling, PNG encoding) and `tap_stats` (per-image tap statistics) serve them.
"""
