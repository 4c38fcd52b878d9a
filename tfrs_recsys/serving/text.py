"""Text features at export: the model's precomputed text lookups and the cold-start encoder.

A run with ``model.text_encoder = "bert"`` reads its text columns through
lookup tables of precomputed vectors (stock TensorFlow ops); a string outside
them gets the zero vector. ``--cold-start-text`` traces the feature signatures
with each lookup falling back to the run's TF Hub encoder for such strings,
and saves the encoder with the export. A fine-tuned text encoder
(``model.text_trainable``) is exported as a table of its fine-tuned vectors of
the feature table's strings, falling back to itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.towers.text_slots import side_text_encoders

#: ``{"user" | "item": {column: PrecomputedTextEncoder}}``.
TextLookups = Mapping[str, Mapping[str, Any]]


def install_finetuned_lookups(model, dataset, stack: contextlib.ExitStack) -> list[Any]:
    """Swaps each fine-tuned text encoder for a lookup of its vectors, until ``stack`` closes.

    Each :class:`FineTunedTextEncoder` gets a :class:`PrecomputedTextEncoder`
    of its (fine-tuned) encoder's vectors of every distinct string of its
    column in the feature table (computed once here); unknown strings get the
    zero vector unless a cold-start fallback is set, which is then that
    fine-tuned encoder. Returns the installed lookups (their tables must be
    tracked by the export).
    """
    from tfrs_recsys.features.text import FineTunedTextEncoder

    installed = []
    for side, column, encoder in side_text_encoders(model):
        if isinstance(encoder, FineTunedTextEncoder):
            lookup = encoder.precompute(list(dataset.table(side).columns[column]))
            installed.append(stack.enter_context(encoder.use_lookup(lookup)))
    return installed


def text_fallbacks(lookups: TextLookups, encoder) -> contextlib.ExitStack:
    """A context in which the precomputed text ``lookups`` fall back to ``encoder``.

    Unknown strings then go through ``encoder`` instead of getting the zero
    vector; with ``encoder=None`` nothing changes.
    """
    from tfrs_recsys.features.text import source_encoder

    stack = contextlib.ExitStack()
    if encoder is not None:
        for side in lookups.values():
            for layer in side.values():
                # A fine-tuned encoder's lookup falls back to that encoder.
                stack.enter_context(layer.fallback_to(source_encoder(layer) or encoder))
    return stack


def check_cold_start_config(run_dir: Path) -> None:
    """ConfigError, before the model is loaded, when the run's config rules ``--cold-start-text`` out."""
    from tfrs_recsys.config import load_config
    from tfrs_recsys.training.run import CONFIG_FILE

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return  # loading the run names the problem
    model = load_config(path).model
    if model.feature_set != "all" or model.text_encoder == "none":
        raise ConfigError(
            f"--cold-start-text: the model of {run_dir} has no text features (model.feature_set = "
            f"{model.feature_set!r}, model.text_encoder = {model.text_encoder!r}): nothing to encode; "
            "export it without the flag"
        )
    if model.text_encoder == "bow":
        raise ConfigError(
            f"--cold-start-text: the model of {run_dir} encodes text with the bag-of-words encoder "
            "(model.text_encoder = 'bow'), already in graph for any string: nothing to add; "
            "export it without the flag"
        )


def text_encoder_spec(config, lookups: TextLookups):
    """The resolved TF Hub encoder spec of a run with precomputed text lookups, else ``None``."""
    if not lookups:
        return None
    from tfrs_recsys.features.columns import text_model_spec
    from tfrs_recsys.text_encoder import resolve_encoder

    return resolve_encoder(text_model_spec(config.model.text_model))


def cold_start_encoders(parts, spec, finetuned: list[Any], run_dir: Path) -> list[Any]:
    """The text encoders unseen strings go through, for ``--cold-start-text``.

    The first is the fallback of the precomputed lookups; a fine-tuned run
    has one per fine-tuned lookup (each falls back to its own). All are saved
    with the export.

    Args:
        parts: The model's :class:`~tfrs_recsys.models.serving_parts.ServingParts`.
        spec: :func:`text_encoder_spec` of the run.
        finetuned: The lookups :func:`install_finetuned_lookups` installed.
        run_dir: For messages.

    Raises:
        ConfigError: The run has no precomputed text, or no signature reads it.
    """
    from tfrs_recsys.features.text import source_encoder
    from tfrs_recsys.text_encoder.cache import encoder_layer

    lookups = parts.text_lookups
    if spec is None:
        raise ConfigError(
            f"--cold-start-text: the model of {run_dir} has no precomputed (bert) text features "
            "(its tables have no text columns): nothing to encode; export it without the flag"
        )
    used = ("user" in lookups and parts.encode_user_features is not None) or (
        "item" in lookups and parts.encode_item_features is not None
    )
    if not used:
        raise ConfigError(
            f"--cold-start-text: no signature of this {parts.kind} export reads the run's bert text "
            f"columns ({', '.join(sorted(lookups))} side only): nothing to encode; "
            "export it without the flag"
        )
    # Each fine-tuned lookup falls back to its own encoder (text_fallbacks); otherwise
    # the layer embed_texts used, if it loaded one in this process.
    sources = [source_encoder(lookup) for lookup in finetuned] or [encoder_layer(spec)]
    return list({id(encoder): encoder for encoder in sources}.values())


def track_text_encoder(module: tf.Module, encoder) -> int:
    """Tracks a :class:`~tfrs_recsys.text_encoder.HubTextEncoder`'s loaded SavedModels on ``module``.

    The preprocessor and the encoder (their variables, tables, assets such as a
    vocabulary file, and functions) are then saved with the export, which no
    longer needs the handles' directories. ``encoder`` may be a list of
    encoders (a fine-tuned run's, one per side). Returns how many objects are tracked.
    """
    encoders = encoder if isinstance(encoder, (list, tuple)) else [encoder]
    objects = []
    for layer in encoders:
        objects += [
            getattr(
                layer, "_preprocessor_module", None
            ),  # tokenizer/packer functions, tables, assets
            getattr(
                getattr(layer, "_encoder", None), "_func", None
            ),  # the encoder SavedModel, weights
        ]
    module.cold_start_text_encoder = [o for o in objects if o is not None]
    return len(module.cold_start_text_encoder)


def text_encoder_manifest(config, spec, lookups: TextLookups) -> dict[str, Any] | None:
    """The export manifest's ``text_encoder`` entry (``None`` without text lookups)."""
    if spec is None:
        return None
    return {
        "text_model": config.model.text_model,
        "preprocessor": spec.preprocessor,
        "encoder": spec.encoder,
        "pooling": spec.pooling,
        "seq_length": spec.seq_length,
        "normalize": spec.normalize,
        "name": spec.name,
        "fine_tuned": bool(config.model.text_trainable),
        "columns": {side: sorted(found) for side, found in sorted(lookups.items())},
    }
