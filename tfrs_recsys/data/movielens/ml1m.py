"""ML-1M: ``ratings.dat``, ``users.dat`` and ``movies.dat`` (``::``-separated)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.movielens.mapping import (
    DEFAULT_MIN_RATING,
    RATING_KINDS,
    WHOLE_STARS,
    YEAR_IN_TITLE,
    add_year,
    assemble,
    check_min_rating,
    pipe_genres,
    years_from_text,
)
from tfrs_recsys.data.reader import Dialect, read_columns, read_records
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_ids, check_numeric, require_files
from tfrs_recsys.errors import DataValidationError

#: Every ML-1M file: ``::``-separated, latin-1, no header.
DAT_DIALECT = Dialect(sep="::", encoding="latin-1", header=False)

#: Occupation codes of ML-1M ``users.dat`` (from the ML-1M README).
ML1M_OCCUPATIONS: dict[int, str] = {
    0: "other or not specified",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}


def load_ml1m(directory: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads ML-1M: ``ratings.dat``, ``users.dat`` and ``movies.dat``.

    Occupation codes become the names of the ML-1M README (``12`` ->
    ``programmer``); ``age`` is the ML-1M age-group code (1, 18, 25...).

    Args:
        directory: The ``ml-1m`` directory.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        Dataset ``movielens-1m``.

    Raises:
        DatasetNotFoundError: A file is missing.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["ratings.dat", "users.dat", "movies.dat"], dataset="MovieLens 1M")

    users = read_records(
        directory / "users.dat",
        DAT_DIALECT,
        names=[USER_ID, "gender", "age", "occupation", "zip_code"],
    )
    check_ids(users, USER_ID)
    codes = check_numeric(users, "occupation", minimum=None)
    known = codes.isin(list(ML1M_OCCUPATIONS)).to_numpy()
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise DataValidationError(
            f"unknown occupation code {users.frame['occupation'].iloc[row]!r} "
            f"(expected an integer 0-{max(ML1M_OCCUPATIONS)})",
            file=users.path,
            line=users.line(row),
            column="occupation",
        )
    users_frame = pd.DataFrame(
        {
            USER_ID: users.frame[USER_ID],
            "age": check_numeric(users, "age", minimum=0.0),
            "profession": codes.astype(int).map(ML1M_OCCUPATIONS).astype(str),
            "gender": users.frame["gender"].str.strip(),
        }
    )

    items = read_records(directory / "movies.dat", DAT_DIALECT, names=[ITEM_ID, "title", "genres"])
    check_ids(items, ITEM_ID)
    titles = items.frame["title"].str.strip()
    items_frame = pd.DataFrame(
        {
            ITEM_ID: items.frame[ITEM_ID],
            "title": titles,
            "genres": pipe_genres(items.frame["genres"]),
        }
    )
    add_year(items_frame, years_from_text(titles, YEAR_IN_TITLE), items.path)

    ratings = read_columns(
        directory / "ratings.dat",
        DAT_DIALECT,
        columns=[USER_ID, ITEM_ID, "rating", "timestamp"],
        kinds=RATING_KINDS,
    )
    return assemble(
        "movielens-1m",
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
