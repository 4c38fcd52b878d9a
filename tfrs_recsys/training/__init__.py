"""Training runs: config in, run directory out."""
