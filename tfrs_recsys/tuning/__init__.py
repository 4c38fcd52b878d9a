"""Tuning of the TFRS models (Optuna) and configs chosen from a dataset's statistics."""
