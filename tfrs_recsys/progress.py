"""Progress lines of long jobs: compare, text embedding, data generation, export.

They go through one logger, ``tfrs_recsys.progress``, at INFO level. The
command line shows them on stderr even without ``-v`` (:func:`show_on_stderr`);
a Python caller sees them after ``logging.basicConfig(level=logging.INFO)`` or
:func:`show_on_stderr`.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["LOGGER_NAME", "Periodic", "logger", "show_on_stderr"]

LOGGER_NAME = "tfrs_recsys.progress"
logger = logging.getLogger(LOGGER_NAME)


class Periodic:
    """Logs ``"<what>: <done>/<total> <unit> (<pct>), <s> s"`` at most every ``interval`` seconds.

    Example::

        progress = Periodic("embedding texts", total=len(batch_starts), unit="batches")
        for start in batch_starts:
            ...
            progress.advance()
        progress.finish()
    """

    def __init__(self, what: str, total: int, *, unit: str = "", interval: float = 10.0) -> None:
        self.what = what
        self.total = int(total)
        self.unit = unit
        self.interval = float(interval)
        self.done = 0
        self.started = time.perf_counter()
        self._last = self.started

    def advance(self, count: int = 1) -> None:
        """Counts ``count`` more units; logs a line if ``interval`` seconds passed since the last."""
        self.done += count
        now = time.perf_counter()
        if now - self._last >= self.interval and self.done < self.total:
            self._last = now
            self._log(now)

    def finish(self) -> float:
        """Logs the final line if any line was logged before; returns the seconds taken."""
        now = time.perf_counter()
        if self._last != self.started:
            self._log(now)
        return now - self.started

    def _log(self, now: float) -> None:
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        unit = f" {self.unit}" if self.unit else ""
        logger.info(
            "%s: %d/%d%s%s, %.0f s",
            self.what,
            self.done,
            self.total,
            unit,
            share,
            now - self.started,
        )


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (tests replace it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def show_on_stderr() -> None:
    """Shows progress lines as plain lines on stderr (idempotent)."""
    for handler in list(logger.handlers):
        if isinstance(handler, _CurrentStderr):
            logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
