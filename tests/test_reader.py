"""The one reader of input files: tables that remember their lines, on tiny hand-made files.

Line numbers are 1-based file lines; a header is line 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data.reader import (
    ID,
    NUMBER,
    TEXT,
    Dialect,
    read_columns,
    read_header,
    read_parquet,
    read_records,
)
from tfrs_recsys.errors import DataValidationError

CSV = Dialect(sep=",", quoted=True)
TAB = Dialect(sep="\t", header=False)
DAT = Dialect(sep="::", encoding="latin-1", header=False)


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _error(read, *args, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read(*args, **kwargs)
    return info.value


# --- read_columns --------------------------------------------------------------------------------


def test_read_columns_types_renames_and_labels(tmp_path):
    path = _write(tmp_path, "r.csv", "userId,movieId,rating,extra\n007,1,4.5,x\n8,2,3,y\n")
    table = read_columns(
        path,
        CSV,
        columns={"userId": "user_id", "movieId": "item_id", "rating": "rating"},
        kinds={"user_id": ID, "item_id": ID, "rating": NUMBER},
    )
    assert list(table.frame.columns) == ["user_id", "item_id", "rating"]
    assert table.frame["user_id"].tolist() == ["007", "8"]  # ids keep their text
    assert table.frame["rating"].dtype == np.float64
    assert table.frame["rating"].tolist() == [4.5, 3.0]
    assert (table.label("user_id"), table.label("rating")) == ("userId", "rating")
    assert (table.line(0), table.line(1)) == (2, 3)


def test_read_columns_double_colon_fields(tmp_path):
    path = _write(tmp_path, "r.dat", "1::10::5::978300760\n2::20::3::978302109\n", "latin-1")
    kinds = {"u": ID, "i": ID, "r": NUMBER, "t": NUMBER}
    table = read_columns(path, DAT, columns=["u", "i", "r", "t"], kinds=kinds)
    assert table.frame["u"].tolist() == ["1", "2"]
    assert table.frame["i"].tolist() == ["10", "20"]
    assert table.frame["t"].tolist() == [978300760.0, 978302109.0]


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("1\t10\t5\n2\t20\n", 2, None, "expected 3 tab-separated fields, found 2"),
        ("1\t10\t5\n2\t20\t5\t9\n", 2, None, "found 4"),
        ("1\t10\t5\n\t20\t4\n", 2, "u", "empty id"),
        ("1\t10\t5\n2\t20\tgood\n", 2, "r", "expected a number, got 'good'"),
        ("1\t10\t5\n2\t20\tinf\n", 2, "r", "expected a number, got 'inf'"),
        ("1\t10\t5\n\n2\t20\t4\n", 2, None, "blank line"),
        ("\n1\t10\t5\n", 1, None, "blank line"),
    ],
    ids=["short", "long", "empty-id", "not-a-number", "infinite", "blank-between", "blank-first"],
)
def test_read_columns_names_the_first_bad_line(tmp_path, text, line, column, problem):
    path = _write(tmp_path, "u.data", text)
    error = _error(read_columns, path, TAB, columns=["u", "i", "r"], kinds={"u": ID, "r": NUMBER})
    assert (error.file, error.line, error.column) == (str(path), line, column)
    assert problem in str(error)


def test_read_columns_tolerates_trailing_blank_lines(tmp_path):
    path = _write(tmp_path, "u.data", "1\t10\t5\n2\t20\t4\n\n\n")
    assert len(read_columns(path, TAB, columns=["u", "i", "r"])) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "the file is empty"), ("a,b\n", "no data rows"), ("a,b\n\n", "no data rows")],
    ids=["empty", "header-only", "header-and-blank"],
)
def test_read_columns_without_rows(tmp_path, text, problem):
    error = _error(read_columns, _write(tmp_path, "x.csv", text), CSV)
    assert problem in str(error)


def test_read_columns_missing_column_names_line_1(tmp_path):
    path = _write(tmp_path, "x.csv", "a,b\n1,2\n")
    error = _error(read_columns, path, CSV, columns={"a": "a", "c": "c"})
    assert error.line == 1 and "'c'" in str(error) and "'a', 'b'" in str(error)


def test_read_columns_missing_markers(tmp_path):
    """Only empty cells are missing by default; na_values=None adds pandas' list (NA, null...)."""
    path = _write(tmp_path, "x.csv", "a,b\nNA,1\n,2\n")
    assert read_columns(path, CSV).frame["a"].tolist()[0] == "NA"
    pandas_like = Dialect(sep=",", quoted=True, na_values=None)
    assert read_columns(path, pandas_like).frame["a"].isna().tolist() == [True, True]


def test_quoted_records_spanning_lines_report_their_first_line(tmp_path):
    """Record 2 spans lines 3-4, so the record after it starts on line 5."""
    path = _write(tmp_path, "x.csv", 'id,text\n1,one\n2,"two\nlines"\n3,\n')
    table = read_columns(path, CSV, kinds={"id": ID, "text": TEXT})
    assert [table.line(row) for row in range(3)] == [2, 3, 5]


def test_take_keeps_each_rows_line(tmp_path):
    path = _write(tmp_path, "x.csv", "id,keep\na,0\nb,1\nc,0\nd,1\n")
    table = read_columns(path, CSV).take(np.array([False, True, False, True]))
    assert table.frame["id"].tolist() == ["b", "d"]
    assert table.frame.index.tolist() == [0, 1]
    assert [table.line(0), table.line(1)] == [3, 5]


# --- read_records, read_header, read_parquet ----------------------------------------------------


def test_read_records_keeps_colons_inside_double_colon_fields(tmp_path):
    """A title with a ':' is one field of a '::' file (the fast reader would split it)."""
    path = _write(tmp_path, "movies.dat", "260::Star Wars: Episode IV (1977)::Action\n", "latin-1")
    table = read_records(path, DAT, names=["id", "title", "genres"])
    assert table.frame.values.tolist() == [["260", "Star Wars: Episode IV (1977)", "Action"]]


def test_read_records_field_count_and_line(tmp_path):
    path = _write(tmp_path, "u.user", "1|24|M\n2|53\n")
    error = _error(read_records, path, Dialect(sep="|", header=False), names=["id", "age", "g"])
    assert error.line == 2 and "expected 3 '|'-separated fields, found 2" in str(error)


def test_read_records_lines_skip_quoted_line_breaks(tmp_path):
    path = _write(tmp_path, "m.csv", 'id,title\n1,"a\nb"\n2,c\n')
    table = read_records(path, CSV)
    assert table.frame["title"].tolist() == ["a\nb", "c"]
    assert [table.line(0), table.line(1)] == [2, 4]


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\n")
    error = _error(read_records, path, CSV)
    assert (error.line, error.column) == (3, "b")
    assert error.problem == "not valid UTF-8 (byte 0xff at position 3 of the line); " + (
        "save the file as UTF-8"
    )


def test_read_header_strips_a_byte_order_mark_and_spaces(tmp_path):
    path = _write(tmp_path, "x.csv", "\ufeff a , b\n1,2\n")
    assert read_header(path, CSV) == ["a", "b"]
    assert read_header(path, Dialect(sep=",", strip_header=False)) == [" a ", " b"]
    blank = _write(tmp_path, "y.csv", "\n1,2\n")
    assert _error(read_header, blank, CSV).line == 1


def test_read_parquet_requires_columns(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user_id": ["a"], "other": [1]}).to_parquet(path, index=False)
    assert read_parquet(path).line(0) == 1  # Parquet: the 1-based row
    error = _error(read_parquet, path, required=["user_id", "item_id"])
    assert error.line == 1 and "'item_id'" in str(error)
