"""The one input check every scorer applies to its ``user_rows``."""

from __future__ import annotations

import numpy as np

from tfrs_recsys.errors import ConfigError

__all__ = ["check_user_rows"]


def check_user_rows(user_rows: np.ndarray, n_users: int | None) -> np.ndarray:
    """``user_rows`` as a ``[batch]`` int64 array.

    Args:
        user_rows: Row indices into ``dataset.users``.
        n_users: Rows accepted are ``0 .. n_users - 1`` (``None``: any row).

    Raises:
        ConfigError: Not 1-D, not integers, or a row outside ``0 .. n_users - 1``.
    """
    rows = np.asarray(user_rows)
    if rows.ndim != 1:
        raise ConfigError(
            f"user_rows must be a 1-D array of user row indices, got shape {rows.shape}"
        )
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise ConfigError(f"user_rows must be integers, got dtype {rows.dtype}")
    rows = rows.astype(np.int64, copy=False)
    if n_users is not None and rows.size and (rows.min() < 0 or rows.max() >= n_users):
        raise ConfigError(
            f"user row {int(rows.min() if rows.min() < 0 else rows.max())} is outside "
            f"0..{n_users - 1}"
        )
    return rows
