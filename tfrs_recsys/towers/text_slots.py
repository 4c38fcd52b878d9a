"""The text slots of a built model: which text encoder reads which column on which side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tfrs_recsys.features.side_encoder import SideEncoder
from tfrs_recsys.features.text import FineTunedTextEncoder, PrecomputedTextEncoder


def side_text_encoders(model) -> Iterator[tuple[str, str, Any]]:
    """``(side, column, text encoder)`` of the model's side encoders."""
    for layer in model.submodules:
        if isinstance(layer, SideEncoder):
            side = layer.name.removesuffix("_features")
            for column, encoder in layer.text_encoders.items():
                yield side, column, encoder


def precomputed_text_lookups(model) -> dict[str, dict[str, Any]]:
    """The model's :class:`PrecomputedTextEncoder` layers, ``{"user"|"item": {column: layer}}``.

    A :class:`FineTunedTextEncoder` counts through its installed lookup
    (:func:`tfrs_recsys.serving.text.install_finetuned_lookups`); without one it is left out.
    """
    found: dict[str, dict[str, Any]] = {}
    for side, column, encoder in side_text_encoders(model):
        if isinstance(encoder, FineTunedTextEncoder):
            encoder = encoder.lookup
        if isinstance(encoder, PrecomputedTextEncoder):
            found.setdefault(side, {})[column] = encoder
    return found
