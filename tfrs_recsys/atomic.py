"""Atomic writes: the one mechanism every output of the package goes through.

Outputs (generated datasets, run directories, exported model versions, and
single files such as ``config.toml``, ``metrics.json`` or ``models.config``)
are written into a hidden temporary sibling (``.NAME.tmp-<random>``) and
renamed into place only when complete, so a failure or a kill never leaves a
half-written output behind and an existing output is replaced only by a
complete one.

- :func:`atomic_file`: a context yielding a temporary path that becomes the file;
- :func:`write_text_atomic`, :func:`write_bytes_atomic`, :func:`write_json_atomic`;
- :func:`atomic_directory`: the same for a whole directory;
- :func:`staging_path`: the hidden sibling name used by all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfrs_recsys.errors import ConfigError

STAGING_MARK = ".tmp-"


def staging_path(target: Path) -> Path:
    """A hidden, unique sibling of ``target``: ``.NAME.tmp-<random>``."""
    target = Path(target)
    return target.with_name(f".{target.name}{STAGING_MARK}{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yields a temporary sibling path; on success it is renamed to ``target``.

    The caller writes the temporary path (any way it likes). On an exception
    inside the block the temporary file is removed and ``target`` is left as
    it was; ``target``'s directory must exist.
    """
    target = Path(target)
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
    """Fails early if ``target`` exists and must not be replaced."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ConfigError(f"{target}: exists and is not empty (pass --force to replace it)")


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
    check_writable_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARK}", dir=target.parent))
    # mkdtemp makes the directory private (0700); give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
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
    """Renames ``source`` to ``target``, replacing an existing ``target``."""
    if not target.exists():
        os.rename(source, target)
        return
    backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, backup)
    try:
        os.rename(source, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
