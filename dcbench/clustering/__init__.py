"""Layer 3, clustering used by both training and the diagnostics protocols: `kmeans`
(PCA-whitening, k-means with no empty cluster), `pic` (power iteration clustering),
`diagnostics` (NMI, cluster sizes, ratio edge intra-class), `preprocess` (features before
a graph or k-means)."""
