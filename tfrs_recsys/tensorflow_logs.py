"""TensorFlow's log noise, off for the command line (``-v`` keeps it).

On a CPU machine every command used to print TensorFlow's native log lines
(``failed call to cuInit``, ``cpu_feature_guard``, grappler's
``loop_optimizer.cc ... Skipping loop optimization``) and some Python warnings
of its dependencies. Two kinds of native lines exist:

- TensorFlow's own (``2026-01-01 12:00:00.000000: W tensorflow/...``) obey
  ``TF_CPP_MIN_LOG_LEVEL``, read once when TensorFlow loads:
  :func:`quiet_tensorflow` sets it before that;
- lines logged through Abseil (``W0000 00:00:...  loop_optimizer.cc:934] ...``
  and ``WARNING: All log messages before absl::InitializeLog() ...``) ignore
  it; :func:`filtered_native_stderr` drops them from file descriptor 2 while a
  command runs. Fatal (``F``) lines always pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

__all__ = ["TENSORFLOW_LOGGERS", "filtered_native_stderr", "is_native_noise", "quiet_tensorflow"]

# Python loggers of TensorFlow and its dependencies, set to ERROR when quiet.
TENSORFLOW_LOGGERS = ("tensorflow", "absl", "tensorflow_hub", "h5py")

# TensorFlow's (tsl) format, Abseil's format, and Abseil's notice before it is initialised.
_NATIVE_NOISE = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    rb"|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


def quiet_tensorflow(verbose: bool) -> None:
    """Sets TensorFlow's native log level and its Python loggers; call before TensorFlow loads.

    Args:
        verbose: True: everything (``TF_CPP_MIN_LOG_LEVEL=0``). False: errors
            only from Python loggers, nothing below fatal from the native code
            (a level already set in the environment is kept), and no
            ``pkg_resources`` deprecation warning from TF Hub.
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in TENSORFLOW_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


def is_native_noise(line: bytes) -> bool:
    """Whether ``line`` is a native info, warning or error log line (not fatal)."""
    return _NATIVE_NOISE.match(line) is not None


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Drops native log lines (:func:`is_native_noise`) written to file descriptor 2.

    Everything else written to the descriptor (Python's ``sys.stderr`` included)
    is passed on, line by line, in order; it is all through when the block exits.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source, contextlib.suppress(OSError):
            for line in source:
                if not is_native_noise(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="native-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump reads to the end
        thread.join(timeout=5)
        os.close(saved)
