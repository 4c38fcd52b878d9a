"""One printed line per training epoch, in place of Keras's progress bar.

Keras's ``ProgbarLogger`` runs after every batch and reads ``model.metrics``,
which walks every layer and tracked structure of the model each time: on the
feature-rich two-towers that Python walk cost as much as the training step
itself. Training therefore runs Keras with ``verbose=0`` and this callback
prints what the progress bar printed at ``verbose=2``, once per epoch::

    Epoch 3/80 - 1.2 s - loss: 0.2007 - val_recall@10: 0.1104 - ...
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import tensorflow as tf

__all__ = ["EpochLine"]


class EpochLine(tf.keras.callbacks.Callback):
    """Prints ``Epoch N/total - S s - name: value ...`` after each epoch.

    Args:
        epochs: The epoch count given to ``fit`` (the ``total`` of the line).
        stream: Where to print; ``None`` means the current ``sys.stdout``.
    """

    def __init__(self, epochs: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.epochs = int(epochs)
        self.stream = stream
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = time.perf_counter() - self._started
        parts = [f"Epoch {epoch + 1}/{self.epochs}", f"{seconds:.1f} s"]
        parts += [
            f"{name}: {_number(value)}"
            for name, value in (logs or {}).items()
            if name != "epoch_s"  # the seconds above
        ]
        print(" - ".join(parts), file=self.stream or sys.stdout, flush=True)


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)
