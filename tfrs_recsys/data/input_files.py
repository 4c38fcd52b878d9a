"""Input text files: opened, decoded and split into records, with one-line errors.

The layer under :mod:`tfrs_recsys.data.reader`, and the one place where OS and
encoding errors of the data files become messages:

- :class:`Dialect`: how a format writes its files (separator, encoding,
  quoting, header, which cells count as missing);
- :func:`check_file` / :func:`open_binary` / :func:`reading`: a path that is
  not a readable regular file (missing, a directory, a symbolic link loop or a
  dangling link, a device, permission denied, a corrupt ``.gz``) fails naming
  the file;
- :func:`decode_line`: every line of text is decoded here; bytes that are not
  text in the format's encoding (``byte 0xe9 at position 3 of the line``), NUL
  bytes (a binary file) and UTF-16/32 files fail naming the file, the 1-based
  line (a header is line 1) and, when it can be told, the column, and say how
  to save the file. A UTF-8 byte-order mark is dropped;
- :func:`iter_records`: the records of a file, line by line (``::`` fields may
  hold a ``:``; quoted CSV records may span lines).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import gzip
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from tfrs_recsys.errors import DatasetNotFoundError, DataValidationError

#: ``where(byte position in the line) -> column name or None``, for messages.
ColumnAt = Callable[[int], "str | None"]

_ENCODING_NAMES = {"utf-8": "UTF-8", "latin-1": "latin-1 (or ASCII)"}
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_CHUNK = 1 << 24
_FIELD_LIMIT = 1 << 30


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a format writes its delimited text files.

    Attributes:
        sep: Field separator: one character, or ``::`` (ML-1M).
        encoding: Text encoding; a byte-order mark on line 1 is dropped.
        quoted: CSV quoting (``"a, b"``; a quoted field may span lines).
        header: Whether line 1 names the columns.
        strip_header: Strip spaces around header cells.
        na_values: Cell texts read as missing by :func:`read_columns`; None
            means pandas' default list (``""``, ``NA``, ``NaN``, ``null``...).
    """

    sep: str
    encoding: str = "utf-8"
    quoted: bool = False
    header: bool = True
    strip_header: bool = True
    na_values: tuple[str, ...] | None = ("",)

    @property
    def header_lines(self) -> int:
        return 1 if self.header else 0

    def field_count_problem(self, expected: int, found: int) -> str:
        shown = {"\t": "tab", ",": "comma"}.get(self.sep, repr(self.sep))
        return f"expected {expected} {shown}-separated fields, found {found}"


def _save_as(encoding: str) -> str:
    return f"save the file as {_ENCODING_NAMES.get(encoding.lower(), encoding)}"


def check_file(path: Path) -> None:
    """Fails unless ``path`` is a regular file this process may read.

    Raises:
        DatasetNotFoundError: Nothing at ``path``.
        DataValidationError: A directory, a symbolic link loop or a dangling
            link, a device or FIFO, or a file that cannot be read.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _os_error(path, exc) from None
    if stat.S_ISDIR(mode):
        raise DataValidationError("is a directory (expected a file)", file=path)
    if not stat.S_ISREG(mode):
        raise DataValidationError("is not a regular file (a device or a pipe?)", file=path)
    if not os.access(path, os.R_OK):
        raise _os_error(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))


def _os_error(path: Path, exc: OSError) -> DataValidationError | DatasetNotFoundError:
    """The one-line error for an OS error while opening or reading ``path``."""
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return DataValidationError(
                f"is a symbolic link to {os.readlink(path)!r}, which does not exist", file=path
            )
        return DatasetNotFoundError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return DataValidationError("is a directory (expected a file)", file=path)
    if isinstance(exc, PermissionError):
        return DataValidationError(
            "permission denied (make the file readable, e.g. chmod u+r)", file=path
        )
    if exc.errno == errno.ELOOP:
        return DataValidationError("is a symbolic link loop (expected a file)", file=path)
    if exc.errno == errno.ENOTDIR:
        return DataValidationError("a part of the path is a file, not a directory", file=path)
    if isinstance(exc, gzip.BadGzipFile):
        return DataValidationError(f"not a valid gzip file ({exc})", file=path)
    return DataValidationError(f"cannot read the file: {exc.strerror or exc}", file=path)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turns OS and decompression errors raised inside the block into one-line errors."""
    try:
        yield
    except OSError as exc:
        raise _os_error(Path(path), exc) from exc
    except (EOFError, zlib.error) as exc:  # a truncated or corrupt .gz
        raise DataValidationError(
            f"the compressed file is truncated or corrupt ({exc})", file=path
        ) from exc


def open_binary(path: Path) -> IO[bytes]:
    """Opens a data file for reading bytes (``.gz`` decompressed), after :func:`check_file`."""
    path = Path(path)
    check_file(path)
    with reading(path):
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def iter_raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes with the line ending)``, lines split at ``\\n``."""
    path = Path(path)
    with open_binary(path) as handle, reading(path):
        yield from enumerate(handle, start=1)


def decode_line(
    raw: bytes, encoding: str, *, path: Path, line: int, column_at: ColumnAt | None = None
) -> str:
    """Decodes one line of a text file; a UTF-8 byte-order mark on line 1 is dropped.

    Args:
        raw: The line's bytes.
        encoding: The format's encoding (``utf-8``, ``latin-1``).
        path: The file, for messages.
        line: The 1-based line number.
        column_at: Names the column a byte position of the line falls in.

    Raises:
        DataValidationError: The line is not text in ``encoding``: undecodable
            bytes, a NUL byte, or a UTF-16/32 file; the message names the file,
            line, column (if known) and the byte, and says how to save the file.
    """
    if line == 1:
        for bom, name in _BOMS:
            if raw.startswith(bom):
                raise DataValidationError(
                    f"looks like {name} (it starts with a {name} byte-order mark); "
                    + _save_as(encoding),
                    file=path,
                    line=line,
                )
    nul = raw.find(b"\x00")
    if nul >= 0:
        if line == 1 and _looks_like_utf16(raw):
            problem = "looks like UTF-16 (a NUL byte between every two characters)"
        else:
            problem = f"has a NUL byte at position {nul + 1} of the line (a binary file?)"
        raise DataValidationError(
            f"{problem}; {_save_as(encoding)}",
            file=path,
            line=line,
            column=column_at(nul) if column_at else None,
        )
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        shown = _ENCODING_NAMES.get(encoding.lower(), encoding).split(" ")[0]
        raise DataValidationError(
            f"not valid {shown} (byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of "
            f"the line); {_save_as(encoding)}",
            file=path,
            line=line,
            column=column_at(exc.start) if column_at else None,
        ) from None
    return text.removeprefix("\ufeff") if line == 1 else text


def _looks_like_utf16(raw: bytes) -> bool:
    """Whether NUL bytes alternate with text bytes, as in ASCII text saved as UTF-16."""
    sample = raw[:64].rstrip(b"\r\n\x00")
    return len(sample) >= 4 and (
        all(b == 0 for b in sample[1::2]) or all(b == 0 for b in sample[0::2])
    )


def first_nul(path: Path) -> int | None:
    """The byte offset of the first NUL byte in the (decompressed) file, if any."""
    offset = 0
    with open_binary(path) as handle, reading(path):
        while chunk := handle.read(_CHUNK):
            found = chunk.find(b"\x00")
            if found >= 0:
                return offset + found
            offset += len(chunk)
    return None


def iter_records(
    path: Path,
    dialect: Dialect,
    *,
    strict: bool = True,
    names: Sequence[str] | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` of every record, header included; a blank line gives ``[]``.

    Lines are decoded by :func:`~tfrs_recsys.data.input_files.decode_line`, so
    bytes that are not text in the dialect's encoding fail naming the line and,
    where it can be told, the column.

    Args:
        path: The file.
        dialect: Separator, encoding and quoting.
        strict: Malformed CSV quoting is an error naming the line (else the
            csv module's lenient reading).
        names: Column names of the data records, for messages; default: the
            header cells.
    """
    path = Path(path)
    state = {"line": 0, "start": 1}
    labels: list[str] | None = list(names) if names is not None else None

    def text_lines() -> Iterator[tuple[int, str]]:
        for number, raw in iter_raw_lines(path):
            state["line"] = number
            column_at = None
            data_line = number > dialect.header_lines
            if labels and data_line and (not dialect.quoted or number == state["start"]):
                column_at = _column_at(raw, dialect, labels)
            yield (
                number,
                decode_line(raw, dialect.encoding, path=path, line=number, column_at=column_at),
            )

    if not dialect.quoted:
        for number, text in text_lines():
            text = text.rstrip("\r\n")
            fields = text.split(dialect.sep) if text else []
            if labels is None and number == 1 and dialect.header:
                labels = [f.strip() for f in fields]
            yield number, fields
        return
    _allow_long_fields()
    reader = csv.reader((text for _, text in text_lines()), delimiter=dialect.sep, strict=strict)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataValidationError(_csv_problem(exc), file=path, line=state["line"]) from exc
        if labels is None and state["start"] == 1 and dialect.header:
            labels = [f.strip() for f in fields]
        yield state["start"], fields
        state["start"] = state["line"] + 1


def _column_at(raw: bytes, dialect: Dialect, names: Sequence[str]) -> ColumnAt:
    """Names the column a byte position of a record's first line falls in."""
    sep = dialect.sep.encode(dialect.encoding)

    def column_at(position: int) -> str | None:
        prefix = raw[:position]
        if not dialect.quoted:
            index = prefix.count(sep)
        else:
            index, inside = 0, False
            for byte in prefix:
                if byte == ord('"'):
                    inside = not inside
                elif byte == sep[0] and not inside:
                    index += 1
        return str(names[index]) if index < len(names) else None

    return column_at


def _allow_long_fields() -> None:
    """Lets the csv module read fields as long as pandas does (its default limit is 128 KiB)."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "new-line character seen in unquoted field" in text:
        return (
            "a carriage return (\\r) inside an unquoted field: the file seems to end its "
            "lines with \\r only; save it with \\n (or \\r\\n) line endings"
        )
    if "field larger than field limit" in text:
        return f"a field longer than {_FIELD_LIMIT} characters (an unclosed quote?)"
    return f"malformed CSV: {text}"
