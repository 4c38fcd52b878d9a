"""The one schema every MovieLens layout maps onto, and the steps they share.

Columns of the schema (see :mod:`tfrs_recsys.data.movielens`), the rating
scales of the formats, the parsing of release years and genre lists, the check
of ``min_rating``, and :func:`assemble`, which checks every rating against the
format's scale and the rating ids against the user and item tables, and keeps
the ratings ``>= min_rating`` as positives.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.reader import ID, NUMBER, Table
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature
from tfrs_recsys.data.validation import (
    RatingScale,
    check_known,
    check_rating_scale,
    check_timestamps,
    check_unique_pairs,
)
from tfrs_recsys.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_MIN_RATING = 4.0
NO_GENRES = "(no genres listed)"
TAG_SEPARATOR = ", "
GENRE_SEPARATOR = "|"

#: ML-100K (``u.data``) and ML-1M (``ratings.dat``): whole stars.
WHOLE_STARS = RatingScale("ML-100K / ML-1M", 1.0, 5.0, 1.0)
#: ml-latest, ml-20m, ml-25m (``ratings.csv``): half stars.
HALF_STARS = RatingScale("ml-latest / ml-20m / ml-25m", 0.5, 5.0, 0.5)

#: Column kinds of a ratings file (:func:`tfrs_recsys.data.reader.read_columns`).
RATING_KINDS: dict[str, str] = {USER_ID: ID, ITEM_ID: ID, "rating": NUMBER, "timestamp": NUMBER}

USER_FEATURES: dict[str, Feature] = {
    USER_ID: Feature(USER_ID, "id"),
    "age": Feature("age", "numeric"),
    "profession": Feature("profession", "categorical"),
    "gender": Feature("gender", "categorical"),
}
ITEM_FEATURES: dict[str, Feature] = {
    ITEM_ID: Feature(ITEM_ID, "id"),
    "title": Feature("title", "text"),
    "genres": Feature("genres", "categorical_list", separator=GENRE_SEPARATOR, as_text=True),
    "tags": Feature("tags", "text"),
    "year": Feature("year", "numeric"),
}

#: ``Toy Story (1995)``, ``Series (2005-2010)``: the year at the end of a title.
YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$")
#: ``01-Jan-1995``, ``1995``: a year at the end of a date or a year field.
YEAR_AT_END = re.compile(r"(\d{4})\s*$")
_MIN_YEAR, _MAX_YEAR = 1800, 2100


def check_min_rating(min_rating: float) -> float:
    """``min_rating`` as a float; a ConfigError if it is not a finite number."""
    try:
        value = float(min_rating)
    except (TypeError, ValueError):
        raise ConfigError(f"min_rating must be a number, got {min_rating!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"min_rating must be a finite number, got {min_rating!r}")
    return value


def pipe_genres(values: pd.Series) -> list[str]:
    """``|``-joined genres with blanks and ``(no genres listed)`` removed."""
    out = []
    for value in values.fillna(""):
        labels = [g.strip() for g in str(value).split(GENRE_SEPARATOR)]
        out.append(GENRE_SEPARATOR.join(g for g in labels if g and g != NO_GENRES))
    return out


def years_from_text(values: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """The year matched by ``pattern`` in each value, NaN where none or implausible."""
    found = values.fillna("").astype(str).str.extract(pattern, expand=False)
    years = pd.to_numeric(found, errors="coerce").astype(np.float64)
    years = years.where((years >= _MIN_YEAR) & (years <= _MAX_YEAR))
    return years.reset_index(drop=True)


def add_year(items: pd.DataFrame, years: pd.Series, file: Path) -> None:
    """Adds ``year``, the median year (rounded down) where it is missing.

    If no year parses at all, the column is left out.
    """
    years = years.reset_index(drop=True)
    missing = int(years.isna().sum())
    if missing == len(years):
        logger.info("%s: no release year parses; leaving out the year column", file)
        return
    if missing:
        median = float(math.floor(years.median()))
        logger.info(
            "%s: %d item(s) without a release year get the median year %d", file, missing, median
        )
        years = years.fillna(median)
    items["year"] = years.to_numpy(dtype=np.float64)


def ids_in_order_of_appearance(ratings: Table, column: str) -> pd.DataFrame:
    """The users (items) of a format without a user (item) file: only their ids."""
    return pd.DataFrame({column: ratings.frame[column].drop_duplicates().to_numpy()})


def assemble(
    name: str,
    directory: Path,
    users: pd.DataFrame,
    items: pd.DataFrame,
    ratings: Table,
    min_rating: float,
    *,
    scale: RatingScale | None,
    user_file: Path | None,
    item_file: Path | None,
    started: float,
) -> RecDataset:
    """The dataset: ratings and ids checked, positives kept.

    Args:
        name: The dataset's name.
        directory: Where it was read from.
        users: The user table (schema columns only).
        items: The item table (schema columns only).
        ratings: The ratings (``user_id``, ``item_id``, ``rating``, ``timestamp``).
        min_rating: Ratings ``>= min_rating`` are the positives.
        scale: The ratings the format allows (every rating must be on it);
            None: any finite number.
        user_file: The file of ``users`` (its ids must cover the ratings'),
            or None when ``users`` was built from the ratings.
        item_file: Likewise for ``items``.
        started: ``time.perf_counter()`` when loading began, for the log line.
    """
    if scale is not None:
        check_rating_scale(ratings, "rating", scale)
    check_timestamps(ratings, "timestamp")
    check_unique_pairs(ratings, USER_ID, ITEM_ID)
    if user_file is not None:
        check_known(ratings, USER_ID, users[USER_ID], known_file=user_file, what="user")
    if item_file is not None:
        check_known(ratings, ITEM_ID, items[ITEM_ID], known_file=item_file, what="item")
    frame = ratings.frame
    columns = [USER_ID, ITEM_ID, "rating", "timestamp"]
    interactions = frame.loc[frame["rating"] >= min_rating, columns].reset_index(drop=True)
    interactions = interactions.astype(
        {USER_ID: str, ITEM_ID: str, "rating": np.float64, "timestamp": np.int64}
    )
    users = users.reset_index(drop=True)
    items = items.reset_index(drop=True)
    schema = DatasetSchema(
        name=name,
        user_features=tuple(USER_FEATURES[c] for c in USER_FEATURES if c in users.columns),
        item_features=tuple(ITEM_FEATURES[c] for c in ITEM_FEATURES if c in items.columns),
        user_segment=None,
        timestamp="timestamp",
    )
    dataset = RecDataset(
        schema=schema,
        users=users[list(schema.user_columns)],
        items=items[list(schema.item_columns)],
        interactions=interactions,
        n_raw_interactions=len(frame),
        source=str(directory),
    )
    logger.info(
        "loaded %s from %s: %d users, %d items, %d ratings, %d positives in %.2f s",
        dataset.schema.name,
        dataset.source,
        dataset.n_users,
        dataset.n_items,
        dataset.n_raw_interactions or 0,
        len(dataset.interactions),
        time.perf_counter() - started,
    )
    return dataset
