"""dcbench/models/sources."""
