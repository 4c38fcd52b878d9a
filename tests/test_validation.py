"""The checks on table values, on hand-made tables.

Every table here is a file with a header on line 1, so frame row ``r`` is on
line ``r + 2`` unless a test says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data.reader import Table
from tfrs_recsys.data.validation import (
    RatingScale,
    check_binary,
    check_choice,
    check_ids,
    check_known,
    check_numeric,
    check_rating_scale,
    check_text,
    check_timestamps,
    optional_file,
    require_files,
)
from tfrs_recsys.errors import DatasetNotFoundError, DataValidationError

FILE = Path("data/users.csv")


def _table(**columns: list) -> Table:
    return Table(FILE, pd.DataFrame(columns), first_line=2)


def _error(check, *args, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        check(*args, **kwargs)
    return info.value


def test_messages_use_the_files_column_name():
    table = _table(user_id=["a", " "])
    table.labels["user_id"] = "userId"
    error = _error(check_ids, table, "user_id")
    assert (error.file, error.line, error.column) == (str(FILE), 3, "userId")
    assert str(error) == "data/users.csv, line 3, column 'userId': empty id"


def test_duplicate_id_names_both_lines():
    error = _error(check_ids, _table(user_id=["a", "b", "a"]), "user_id")
    assert error.line == 4
    assert "duplicate id 'a' (first seen on line 2)" in str(error)


@pytest.mark.parametrize(
    ("values", "line", "problem"),
    [
        (["1", "", "x"], 3, "expected a number, got nothing"),
        (["1", "x", ""], 3, "expected a number, got 'x'"),
        (["1", "1e400"], 3, "expected a finite number, got '1e400'"),
        (["1", "-2.5"], 3, "expected a number >= 0, got -2.5"),
        ([1.0, np.nan], 3, "expected a number, got nothing"),
    ],
    ids=["blank", "text", "infinite", "negative", "nan"],
)
def test_check_numeric_reports_the_first_bad_row(values, line, problem):
    error = _error(check_numeric, _table(age=values), "age")
    assert (error.line, error.column) == (line, "age")
    assert str(error).endswith(problem)


def test_check_numeric_first_bad_row_in_file_order():
    """Row 1 is below the minimum and row 2 is not a number: row 1 (line 3) is reported."""
    error = _error(check_numeric, _table(age=["5", "-1", "x"]), "age")
    assert error.line == 3


def test_check_numeric_returns_float64_with_spaces_allowed():
    values = check_numeric(_table(age=[" 25", "3.5 ", "-1"]), "age", minimum=None)
    assert values.dtype == np.float64
    assert values.tolist() == [25.0, 3.5, -1.0]


def test_check_text_rejects_blank_text():
    error = _error(check_text, _table(title=["ok", "   "]), "title")
    assert (error.line, error.column) == (3, "title")


def test_check_known_names_both_files():
    ratings = Table(Path("u.data"), pd.DataFrame({"user_id": ["1", "9", "8"]}), first_line=1)
    error = _error(
        check_known, ratings, "user_id", pd.Series(["1", "2"]), known_file="u.user", what="user"
    )
    assert (error.file, error.line, error.column) == ("u.data", 2, "user_id")
    assert "user id '9' is not in u.user (2 row(s) refer to unknown users)" in str(error)


def test_check_binary_returns_the_cells():
    cells = check_binary(_table(a=[0, 1], b=["1.0", "0"]), ["a", "b"])
    assert cells.dtype == np.uint8
    assert cells.tolist() == [[0, 1], [1, 0]]


def test_check_binary_reports_the_first_bad_column_first():
    """Column a's bad cell is on line 4, column b's on line 2; columns go in order."""
    table = _table(a=[0, 1, 7], b=[2, 0, 1])
    error = _error(check_binary, table, ["a", "b"])
    assert (error.line, error.column) == (4, "a")
    assert str(error).endswith("expected 0 or 1, got 7")  # the value, not np.int64(7)


def test_check_binary_empty_cell():
    error = _error(check_binary, _table(label=[1.0, np.nan]), ["label"])
    assert str(error).endswith("got an empty cell")


def test_check_choice_strips_and_names_the_value():
    table = _table(flag=[" 1", "0 "])
    assert check_choice(table, "flag", ("0", "1"), expected="0 or 1").tolist() == ["1", "0"]
    table.frame.loc[1, "flag"] = "yes"
    error = _error(check_choice, table, "flag", ("0", "1"), expected="a flag 0 or 1")
    assert error.line == 3 and str(error).endswith("expected a flag 0 or 1, got 'yes'")


def test_check_binary_accepts_numbers_equal_to_0_or_1():
    """Numeric exports write 1.0 and 0.0; they are the cells 1 and 0."""
    cells = check_binary(_table(a=["1.0", "0.0", "1e0", "0"]), ["a"])
    assert cells[:, 0].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0.5", "'0.5'"), ("2", "'2'"), ("nan", "'nan'"), ("yes", "'yes'"), ("-1", "'-1'")],
)
def test_check_binary_rejects_other_values(value, shown):
    error = _error(check_binary, _table(a=["0", "1", value]), ["a"])
    assert (error.line, error.column) == (4, "a")
    assert error.problem == f"expected 0 or 1, got {shown}"


def test_check_binary_rejects_booleans():
    """pandas reads a column of True/False as booleans, which would pass as 1/0."""
    error = _error(check_binary, _table(a=[True, False]), ["a"])
    assert (error.line, error.problem) == (2, "expected 0 or 1, got True")
    error = _error(check_binary, _table(a=[0, 1, False]), ["a"])  # mixed, as an object column
    assert (error.line, error.problem) == (4, "expected 0 or 1, got False")


WHOLE = RatingScale("ML-100K", 1.0, 5.0, 1.0)
HALF = RatingScale("ml-latest", 0.5, 5.0, 0.5)


def test_rating_scales_accept_their_ratings():
    check_rating_scale(_table(rating=[1.0, 2.0, 3.0, 4.0, 5.0]), "rating", WHOLE)
    check_rating_scale(_table(rating=[0.5 * k for k in range(1, 11)]), "rating", HALF)


@pytest.mark.parametrize(
    ("scale", "ratings", "line", "problem"),
    [
        (
            WHOLE,
            [4.0, 7.0],
            3,
            "rating 7 is not on the ML-100K rating scale (whole numbers 1 to 5)",
        ),
        (WHOLE, [0.0, 1.0], 2, "rating 0 is not on"),
        (WHOLE, [4.5], 2, "rating 4.5 is not on"),
        (HALF, [5.0, 6.0], 3, "rating 6 is not on the ml-latest rating scale (0.5 to 5.0 in steps"),
        (HALF, [0.0], 2, "rating 0 is not on"),
        (HALF, [4.25], 2, "rating 4.25 is not on"),
        (HALF, [-1.0], 2, "rating -1 is not on"),
    ],
)
def test_ratings_off_the_scale_are_named(scale, ratings, line, problem):
    error = _error(check_rating_scale, _table(rating=ratings), "rating", scale)
    assert (error.file, error.line, error.column) == (str(FILE), line, "rating")
    assert error.problem.startswith(problem)
    assert error.problem.endswith("; fix or remove the line")


def test_timestamps_must_fit_64_bit_integers():
    check_timestamps(_table(t=[0.0, 978300760.0, 2.0**62]), "t")
    error = _error(check_timestamps, _table(t=[978300760.0, 1e30]), "t")
    assert (error.line, error.column) == (3, "t")
    assert error.problem.startswith("timestamp 1e+30 is out of range")


def test_require_files_names_what_is_wrong(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    (tmp_path / "u.user").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"missing u\.item \(expected the ML files\)"):
        require_files(tmp_path, ["u.data", "u.user", "u.item"], dataset="ML")
    error = _error(require_files, tmp_path, ["u.data", "u.user"], dataset="ML")
    assert (error.file, error.problem) == (
        str(tmp_path / "u.user"),
        "is a directory (expected a file)",
    )
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        require_files(tmp_path / "u.data", ["x"], dataset="ML")


def test_optional_file_must_be_a_file_when_there(tmp_path):
    assert optional_file(tmp_path / "tags.csv") is False
    (tmp_path / "tags.csv").write_text("a\n")
    assert optional_file(tmp_path / "tags.csv") is True
    (tmp_path / "loop.csv").symlink_to("loop.csv")
    error = _error(optional_file, tmp_path / "loop.csv")
    assert error.problem == "is a symbolic link loop (expected a file)"
