"""The TFRS two-tower retrieval model, built from the dataset schema."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.pipelines import LABEL, FeatureGather
from tfrs_recsys.data.schema import Feature, Side
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.side_encoder import EncoderDims, SideEncoder
from tfrs_recsys.features.text import (
    BagOfWordsEncoder,
    CachedTextEncoder,
    FineTunedTextEncoder,
    PrecomputedTextEncoder,
)
from tfrs_recsys.text_encoder import embed_texts
from tfrs_recsys.towers.tower import Tower


def feature_columns(dataset: RecDataset, side: Side, config: ModelConfig) -> tuple[Feature, ...]:
    """The columns a tower reads under ``config.feature_set`` (id included).

    ``ids``: the id only; ``subset``: id + numeric columns (the first seed
    notebook: user id + age, item id + price); ``all``: every column, text
    columns only when a text encoder is configured.
    """
    features = dataset.schema.side(side)
    if config.feature_set == "ids":
        return tuple(f for f in features if f.kind == "id")
    if config.feature_set == "subset":
        return tuple(f for f in features if f.kind in ("id", "numeric"))
    if config.text_encoder == "none":
        return tuple(f for f in features if f.kind != "text")
    return features


def _text_encoders(dataset: RecDataset, side: Side, features, train_rows, config: ModelConfig):
    if config.feature_set != "all" or config.text_encoder == "none":
        return {}
    table = dataset.table(side)
    encoders = {}
    shared = None  # model.text_trainable: one trainable TF Hub encoder per side
    for feature in features:
        if not feature.is_text:
            continue
        if config.text_encoder == "bow":
            # Vocabulary from the train entities only; the fixed transform is then
            # applied once to every distinct text of the table and looked up.
            texts = np.unique(table.columns[feature.name][np.unique(train_rows)])
            bow = BagOfWordsEncoder(list(texts), max_tokens=2000, name=f"{feature.name}_bow")
            encoders[feature.name] = CachedTextEncoder(
                bow, list(table.columns[feature.name]), name=f"{feature.name}_bow_cache"
            )
        elif config.text_trainable:
            # Fine-tuned in the tower: the side's columns share one trainable
            # encoder, run over each call's distinct strings.
            if shared is None:
                from tfrs_recsys.text_encoder import resolve_encoder

                spec = resolve_encoder(text_model_spec(config.text_model))
                shared = spec.layer(trainable=True, name=f"{side}_text_encoder")
            encoders[feature.name] = FineTunedTextEncoder(shared, name=f"{feature.name}_bert_finetuned")
        else:
            # Each distinct string is embedded once (cached on disk) by the
            # frozen TF Hub encoder; in graph the vectors are looked up by string.
            texts = sorted({str(t) for t in table.columns[feature.name]})
            vectors = embed_texts(texts, text_model_spec(config.text_model))
            encoders[feature.name] = PrecomputedTextEncoder(texts, vectors, name=f"{feature.name}_bert")
    return encoders


def text_model_spec(text_model: str):
    """``model.text_model`` as :func:`tfrs_recsys.text_encoder.resolve_encoder` takes it."""
    parts = [p.strip() for p in str(text_model).split(",")]
    return parts[0] if len(parts) == 1 else tuple(parts)


def build_tower(
    dataset: RecDataset, side: Side, train_rows: np.ndarray, config: ModelConfig
) -> Tower:
    """A tower for one side, every statistic taken from ``train_rows`` only."""
    features = feature_columns(dataset, side, config)
    id_feature = next(f for f in features if f.kind == "id")
    dims = EncoderDims(
        id_dim=config.id_dim,
        categorical_dim=config.categorical_dim,
        numeric_buckets=config.numeric_buckets,
        text_dim=config.text_dim,
        embeddings_l2=config.id_l2,
    )
    encoder_features = features
    residual = None
    if config.id_mode != "input" and config.feature_set != "ids":
        encoder_features = tuple(f for f in features if f.kind != "id")
    if config.id_mode == "residual" and config.feature_set != "ids":
        table = dataset.table(side)
        vocabulary = sorted(set(table.ids[np.unique(train_rows)]))
        lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, name=f"{side}_residual_lookup")
        embedding = tf.keras.layers.Embedding(
            len(vocabulary) + 1,
            config.output_dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name=f"{side}_residual_embedding",
        )
        residual = (id_feature.name, lookup, embedding)
    encoder = SideEncoder(
        encoder_features,
        dataset.table(side),
        train_rows,
        dims,
        text_encoders=_text_encoders(dataset, side, encoder_features, train_rows, config),
        name=f"{side}_features",
    )
    return Tower(
        encoder,
        config.hidden,
        config.output_dim,
        dropout=config.dropout,
        id_residual=residual,
        id_l2=config.id_l2,
        normalize=config.normalize,
        name=f"{'query' if side == 'user' else 'candidate'}_tower",
    )


class RetrievalModel(tfrs.Model):
    """Query tower (users) and candidate tower (items) trained with a softmax.

    ``negatives="in_batch"`` uses :class:`tfrs.tasks.Retrieval` (the other
    positives of the batch are the negatives), with the sampling-bias (logQ)
    correction from train item frequencies and ``remove_accidental_hits`` on
    integer item rows. ``negatives="catalog"`` scores every catalog item for
    each query: an exact softmax, cheap for catalogs up to ~100k items.

    Args:
        dataset: Supplies the schema and feature tables (the catalog).
        train: Train positives; vocabularies, statistics and item
            frequencies come from these only.
        config: Model configuration.
    """

    def __init__(self, dataset: RecDataset, train: pd.DataFrame, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        user_rows, item_rows = dataset.encode(train)
        self.query_tower = build_tower(dataset, "user", user_rows, config)
        self.candidate_tower = build_tower(dataset, "item", item_rows, config)
        self.user_columns = [f.name for f in feature_columns(dataset, "user", config)]
        self.item_columns = [f.name for f in feature_columns(dataset, "item", config)]
        self.user_gather = FeatureGather(dataset.table("user"), self.user_columns)
        self.item_gather = FeatureGather(dataset.table("item"), self.item_columns)
        self.n_items = dataset.n_items
        self.n_train_users = max(len(np.unique(user_rows)), 1)
        item_ids = dataset.table("item").ids
        self.item_row_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(i) for i in item_ids]), tf.range(len(item_ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        counts = np.bincount(item_rows, minlength=dataset.n_items).astype(np.float64)
        # Items without a train positive never appear as in-batch candidates;
        # give them the smallest count so the log stays finite.
        probability = np.maximum(counts, 1.0) / counts.sum()
        self.item_log_probability = tf.constant(np.log(probability).astype(np.float32))
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            remove_accidental_hits=config.remove_accidental_hits,
            num_hard_negatives=config.num_hard_negatives or None,
        )
        self._id_column = dataset.schema.id_column("item")
        self.user_bias = None
        if config.loss in ("sigmoid", "catalog_sigmoid"):
            # A per-user offset absorbs how active a user is; it does not change
            # the user's ranking, so it stays out of the query vectors.
            user_ids = dataset.table("user").ids
            vocabulary = sorted(set(user_ids[np.unique(user_rows)]))
            self._user_id_column = dataset.schema.id_column("user")
            self._user_ids = np.asarray([str(u) for u in user_ids], dtype=object)
            self.user_bias_lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, name="user_bias_lookup")
            self.user_bias = tf.keras.layers.Embedding(
                len(vocabulary) + 1, 1, embeddings_initializer="zeros", name="user_bias"
            )
        self.item_bias = None
        if config.item_bias:
            vocabulary = sorted(set(item_ids[np.unique(item_rows)]))
            self.item_bias_lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, name="item_bias_lookup")
            self.item_bias = tf.keras.layers.Embedding(
                len(vocabulary) + 1, 1, embeddings_initializer="zeros", name="item_bias"
            )

    def query_vectors(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Query embeddings ``[batch, dim]`` (``dim = output_dim + 1`` with item bias).

        With an item bias the query gets a constant ``temperature`` component
        and the candidate its bias, so ``q . c / temperature`` adds the bias.
        """
        queries = self.query_tower({c: features[c] for c in self.user_columns}, training=training)
        if self.item_bias is None:
            return queries
        constant = tf.fill([tf.shape(queries)[0], 1], tf.constant(self.config.temperature, queries.dtype))
        return tf.concat([queries, constant], axis=-1)

    def candidate_vectors(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Candidate embeddings ``[batch, dim]``, the bias last when configured."""
        candidates = self.candidate_tower({c: features[c] for c in self.item_columns}, training=training)
        if self.item_bias is None:
            return candidates
        bias = self.item_bias(self.item_bias_lookup(features[self._id_column]))
        return tf.concat([candidates, bias], axis=-1)

    def _item_rows(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.item_row_table.lookup(features[self._id_column])

    def _vector_penalty(self, queries: tf.Tensor, candidates: tf.Tensor, whole_catalog: bool) -> tf.Tensor:
        """``model.vector_l2`` on the vectors a step used (see the config)."""
        weight = self.config.vector_l2
        query_norms = tf.reduce_mean(tf.reduce_sum(tf.square(queries), axis=-1))
        candidate_norms = tf.reduce_sum(tf.square(candidates), axis=-1)
        if whole_catalog:
            candidate_norms = tf.reduce_sum(candidate_norms) / self.n_train_users
        else:
            candidate_norms = tf.reduce_mean(candidate_norms)
        return weight * (query_norms + candidate_norms)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        queries = self.query_vectors(features, training=training)
        if self.config.loss == "catalog_sigmoid":
            candidates = self.candidate_vectors(self.item_gather(tf.range(self.n_items)), training=training)
            logits = tf.matmul(queries, candidates, transpose_b=True) / self.config.temperature
            logits += self.user_bias(self.user_bias_lookup(features[self._user_id_column]))
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=features[LABEL], logits=logits)
            )
            if self.config.vector_l2 > 0:
                loss += self._vector_penalty(queries, candidates, whole_catalog=True)
            return loss
        if self.config.loss == "sigmoid":
            candidates = self.candidate_vectors(features, training=training)
            logits = tf.reduce_sum(queries * candidates, axis=-1) / self.config.temperature
            logits += self.user_bias(self.user_bias_lookup(features[self._user_id_column]))[:, 0]
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=features[LABEL], logits=logits)
            )
            whole_catalog = False
        elif self.config.negatives == "catalog":
            rows = self._item_rows(features)
            candidates = self.candidate_vectors(self.item_gather(tf.range(self.n_items)), training=training)
            logits = tf.matmul(queries, candidates, transpose_b=True) / self.config.temperature
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=rows, logits=logits)
            )
            whole_catalog = True
        else:
            rows = self._item_rows(features)
            candidates = self.candidate_vectors(features, training=training)
            loss = self.task(
                queries,
                candidates,
                candidate_sampling_probability=(
                    tf.exp(tf.gather(self.item_log_probability, rows))
                    if self.config.logq_correction
                    else None
                ),
                candidate_ids=rows if self.config.remove_accidental_hits else None,
                compute_metrics=False,
                compute_batch_metrics=False,
            )
            whole_catalog = False
        if self.config.vector_l2 > 0:
            loss += self._vector_penalty(queries, candidates, whole_catalog=whole_catalog)
        return loss

    def user_embeddings(self, user_rows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Query vectors ``[len(user_rows), dim]`` of user-table rows."""
        parts = [
            self.query_vectors(self.user_gather(tf.constant(user_rows[s : s + batch_size])))
            for s in range(0, len(user_rows), batch_size)
        ]
        width = self.config.output_dim + (1 if self.item_bias is not None else 0)
        return tf.concat(parts, 0).numpy() if parts else np.zeros((0, width), np.float32)

    def item_embeddings(self, batch_size: int = 8192) -> np.ndarray:
        """Candidate vectors ``[n_items, dim]`` of the whole catalog."""
        parts = [
            self.candidate_vectors(self.item_gather(tf.range(s, min(s + batch_size, self.n_items))))
            for s in range(0, self.n_items, batch_size)
        ]
        return tf.concat(parts, 0).numpy()

    @property
    def has_probabilities(self) -> bool:
        """Whether the model is a probability model (logistic losses)."""
        return self.user_bias is not None

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """p(like) ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``: the sigmoid
        of ``q . c / temperature`` plus the user's bias, as the logistic losses train it.

        Raises:
            ConfigError: The model was trained with a softmax, whose scores are
                not probabilities of single pairs.
        """
        if not self.has_probabilities:
            raise ConfigError(
                f"model.loss {self.config.loss!r} gives ranking scores, not probabilities; "
                "only the 'sigmoid' and 'catalog_sigmoid' losses do"
            )
        user_rows = np.asarray(user_rows, dtype=np.int64)
        item_rows = np.asarray(item_rows, dtype=np.int64)
        if user_rows.shape != item_rows.shape or user_rows.ndim != 1:
            raise ConfigError(
                f"user_rows and item_rows must be 1-D of one length, got {user_rows.shape} and {item_rows.shape}"
            )
        parts = []
        for s in range(0, len(user_rows), batch_size):
            users = self.user_gather(tf.constant(user_rows[s : s + batch_size]))
            items = self.item_gather(tf.constant(item_rows[s : s + batch_size]))
            logits = tf.reduce_sum(self.query_vectors(users) * self.candidate_vectors(items), axis=-1)
            logits = logits / self.config.temperature
            ids = tf.constant(self._user_ids[user_rows[s : s + batch_size]])
            logits += self.user_bias(self.user_bias_lookup(ids))[:, 0]
            parts.append(tf.sigmoid(logits))
        return tf.concat(parts, 0).numpy() if parts else np.zeros(0, np.float32)

    def scorer(self):
        """A scorer for the evaluator: user rows -> scores over the catalog."""
        items = tf.constant(self.item_embeddings())

        def score(user_rows: np.ndarray) -> tf.Tensor:
            queries = self.query_vectors(self.user_gather(tf.constant(user_rows)))
            return tf.matmul(queries, items, transpose_b=True)

        return score
