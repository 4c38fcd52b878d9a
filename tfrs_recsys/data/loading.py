"""One entry point that loads any supported dataset by directory or by name."""

from __future__ import annotations

import os
from pathlib import Path

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.techproducts import ITEMS_FILE, USERS_FILE, load_tech_products
from tfrs_recsys.errors import DatasetNotFoundError


def load_dataset(source: str | Path, *, min_rating: float = 4.0) -> RecDataset:
    """Loads a declared dataset, a dataset directory, or a named dataset from the cache.

    Args:
        source: A declared dataset (a ``dataset.toml`` file, or a directory
            holding one: see :mod:`tfrs_recsys.data.declared`), a directory
            holding the tech-products CSV files or any MovieLens / RecBole
            format, or a name known to ``fetch-data`` (``movielens-100k``).
        min_rating: Explicit-rating data keeps ratings >= this as positives
            (a declared dataset's own ``min_rating`` takes precedence).
    """
    from tfrs_recsys.data.declared import declaration_path
    from tfrs_recsys.data.declared_memory import load_declared

    if declaration_path(source) is not None:
        return load_declared(source, min_rating=min_rating)
    path = Path(source)
    if not path.exists():
        from tfrs_recsys.data.fetch import KNOWN_DATASETS, dataset_dir

        if str(source) in KNOWN_DATASETS:
            path = dataset_dir(str(source))
        else:
            raise DatasetNotFoundError(
                f"{source}: no such directory, and not a dataset name ({', '.join(KNOWN_DATASETS)})"
            )
    from tfrs_recsys.data.movielens import load_movielens

    tech_files = [os.path.lexists(path / name) for name in (USERS_FILE, ITEMS_FILE)]
    if all(tech_files) or (any(tech_files) and not _has_movielens_files(path)):
        return load_tech_products(path)  # which names a file that is missing or unreadable
    return load_movielens(path, min_rating=min_rating)


def _has_movielens_files(path: Path) -> bool:
    from tfrs_recsys.data.movielens import detect_movielens_format

    try:
        detect_movielens_format(path)
    except DatasetNotFoundError:
        return False
    return True
