"""What every benchmark prints first: the machine, the software and the command."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    import numpy as np
    import tensorflow as tf

    return "\n".join(
        [
            f"command: {shlex.join([os.path.relpath(sys.executable)] + sys.argv)}",
            f"machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.machine()}",
            f"python {platform.python_version()}, tensorflow {tf.__version__}, numpy {np.__version__}",
        ]
    )


def dataset_dir(data: Path | None) -> tuple[Path, object]:
    """``data`` or, if None, the default tech-products data generated into a temp dir.

    Returns the directory and the temp-dir handle (keep it alive while in use).
    """
    if data is not None:
        return data, None
    from tfrs_recsys.data.generator import generate
    from tfrs_recsys.data.techproducts import write_tech_products

    handle = tempfile.TemporaryDirectory()
    path = Path(handle.name) / "tech-products"
    write_tech_products(generate(), path)
    return path, handle
