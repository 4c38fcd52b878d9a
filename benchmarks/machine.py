"""What every benchmark prints first: the machine, the software and the command."""

from __future__ import annotations

import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
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


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(command: list[str], log: Path, *, capture: bool = False) -> tuple[float, float, str]:
    """Runs ``command`` in a child process: its wall seconds, peak RSS in MB and stdout.

    The child's output goes to ``log`` (stderr only with ``capture``, whose
    stdout is returned instead of ``""``); its peak RSS is its own, from
    ``wait4``. A failing child ends the benchmark with a message naming ``log``.
    """
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE if capture else out,
            stderr=out if capture else subprocess.STDOUT,
            text=True,
        )
        text = process.stdout.read() if capture else ""  # type: ignore[union-attr]
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    return seconds, usage.ru_maxrss / 1024, text


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
