"""dcbench/clustering."""
