"""Loaders of the MovieLens datasets and of RecBole atomic files.

Every loader returns a :class:`~tfrs_recsys.data.dataset.RecDataset` mapped onto
one schema (:mod:`~tfrs_recsys.data.movielens.mapping`):

- users: ``user_id`` (id) and, where the format has them, ``age`` (numeric),
  ``profession`` (categorical, from the occupation) and ``gender``
  (categorical);
- items: ``item_id`` (id), ``title`` (text), ``genres`` (categorical list joined
  by ``|``, also read by the text encoder), ``tags`` (text; ml-latest formats
  with a ``tags.csv`` only) and ``year`` (numeric release year);
- interactions: ``user_id``, ``item_id``, ``rating`` (float) and ``timestamp``
  (int64) of the ratings ``>= min_rating``, in file order. Lower ratings are
  dropped, not turned into negatives.

Supported layouts (:func:`load_movielens` detects them), one module each:

- ``ml-100k`` (:mod:`.ml100k`): the original ML-100K files ``u.data``,
  ``u.user``, ``u.item``;
- ``ml-1m`` (:mod:`.ml1m`): ``ratings.dat``, ``users.dat``, ``movies.dat``
  (``::``-separated);
- ``ml-latest`` (:mod:`.ml_latest`): ``ratings.csv``, ``movies.csv`` and
  optional ``tags.csv`` (ml-latest-small, ml-latest, ml-20m, ml-25m...);
- ``recbole`` (:mod:`.recbole`): RecBole atomic files ``<name>.inter`` with
  optional ``<name>.user`` and ``<name>.item``.

Decisions worth knowing:

- Ids are kept as the strings found in the files (``"242"``).
- Every rating must be on its format's scale (ML-100K, ML-1M: whole numbers 1
  to 5; ml-latest: 0.5 to 5.0 in steps of 0.5; RecBole: by file stem, see
  :data:`.recbole.RECBOLE_SCALES`), else the load fails naming the line: an
  off-scale rating is a broken file, not a positive.
- ``year`` comes from the release date (ML-100K), the ``(1995)`` at the end of
  the title (ML-1M, ml-latest, ML-100K without a date) or ``release_year``
  (RecBole). Items whose year cannot be parsed get the median year of the
  others (rounded down to a whole year); if no year parses at all the column
  is left out of the schema.
- Genres: the ML-100K ``unknown`` genre flag is kept as the label ``unknown``
  (both in the original and the RecBole files, so the two agree); the
  ml-latest ``(no genres listed)`` becomes an empty string.
- RecBole columns other than ``user_id``, ``item_id``, ``rating``,
  ``timestamp``, ``age``, ``gender``, ``occupation``, ``movie_title``,
  ``release_year`` and ``class`` / ``genre`` are ignored (zip codes, for one).
- Users: every user of the user file; formats without one (ml-latest, RecBole
  without ``.user``) list the users of the ratings in order of first
  appearance, with only ``user_id``. Items: the whole catalog of the item file,
  rated or not.

Files are read by :mod:`tfrs_recsys.data.reader`: big files (ratings, tags)
through pandas' C parser with typed columns, small files (users, items) line by
line; errors name the file, line (1-based) and column.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.movielens.mapping import DEFAULT_MIN_RATING
from tfrs_recsys.data.movielens.ml1m import ML1M_OCCUPATIONS, load_ml1m
from tfrs_recsys.data.movielens.ml100k import ML100K_GENRES, load_ml100k
from tfrs_recsys.data.movielens.ml_latest import load_ml_latest
from tfrs_recsys.data.movielens.recbole import load_recbole
from tfrs_recsys.errors import DatasetNotFoundError

__all__ = [
    "DEFAULT_MIN_RATING",
    "FORMAT_MARKERS",
    "ML1M_OCCUPATIONS",
    "ML100K_GENRES",
    "detect_movielens_format",
    "load_ml1m",
    "load_ml100k",
    "load_ml_latest",
    "load_movielens",
    "load_recbole",
]

logger = logging.getLogger(__name__)

#: Formats recognised by :func:`detect_movielens_format`, with the file that
#: identifies each (checked in this order).
FORMAT_MARKERS: tuple[tuple[str, str], ...] = (
    ("ml-100k", "u.data"),
    ("ml-1m", "ratings.dat"),
    ("ml-latest", "ratings.csv"),
    ("recbole", "*.inter"),
)


def detect_movielens_format(path: str | Path) -> str:
    """Which MovieLens layout a directory holds.

    Args:
        path: A dataset directory (or a RecBole ``.inter`` file).

    Returns:
        ``ml-100k``, ``ml-1m``, ``ml-latest`` or ``recbole`` (see the module
        docstring), from the first marker file found in that order.

    Raises:
        DatasetNotFoundError: The path does not exist or holds none of the
            marker files; the message lists what was looked for.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".inter":
        return "recbole"
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{path}: not a directory (expected a MovieLens dataset directory)"
        )
    for fmt, marker in FORMAT_MARKERS:
        # A marker that is not a readable file is reported by the loader, naming it.
        found = any(path.glob(marker)) if "*" in marker else os.path.lexists(path / marker)
        if found:
            return fmt
    looked_for = ", ".join(f"{marker} ({fmt})" for fmt, marker in FORMAT_MARKERS)
    raise DatasetNotFoundError(
        f"{path}: no MovieLens or RecBole files found; looked for {looked_for}"
    )


def load_movielens(path: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads any supported MovieLens layout, detected from the files present.

    Args:
        path: The dataset directory, or a RecBole ``.inter`` file.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        The dataset; see the module docstring for the columns.

    Raises:
        DatasetNotFoundError: No known layout in ``path``, or a required file
            is missing.
        DataValidationError: A file does not have the expected content.
        ConfigError: ``min_rating`` is not a number, or a directory holds
            several ``.inter`` files.
    """
    path = Path(path)
    fmt = detect_movielens_format(path)
    logger.info("loading %s as %s", path, fmt)
    if fmt == "ml-100k":
        return load_ml100k(path, min_rating=min_rating)
    if fmt == "ml-1m":
        return load_ml1m(path, min_rating=min_rating)
    if fmt == "ml-latest":
        return load_ml_latest(path, min_rating=min_rating)
    if path.is_file():
        return load_recbole(path.parent, name=path.stem, min_rating=min_rating)
    return load_recbole(path, min_rating=min_rating)
