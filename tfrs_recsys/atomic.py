"""Atomic writes: the one mechanism every output of the package goes through.

Outputs (generated datasets, run directories, exported model versions, and
single files such as ``config.toml``, ``metrics.json`` or ``models.config``)
are written into a hidden temporary sibling and renamed into place only when
complete, so a failure or a kill never leaves a half-written output behind and
an existing output is replaced only by a complete one.

Staging names are ``.NAME.tmp-<pid>-<random>`` (``NAME`` the target's name,
``pid`` the writing process). Before writing, every function here removes the
staging siblings of the same target whose process is gone (a killed command),
so re-running a killed command is its recovery and leaves no debris.

- :func:`atomic_file`: a context yielding a temporary path that becomes the file;
- :func:`write_text_atomic`, :func:`write_bytes_atomic`, :func:`write_json_atomic`;
- :func:`atomic_directory`: the same for a whole directory;
- :func:`scratch_directory`: a private work directory next to a target, removed after;
- :func:`staging_path`: the hidden sibling name used by all of them;
- :func:`remove_stale_staging`: the clean-up of staging left by dead processes;
- :func:`file_lock`: an exclusive lock between processes that share a cache
  (build once, the others wait and read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfrs_recsys.errors import ConfigError

logger = logging.getLogger(__name__)

STAGING_MARK = ".tmp-"
# The backup of a replaced directory, between the two renames of replace_directory.
_BACKUP_TAG = "old"


def _staging_prefix(target: Path) -> str:
    return f".{target.name}{STAGING_MARK}"


def staging_path(target: Path, *, tag: str = "") -> Path:
    """A hidden, unique sibling of ``target``: ``.NAME.tmp-<pid>-<random>``.

    Args:
        target: The output the staging path stands in for.
        tag: An optional word put before the random part (``.NAME.tmp-<pid>-<tag>-<random>``).
    """
    target = Path(target)
    middle = f"{tag}-" if tag else ""
    return target.with_name(
        f"{_staging_prefix(target)}{os.getpid()}-{middle}{uuid.uuid4().hex[:12]}"
    )


def staging_target(path: Path) -> Path:
    """The output a staging path stands for (``path`` itself if it is not one).

    Every component of ``path`` named ``.NAME.tmp-...`` becomes ``NAME``, so
    ``out/.ds.tmp-12-ab/users.csv`` gives ``out/ds/users.csv``: the name a user knows.
    """
    parts = []
    for part in Path(path).parts:
        if part.startswith(".") and STAGING_MARK in part[1:]:
            part = part[1:].split(STAGING_MARK, 1)[0] or part
        parts.append(part)
    return Path(*parts) if parts else Path(path)


def _staging_pid(name: str, prefix: str) -> int | None:
    """The pid of a staging name ``PREFIX<pid>-...``, or None if it has none."""
    head, dash, _ = name[len(prefix) :].partition("-")
    if not dash or not head.isdigit() or len(head) > 9:
        return None
    return int(head)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or not a pid at all): leave it alone
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, PermissionError, IsADirectoryError):
            os.unlink(path)


def remove_stale_staging(target: Path) -> list[Path]:
    """Removes the staging siblings of ``target`` whose writing process is gone.

    A killed command leaves its ``.NAME.tmp-<pid>-*`` staging behind; this
    removes those of dead processes (staging of live processes, ours included,
    is left alone). If a kill came between the two renames of
    :func:`replace_directory`, so that ``target`` is missing and its backup is
    there, the backup is renamed back to ``target`` instead: the state before
    the killed command. Errors of the clean-up itself are ignored.

    Returns:
        The staging paths removed or restored.
    """
    target = Path(target)
    prefix = _staging_prefix(target)
    try:
        with os.scandir(target.parent) as entries:
            names = sorted(entry.name for entry in entries if entry.name.startswith(prefix))
    except OSError:
        return []
    cleaned = []
    for name in names:
        pid = _staging_pid(name, prefix)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        path = target.parent / name
        is_backup = name[len(prefix) :].split("-")[1:2] == [_BACKUP_TAG]
        if is_backup and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(path, target)
                logger.info("restored %s from the backup %s of a killed command", target, name)
                cleaned.append(path)
                continue
        _remove(path)
        logger.info("removed %s, left by a killed process (pid %d)", path, pid)
        cleaned.append(path)
    return cleaned


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yields a temporary sibling path; on success it is renamed to ``target``.

    The caller writes the temporary path (any way it likes). On an exception
    inside the block the temporary file is removed and ``target`` is left as
    it was; ``target``'s directory must exist.
    """
    target = Path(target)
    remove_stale_staging(target)
    staging = staging_path(target)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def write_bytes_atomic(target: Path, data: bytes) -> Path:
    """Writes ``data`` to ``target`` atomically; returns ``target``."""
    with atomic_file(target) as staging:
        with open(staging, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(target)


def write_text_atomic(target: Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``target`` atomically; returns ``target``."""
    return write_bytes_atomic(target, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(target: Path, data: Any) -> Path:
    """Writes ``data`` as indented JSON (numpy scalars and arrays allowed) atomically."""
    return write_text_atomic(target, json.dumps(data, indent=2, default=_json_default) + "\n")


def check_writable_target(target: Path, *, overwrite: bool) -> None:
    """Fails early if ``target`` exists and must not be replaced, or has no name of its own.

    ``.``, ``..``, ``/`` or a path ending in them name no new directory (and would
    replace the current directory or a parent of it): a ConfigError.
    """
    target = Path(target)
    if target.name in ("", ".", ".."):
        raise ConfigError(
            f"{target}: names no new directory; name the directory to write, e.g. ./out"
        )
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ConfigError(f"{target}: exists and is not empty (pass --force to replace it)")


def _make_staging_directory(target: Path) -> Path:
    """Creates a new staging directory of ``target`` (usual permissions) and returns it."""
    staging = staging_path(target)
    umask = os.umask(0)
    os.umask(umask)
    os.mkdir(staging, 0o777 & ~umask)
    return staging


@contextlib.contextmanager
def scratch_directory(target: Path) -> Iterator[Path]:
    """A private work directory next to ``target`` (a staging name), removed after the block.

    For downloads and other intermediate files of an output: a killed process's
    scratch directory is stale staging of ``target``, removed by the next run.
    The parent directory of ``target`` is created if missing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    scratch = _make_staging_directory(target)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary directory that becomes ``target`` on success.

    Args:
        target: The final directory.
        overwrite: Replace an existing non-empty ``target``; otherwise that is
            a ConfigError (raised before anything is written).

    On an exception inside the block the temporary directory is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    remove_stale_staging(target)
    check_writable_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_staging_directory(target)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        replace_directory(staging, target)
    except BaseException:  # e.g. another process renamed its own copy first
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(source: Path, target: Path) -> None:
    """Renames ``source`` to ``target``, replacing an existing ``target``.

    The old ``target`` is first renamed to a backup (a staging name of
    ``target``), so that a kill between the two renames is undone by
    :func:`remove_stale_staging`.
    """
    if not target.exists():
        os.rename(source, target)
        return
    backup = staging_path(target, tag=_BACKUP_TAG)
    os.rename(target, backup)
    try:
        os.rename(source, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``path`` (created if missing) for the block.

    Processes (and threads: each call opens the file anew) that share a cache
    directory take it before they build something there, and look again,
    under the lock, whether another one has built it meanwhile. The kernel
    releases the lock when its holder dies, so a killed process never leaves
    the others waiting.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
