"""Failures of the machine (disk full, no permission, out of memory) said in one line.

The command line's error boundary (:func:`tfrs_recsys.cli.main`) passes every
exception that is not a :class:`~tfrs_recsys.errors.RecsysError` to
:func:`describe`, which returns one line naming the path, what went wrong and
what to do, for:

- ``OSError`` (``PermissionError``, ``FileExistsError``, ``NotADirectoryError``,
  ``IsADirectoryError``, no space, quota, ``File too large``, read-only file
  system, name too long, ...);
- TensorFlow's errors whose message carries such an OS error (TensorFlow writes
  checkpoints and SavedModels itself: ``ResourceExhaustedError: PATH; No space
  left on device``), and its out-of-memory errors;
- ``MemoryError``.

Anything else is a bug, and :func:`describe` returns None for it. Paths inside
a hidden staging directory (:mod:`tfrs_recsys.atomic`) are reported as the
output they stand for.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

from tfrs_recsys.atomic import staging_target

_SPACE = "free some space there (or raise the limit) or write somewhere else"
_ACCESS = "choose a location you can write to, or fix its permissions"

#: What each errno means for the user, and what to do about it.
_MEANING: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", _SPACE),
    errno.EDQUOT: ("disk quota exceeded", _SPACE),
    errno.EFBIG: ("file too large for the file system or the file size limit (ulimit -f)", _SPACE),
    errno.EROFS: ("read-only file system", _ACCESS),
    errno.EACCES: ("permission denied", _ACCESS),
    errno.EPERM: ("operation not permitted (permissions, or an immutable file)", _ACCESS),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path"),
    errno.EISDIR: ("is a directory, where a file was expected", "check the path"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.ENOMEM: ("not enough memory", "try smaller sizes"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n)"),
    errno.EIO: ("input/output error of the device", "check the disk"),
}
_MEMORY = (
    "not enough memory for this command{detail}; try smaller sizes (--users, --items, "
    "train.batch_size) or a machine with more memory"
)
_OOM = re.compile(r"\bOOM\b|out of memory", re.IGNORECASE)


def describe(exc: BaseException, output: str | os.PathLike[str] | None = None) -> str | None:
    """One line for an OS-level failure, or None if ``exc`` is not one.

    Args:
        exc: The exception a command raised.
        output: The output the command was writing (its ``--out``, ``--run-dir``
            or ``--cache``), named when the failing path lies inside it or the
            error names no path.

    Returns:
        ``"PATH: what went wrong (ERRNO); what to do, then run the command again"``,
        or None for an exception that is not about the machine.
    """
    if isinstance(exc, MemoryError):
        detail = f" ({_one_line(str(exc))})" if str(exc) else ""
        return _MEMORY.format(detail=detail)
    if isinstance(exc, BrokenPipeError):
        return "the output was closed before the command finished (EPIPE)"
    if isinstance(exc, OSError):
        return _os_line(exc.errno, exc.strerror or str(exc), exc.filename, output)
    found = _tensorflow_os_error(exc)
    if found is None:
        return None
    code, path, text = found
    if code == errno.ENOMEM:
        return _MEMORY.format(detail=f" ({text})")
    return _os_line(code, text, path, output)


def _os_line(
    code: int | None,
    text: str,
    filename: str | os.PathLike[str] | bytes | None,
    output: str | os.PathLike[str] | None,
) -> str:
    where = _where(filename, output)
    what, todo = _MEANING.get(code or -1, (_one_line(text) or "operating system error", ""))
    if code == errno.EEXIST and filename is not None and os.path.isfile(filename):
        # mkdir of a folder (or of a parent of it) that is a file.
        where, what = _printable(os.fsdecode(filename)), "is a file, where a directory was expected"
    name = errno.errorcode.get(code or -1)
    line = f"{where}: {what}" if where else what
    if name:
        line += f" ({name})"
    if not todo:
        return f"{line}; run again with -v for the details"
    if code == errno.ENOMEM:
        return f"{line}; {todo}"
    return f"{line}; {todo}, then run the command again"


def _where(
    filename: str | os.PathLike[str] | bytes | None, output: str | os.PathLike[str] | None
) -> str | None:
    """The path to name: ``output`` if the failing path lies inside it, else that path."""
    if isinstance(filename, bytes):
        filename = os.fsdecode(filename)
    if filename is None or str(filename) == "":
        return None if output is None else _printable(output)
    path = staging_target(Path(filename))
    if output is not None:
        inside = os.path.abspath(path)
        top = os.path.abspath(output)
        if inside == top or inside.startswith(top.rstrip(os.sep) + os.sep):
            return _printable(output)
    return _printable(path)


def _printable(path: str | os.PathLike[str]) -> str:
    """The path as text on one line: quoted with escapes if it holds control characters."""
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


def _tensorflow_os_error(exc: BaseException) -> tuple[int, str | None, str] | None:
    """``(errno, path or None, message)`` of a TensorFlow error about the machine, or None."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    if errors is None or not isinstance(exc, errors.OpError):
        return None
    message = _one_line(getattr(exc, "message", "") or str(exc))
    for code in _MEANING:
        text = os.strerror(code)
        at = message.find(f"; {text}")
        if at < 0:
            at = message.find(text)
            if at < 0:
                continue
            return code, None, text
        # "... PATH; No space left on device [Op:SaveV2]": PATH is the last word before ";".
        words = message[:at].split()
        return code, (words[-1] if words else None), text
    if isinstance(exc, errors.ResourceExhaustedError) and _OOM.search(message):
        return errno.ENOMEM, None, "TensorFlow could not allocate a tensor"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
