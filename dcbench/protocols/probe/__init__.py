"""Frozen-feature probes' shared pieces: splits, pooled features and their cache, probe heads
and schedules, held-out selection, tensor/image batch sources, whole-network fine-tuning."""
