"""The original ML-100K files: ``u.data``, ``u.user`` and ``u.item``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.movielens.mapping import (
    DEFAULT_MIN_RATING,
    GENRE_SEPARATOR,
    RATING_KINDS,
    WHOLE_STARS,
    YEAR_AT_END,
    YEAR_IN_TITLE,
    add_year,
    assemble,
    check_min_rating,
    years_from_text,
)
from tfrs_recsys.data.reader import Dialect, read_columns, read_records
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_choice, check_ids, check_numeric, require_files

#: ``u.data``: tab-separated, no header.
RATINGS_DIALECT = Dialect(sep="\t", encoding="latin-1", header=False)
#: ``u.user`` and ``u.item``: ``|``-separated, no header.
TABLE_DIALECT = Dialect(sep="|", encoding="latin-1", header=False)

#: The 19 genre flags of ML-100K ``u.item``, in file order.
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def load_ml100k(directory: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads the original ML-100K files ``u.data``, ``u.user`` and ``u.item``.

    Args:
        directory: The ``ml-100k`` directory.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        Dataset ``movielens-100k`` with users ``age``, ``profession``,
        ``gender`` and items ``title``, ``genres``, ``year``.

    Raises:
        DatasetNotFoundError: A file is missing.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["u.data", "u.user", "u.item"], dataset="MovieLens 100K")

    users = read_records(
        directory / "u.user",
        TABLE_DIALECT,
        names=[USER_ID, "age", "gender", "profession", "zip_code"],
    )
    check_ids(users, USER_ID)
    users_frame = pd.DataFrame(
        {
            USER_ID: users.frame[USER_ID],
            "age": check_numeric(users, "age", minimum=0.0),
            "profession": users.frame["profession"].str.strip(),
            "gender": users.frame["gender"].str.strip(),
        }
    )

    genre_columns = [f"genre:{g}" for g in ML100K_GENRES]
    items = read_records(
        directory / "u.item",
        TABLE_DIALECT,
        names=[ITEM_ID, "title", "release_date", "video_release_date", "imdb_url", *genre_columns],
    )
    items.labels.update(zip(genre_columns, ML100K_GENRES))
    check_ids(items, ITEM_ID)
    flags = np.zeros((len(items), len(ML100K_GENRES)), dtype=bool)
    for j, column in enumerate(genre_columns):
        values = check_choice(items, column, ("0", "1"), expected="a genre flag 0 or 1")
        flags[:, j] = (values == "1").to_numpy()
    names = np.asarray(ML100K_GENRES, dtype=object)
    genres = [GENRE_SEPARATOR.join(names[row]) for row in flags]
    titles = items.frame["title"].str.strip()
    years = years_from_text(items.frame["release_date"], YEAR_AT_END)
    years = years.fillna(years_from_text(titles, YEAR_IN_TITLE))
    items_frame = pd.DataFrame({ITEM_ID: items.frame[ITEM_ID], "title": titles, "genres": genres})
    add_year(items_frame, years, items.path)

    ratings = read_columns(
        directory / "u.data",
        RATINGS_DIALECT,
        columns=[USER_ID, ITEM_ID, "rating", "timestamp"],
        kinds=RATING_KINDS,
    )
    return assemble(
        "movielens-100k",
        directory,
        users_frame,
        items_frame,
        ratings,
        min_rating,
        scale=WHOLE_STARS,
        user_file=users.path,
        item_file=items.path,
        started=started,
    )
