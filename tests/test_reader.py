"""The one reader of input files: tables that remember their lines, on tiny hand-made files.

Line numbers are 1-based file lines; a header is line 1. Also the layer under
it (:mod:`tfrs_recsys.data.input_files`): paths that are not readable files and
bytes that are not text fail on one line naming the file, line and column.
"""

from __future__ import annotations

import errno
import gzip
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data import input_files
from tfrs_recsys.data.reader import (
    ID,
    NUMBER,
    TEXT,
    Dialect,
    read_columns,
    read_header,
    read_parquet,
    read_records,
    shown_value,
)
from tfrs_recsys.data.validation import check_binary
from tfrs_recsys.errors import DatasetNotFoundError, DataValidationError

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


# --- Decoding: every line goes through input_files.decode_line ---------------------------------


def test_latin1_byte_names_line_column_and_byte(tmp_path):
    """The fast reader fails on the byte; the message names line 4 and its column."""
    path = tmp_path / "users.csv"
    path.write_bytes(b"user_id,age\nu1,30\nu2,31\nt\xe9c,32\n")
    error = _error(read_columns, path, CSV, kinds={"user_id": ID})
    assert (error.file, error.line, error.column) == (str(path), 4, "user_id")
    # 0xe9 is the second byte of "t\xe9c,32".
    assert str(error) == (
        f"{path}, line 4, column 'user_id': not valid UTF-8 (byte 0xe9 at position 2 of the "
        "line); save the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("encoding", "problem"),
    [
        ("utf-16", "looks like UTF-16 (it starts with a UTF-16 byte-order mark)"),
        ("utf-16-le", "looks like UTF-16 (a NUL byte between every two characters)"),
        ("utf-16-be", "looks like UTF-16 (a NUL byte between every two characters)"),
        ("utf-32", "looks like UTF-32 (it starts with a UTF-32 byte-order mark)"),
    ],
)
def test_utf16_and_utf32_files_are_named(tmp_path, encoding, problem):
    path = _write(tmp_path, "matrix.csv", "user_id,item_1\nu1,1\n", encoding)
    for read in (read_header, read_columns, read_records):
        error = _error(read, path, CSV)
        assert (error.line, error.problem) == (1, f"{problem}; save the file as UTF-8")


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    plain = _write(tmp_path, "a.csv", "id,n\nx,1\n")
    marked = _write(tmp_path, "b.csv", "\ufeffid,n\nx,1\n")
    for read in (read_columns, read_records):
        assert read(marked, CSV).frame.equals(read(plain, CSV).frame)


@pytest.mark.parametrize("read", [read_columns, read_records], ids=["columns", "records"])
def test_nul_byte_names_line_and_column(tmp_path, read):
    """pandas would keep the NUL inside the value; the reader refuses it."""
    path = tmp_path / "users.csv"
    path.write_bytes(b"user_id,job\nu1,arts\nu2,ar\x00ts\n")
    error = _error(read, path, CSV)
    assert (error.line, error.column) == (3, "job")
    assert error.problem.startswith("has a NUL byte at position 6 of the line (a binary file?)")


def test_binary_file_is_named_on_line_1(tmp_path):
    path = tmp_path / "matrix.csv"
    path.write_bytes(bytes(range(256)))
    error = _error(read_header, path, CSV)
    assert error.line == 1 and "NUL byte at position 1" in error.problem


def test_carriage_return_line_endings_are_explained(tmp_path):
    path = _write(tmp_path, "x.csv", "a,b\r1,2\r")
    error = _error(read_records, path, CSV)
    assert error.line == 1 and "seems to end its lines with \\r only" in error.problem


def test_crlf_line_endings_read_like_lf(tmp_path):
    lf = _write(tmp_path, "a.csv", 'id,text\nx,"a, b"\ny,c\n')
    crlf = _write(tmp_path, "b.csv", 'id,text\r\nx,"a, b"\r\ny,c\r\n')
    assert read_columns(crlf, CSV).frame.equals(read_columns(lf, CSV).frame)
    assert read_records(crlf, CSV).frame.equals(read_records(lf, CSV).frame)


def test_fields_longer_than_the_csv_module_default_are_read(tmp_path):
    """The csv module stops at 128 KiB per field by default; pandas does not."""
    text = "x" * 200_000
    path = _write(tmp_path, "items.csv", f'id,text\n1,"{text}"\n')
    assert read_records(path, CSV).frame["text"].tolist() == [text]


def test_repeated_required_column_is_an_error(tmp_path):
    path = _write(tmp_path, "users.csv", "user_id,age,age\nu1,3,4\n")
    for read in (read_columns, read_records):
        error = _error(read, path, CSV, required=["user_id", "age"])
        assert (error.line, error.column) == (1, "age")
        assert "names column 'age' more than once (fields 2, 3)" in error.problem


def test_long_values_are_shortened_in_messages():
    assert shown_value("x" * 100) == repr("x" * 60) + "... (100 characters)"
    assert shown_value(np.int64(2)) == "2"


# --- Files that are not readable regular files --------------------------------------------------


def _directory(path: Path) -> None:
    path.mkdir()


def _link_loop(path: Path) -> None:
    path.symlink_to(path.name)


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.csv")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_directory, "is a directory (expected a file)"),
        (_link_loop, "is a symbolic link loop (expected a file)"),
        (_dangling_link, "is a symbolic link to "),
    ],
    ids=["directory", "link-loop", "dangling-link"],
)
@pytest.mark.parametrize("read", [read_columns, read_records, read_header, read_parquet])
def test_a_path_that_is_not_a_file_is_named(tmp_path, make, problem, read):
    path = tmp_path / "users.csv"
    make(path)
    args = (path,) if read is read_parquet else (path, CSV)
    error = _error(read, *args)
    assert error.file == str(path) and error.line is None
    assert error.problem.startswith(problem)


def test_missing_file_is_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        read_columns(tmp_path / "nope.csv", CSV)


def test_unreadable_file_is_named(tmp_path, monkeypatch):
    path = _write(tmp_path, "users.csv", "a,b\n1,2\n")
    if os.geteuid() == 0:  # root reads whatever the mode says: inject the refusal
        monkeypatch.setattr(input_files.os, "access", lambda *_: False)
    else:
        path.chmod(0)
    error = _error(read_columns, path, CSV)
    assert (error.file, error.problem) == (
        str(path),
        "permission denied (make the file readable, e.g. chmod u+r)",
    )


def test_os_error_while_parsing_is_named(tmp_path, monkeypatch):
    """An error of the disk while pandas reads becomes one line naming the file."""
    path = _write(tmp_path, "users.csv", "a,b\n1,2\n")

    def failing_read_csv(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(pd, "read_csv", failing_read_csv)
    error = _error(read_columns, path, CSV)
    assert (error.file, error.problem) == (str(path), "cannot read the file: Input/output error")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (gzip.compress(b"a,b\n1,2\n" * 100)[:30], "the compressed file is truncated or corrupt"),
        (b"not gzip at all", "not a valid gzip file"),
    ],
    ids=["truncated", "not-gzip"],
)
def test_broken_gzip_is_named(tmp_path, data, problem):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(data)
    for read in (read_columns, read_records):
        error = _error(read, path, CSV)
        assert error.file == str(path) and error.problem.startswith(problem)


# --- Warnings -----------------------------------------------------------------------------------


def test_mixed_types_print_no_pandas_warning(tmp_path):
    """pandas reads big files in chunks and warns (DtypeWarning) when a column's chunks
    disagree; the bad cell is reported by the checks instead, on one line."""
    path = tmp_path / "matrix.csv"
    path.write_bytes(b"user_id,item_1\n" + b"u,0\n" * 300_000 + b"v,yes\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_columns(path, CSV, kinds={"user_id": ID})
        error = _error(check_binary, table, ["item_1"])
    assert caught == []
    assert (error.line, error.column, error.problem) == (
        300_002,
        "item_1",
        "expected 0 or 1, got 'yes'",
    )


# --- Through the command line -------------------------------------------------------------------


def _replace(name: str, data: bytes):
    def corrupt(directory: Path) -> None:
        (directory / name).write_bytes(data)

    return corrupt


def _not_a_file(name: str, make):
    def corrupt(directory: Path) -> None:
        (directory / name).unlink()
        make(directory / name)

    return corrupt


HOSTILE_FILES = {
    "matrix-utf16": (
        _replace(
            "user_product_rating_matrix.csv", "user_id,item_0001\ntec_0001,1\n".encode("utf-16")
        ),
        "user_product_rating_matrix.csv, line 1: looks like UTF-16",
    ),
    "matrix-binary": (
        _replace("user_product_rating_matrix.csv", bytes(range(256)) * 4),
        "user_product_rating_matrix.csv, line 1: has a NUL byte",
    ),
    "users-latin1": (
        _replace(
            "users.csv",
            b"user_id,age,profession,personality\ntec_0001,30,arts,x\nbud_0001,25,arts,y\n"
            b"cr\xe9_0001,41,arts,z\n",
        ),
        "users.csv, line 4, column 'user_id': not valid UTF-8 (byte 0xe9 at position 3 of the "
        "line); save the file as UTF-8",
    ),
    "matrix-yes": (
        _replace(
            "user_product_rating_matrix.csv",
            b"user_id,item_0001,item_0002,item_0003\ntec_0001,1,0,0\nbud_0001,0,yes,1\n",
        ),
        "user_product_rating_matrix.csv, line 3, column 'item_0002': expected 0 or 1, got 'yes'",
    ),
    "users-empty": (_replace("users.csv", b""), "users.csv: the file is empty"),
    "items-header-only": (
        _replace("items.csv", b"item_id,product_type,description,price,features\n"),
        "items.csv: the file has a header but no data rows",
    ),
    "matrix-directory": (
        _not_a_file("user_product_rating_matrix.csv", _directory),
        "user_product_rating_matrix.csv: is a directory (expected a file)",
    ),
    "users-link-loop": (
        _not_a_file("users.csv", _link_loop),
        "users.csv: is a symbolic link loop (expected a file)",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_cli_reports_a_bad_file_on_one_line(make_tech_dir, capsys, case):
    from tfrs_recsys.cli import main

    corrupt, expected = HOSTILE_FILES[case]
    directory = make_tech_dir()
    corrupt(directory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(["inspect-data", str(directory)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err and caught == []
    assert err.startswith(f"tfrs-recsys: error: {directory}{os.sep}")
    assert expected in err
