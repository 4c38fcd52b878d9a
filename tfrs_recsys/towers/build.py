"""Builds towers and feature encoders from a config and fitted preprocessing.

Shared by the retrieval model (a query and a candidate :class:`Tower`) and the
ranking model (one :class:`SideEncoder` per side). Nothing here fits anything:
vocabularies, statistics and text tables come in a
:class:`~tfrs_recsys.features.preprocessing.SidePreprocessing`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import FeatureTable
from tfrs_recsys.data.schema import Feature
from tfrs_recsys.features.columns import encoded_features, id_only, text_model_spec, uses_text
from tfrs_recsys.features.preprocessing import SidePreprocessing
from tfrs_recsys.features.side_encoder import EncoderDims, SideEncoder
from tfrs_recsys.features.text import (
    BagOfWordsEncoder,
    CachedTextEncoder,
    FineTunedTextEncoder,
    PrecomputedTextEncoder,
)
from tfrs_recsys.towers.tower import Tower

TOWER_NAMES = {"user": "query_tower", "item": "candidate_tower"}


def encoder_dims(config: ModelConfig) -> EncoderDims:
    """The per-feature encoding widths of ``config``."""
    return EncoderDims(
        id_dim=config.id_dim,
        categorical_dim=config.categorical_dim,
        numeric_buckets=config.numeric_buckets,
        text_dim=config.text_dim,
        embeddings_l2=config.id_l2,
    )


def text_encoders(
    preprocessing: SidePreprocessing,
    features: Sequence[Feature],
    table: FeatureTable,
    config: ModelConfig,
) -> dict[str, tf.keras.layers.Layer]:
    """One text encoder per text column of ``features`` (the model's text slots).

    - ``bow``: TF-IDF from the fitted vocabulary, its outputs for every
      distinct string of ``table`` precomputed and looked up;
    - ``bert``: the fitted table of sentence vectors, looked up by string;
    - ``bert`` with ``text_trainable``: one trainable TF Hub encoder per side,
      shared by the side's columns, run over each call's distinct strings.
    """
    if not uses_text(config):
        return {}
    encoders: dict[str, tf.keras.layers.Layer] = {}
    shared = None
    for feature in features:
        if not feature.is_text:
            continue
        name = feature.name
        if config.text_encoder == "bow":
            bow = BagOfWordsEncoder(preprocessing.bag_of_words[name], name=f"{name}_bow")
            encoders[name] = CachedTextEncoder(
                bow, list(table.columns[name]), name=f"{name}_bow_cache"
            )
        elif config.text_trainable:
            if shared is None:
                from tfrs_recsys.text_encoder import resolve_encoder

                spec = resolve_encoder(text_model_spec(config.text_model))
                shared = spec.layer(trainable=True, name=f"{preprocessing.side}_text_encoder")
            encoders[name] = FineTunedTextEncoder(shared, name=f"{name}_bert_finetuned")
        else:
            table_of_vectors = preprocessing.text_tables[name]
            encoders[name] = PrecomputedTextEncoder(
                list(table_of_vectors.texts), table_of_vectors.vectors, name=f"{name}_bert"
            )
    return encoders


def build_side_encoder(
    preprocessing: SidePreprocessing,
    features: Sequence[Feature],
    table: FeatureTable,
    config: ModelConfig,
    *,
    name: str,
) -> SideEncoder:
    """A :class:`SideEncoder` of ``features`` (text slots included)."""
    return SideEncoder(
        features,
        preprocessing,
        encoder_dims(config),
        text_encoders=text_encoders(preprocessing, features, table, config),
        name=name,
    )


def build_tower(
    preprocessing: SidePreprocessing,
    table: FeatureTable,
    config: ModelConfig,
    history: tf.keras.layers.Layer | None = None,
) -> Tower:
    """The retrieval tower of one side (``preprocessing.side``), reading ``history`` too if given."""
    side = preprocessing.side
    features = preprocessing.features
    id_feature = next(f for f in features if f.kind == "id")
    encoder_features = encoded_features(features, config)
    residual = None
    if (
        config.id_mode == "residual"
        and config.feature_set != "ids"
        and not id_only(features, config)
    ):
        vocabulary = list(preprocessing.train_ids)
        lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, name=f"{side}_residual_lookup")
        embedding = tf.keras.layers.Embedding(
            len(vocabulary) + 1,
            config.output_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name=f"{side}_residual_embedding",
        )
        residual = (id_feature.name, lookup, embedding)
    encoder = build_side_encoder(
        preprocessing, encoder_features, table, config, name=f"{side}_features"
    )
    return Tower(
        encoder,
        config.hidden,
        config.output_dim,
        dropout=config.dropout,
        id_residual=residual,
        id_l2=config.id_l2,
        normalize=config.normalize,
        history=None if history is None else (id_feature.name, history),
        name=TOWER_NAMES[side],
    )
