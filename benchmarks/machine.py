"""What every benchmark prints first: the machine, the software and the command."""

from __future__ import annotations

import os
import platform
import shlex
import sys


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
