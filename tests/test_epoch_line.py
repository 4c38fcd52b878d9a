"""The per-epoch line that replaces Keras's progress bar in training."""

from __future__ import annotations

import io

from tfrs_recsys.training.epoch_line import EpochLine


def test_a_line_per_epoch_with_the_logged_values_and_without_epoch_s():
    stream = io.StringIO()
    line = EpochLine(80, stream=stream)
    line.on_epoch_begin(2)
    line.on_epoch_end(2, {"loss": 0.200712, "val_recall@10": 0.11036, "epoch_s": 1.2})
    [printed] = stream.getvalue().splitlines()
    parts = printed.split(" - ")
    assert parts[0] == "Epoch 3/80"
    assert parts[1].endswith(" s")
    # 4 significant digits; epoch_s is the seconds already printed second.
    assert parts[2:] == ["loss: 0.2007", "val_recall@10: 0.1104"]
