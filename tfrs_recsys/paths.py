"""Where the package keeps caches (downloaded datasets, text encoders)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "TFRS_RECSYS_CACHE"


def cache_dir() -> Path:
    """The user cache directory.

    ``$TFRS_RECSYS_CACHE`` if set, else ``$XDG_CACHE_HOME/tfrs_recsys``, else
    ``~/.cache/tfrs_recsys``. The directory is not created here.
    """
    explicit = os.environ.get(CACHE_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tfrs_recsys"
