"""The seed notebooks' sklearn preprocessing (LabelEncoder, MinMaxScaler), in numpy."""

from __future__ import annotations

import numpy as np

__all__ = ["label_codes", "min_max_scale"]


def label_codes(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """LabelEncoder codes per table row: sorted distinct ids of ``rows`` -> 0..n-1."""
    seen = np.unique(rows)
    ordered = seen[np.argsort(ids[seen].astype(str), kind="stable")]
    codes = np.full(len(ids), -1, dtype=np.int64)
    codes[ordered] = np.arange(len(ordered))
    return codes


def min_max_scale(values: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
    """MinMaxScaler: ``values`` scaled by the min and max of ``fitted_on`` (0 if constant)."""
    low, high = float(fitted_on.min()), float(fitted_on.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)
