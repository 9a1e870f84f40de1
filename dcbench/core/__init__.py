"""dcbench/core."""
