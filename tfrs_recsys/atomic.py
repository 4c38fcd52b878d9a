"""Atomic creation of output directories.

Outputs (generated datasets, run directories, exported model versions) are
written into a temporary sibling directory and renamed into place only when
complete, so a failure or a kill never leaves a half-written output behind and
an existing output is replaced only by a complete one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from tfrs_recsys.errors import ConfigError


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
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    # mkdtemp makes the directory private (0700); give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, target)


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
