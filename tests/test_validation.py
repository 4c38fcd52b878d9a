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
    check_binary,
    check_choice,
    check_ids,
    check_known,
    check_numeric,
    check_text,
)
from tfrs_recsys.errors import DataValidationError

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
