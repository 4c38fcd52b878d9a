"""The TFRS two-tower retrieval model, built from fitted preprocessing."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import FeatureTable
from tfrs_recsys.data.pipelines import LABEL, FeatureGather
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.preprocessing import Preprocessing, Untracked
from tfrs_recsys.towers.build import build_tower


class RetrievalModel(tfrs.Model):
    """Query tower (users) and candidate tower (items) trained with a softmax.

    ``negatives="in_batch"`` uses :class:`tfrs.tasks.Retrieval` (the other
    positives of the batch are the negatives), with the sampling-bias (logQ)
    correction from train item frequencies and ``remove_accidental_hits`` on
    integer item rows. ``negatives="catalog"`` scores every catalog item for
    each query: an exact softmax, cheap for catalogs up to ~100k items.

    Args:
        config: Model configuration.
        preprocessing: Both sides' fitted preprocessing (vocabularies,
            statistics, text tables, train item frequencies), fitted from the
            train positives only (:func:`~tfrs_recsys.features.preprocessing.fit_preprocessing`).
        users: The user feature table (rows the scorer and the pipelines index).
        items: The item feature table: the catalog.
    """

    def __init__(
        self,
        config: ModelConfig,
        preprocessing: Preprocessing,
        users: FeatureTable,
        items: FeatureTable,
    ) -> None:
        config.check_catalog(len(items))
        super().__init__()
        self.config = config
        self._fitted = Untracked(preprocessing)
        history = None
        if config.user_history:
            from tfrs_recsys.towers.history import HistoryEncoder

            if preprocessing.user_history is None:
                raise ConfigError(
                    "model.user_history needs preprocessing fitted with it (no user histories)"
                )
            history = HistoryEncoder(
                users.ids,
                *preprocessing.user_history,
                n_items=len(items),
                dim=config.id_dim,
                l2=config.id_l2,
                name="user_history",
            )
        self.query_tower = build_tower(preprocessing.user, users, config, history)
        self.candidate_tower = build_tower(preprocessing.item, items, config)
        self.user_columns = preprocessing.user.columns
        self.item_columns = preprocessing.item.columns
        self.user_gather = FeatureGather(users, self.user_columns)
        self.item_gather = FeatureGather(items, self.item_columns)
        self.n_items = len(items)
        if preprocessing.n_items != self.n_items:
            raise ConfigError(
                f"the preprocessing was fitted on a catalog of {preprocessing.n_items} items; "
                f"the item table has {self.n_items}"
            )
        self.n_train_users = preprocessing.n_train_users
        item_ids = items.ids
        self.item_row_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(i) for i in item_ids]), tf.range(len(item_ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        counts = np.asarray(preprocessing.item_counts, dtype=np.float64)
        # Items without a train positive never appear as in-batch candidates;
        # give them the smallest count so the log stays finite.
        probability = np.maximum(counts, 1.0) / counts.sum()
        self.item_log_probability = tf.constant(np.log(probability).astype(np.float32))
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            remove_accidental_hits=config.remove_accidental_hits,
            num_hard_negatives=config.num_hard_negatives or None,
        )
        self._id_column = preprocessing.item.id_column
        if config.negatives == "mixed" and config.loss == "softmax":
            # The uniform draws are keyed on (seed, steps so far), the count a
            # weight checkpointed with the model: a resumed run draws the same.
            self.mixed_seed = int(np.random.randint(0, 2**31 - 1))
            # Every synchronous replica counts the same steps: keep the first's count.
            self.mixed_draws = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="mixed_draws",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self.user_bias = None
        if config.loss in ("sigmoid", "catalog_sigmoid"):
            # A per-user offset absorbs how active a user is; it does not change
            # the user's ranking, so it stays out of the query vectors.
            vocabulary = list(preprocessing.user.train_ids)
            self._user_id_column = preprocessing.user.id_column
            self._user_ids = np.asarray([str(u) for u in users.ids], dtype=object)
            self.user_bias_lookup = tf.keras.layers.StringLookup(
                vocabulary=vocabulary, name="user_bias_lookup"
            )
            self.user_bias = tf.keras.layers.Embedding(
                len(vocabulary) + 1, 1, embeddings_initializer="zeros", name="user_bias"
            )
        self.item_bias = None
        if config.item_bias:
            vocabulary = list(preprocessing.item.train_ids)
            self.item_bias_lookup = tf.keras.layers.StringLookup(
                vocabulary=vocabulary, name="item_bias_lookup"
            )
            self.item_bias = tf.keras.layers.Embedding(
                len(vocabulary) + 1, 1, embeddings_initializer="zeros", name="item_bias"
            )

    @property
    def preprocessing(self) -> Preprocessing:
        """The fitted preprocessing the model was built from."""
        return self._fitted.value

    def query_vectors(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Query embeddings ``[batch, dim]`` (``dim = output_dim + 1`` with item bias).

        With an item bias the query gets a constant ``temperature`` component
        and the candidate its bias, so ``q . c / temperature`` adds the bias.
        """
        inputs = {c: features[c] for c in self.user_columns}
        if training and self.config.user_history and self._id_column in features:
            from tfrs_recsys.towers.history import EXCLUDED_ITEM

            inputs[EXCLUDED_ITEM] = self._item_rows(features)  # not the item it predicts
        queries = self.query_tower(inputs, training=training)
        if self.item_bias is None:
            return queries
        constant = tf.fill(
            [tf.shape(queries)[0], 1], tf.constant(self.config.temperature, queries.dtype)
        )
        return tf.concat([queries, constant], axis=-1)

    def candidate_vectors(
        self, features: Mapping[str, tf.Tensor], training: bool = False
    ) -> tf.Tensor:
        """Candidate embeddings ``[batch, dim]``, the bias last when configured."""
        candidates = self.candidate_tower(
            {c: features[c] for c in self.item_columns}, training=training
        )
        if self.item_bias is None:
            return candidates
        bias = self.item_bias(self.item_bias_lookup(features[self._id_column]))
        return tf.concat([candidates, bias], axis=-1)

    def _item_rows(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.item_row_table.lookup(features[self._id_column])

    def _vector_penalty(
        self, queries: tf.Tensor, candidates: tf.Tensor, whole_catalog: bool
    ) -> tf.Tensor:
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
        summed, averaged = self._loss_parts(features, training)
        if summed is None:
            return averaged
        return summed if averaged is None else summed + averaged

    def _loss_parts(
        self, features: Mapping[str, tf.Tensor], training: bool
    ) -> tuple[tf.Tensor | None, tf.Tensor | None]:
        """The loss of a batch as ``(summed over its rows, averaged over its rows)``.

        The sampled softmax of ``tfrs.tasks.Retrieval`` sums over the batch, the
        other losses and the ``vector_l2`` penalty average; a synchronous
        replica's share of a global step differs between the two
        (:meth:`train_step`). Either part may be None.
        """
        queries = self.query_vectors(features, training=training)
        summed = None
        if self.config.loss == "catalog_sigmoid":
            candidates = self.candidate_vectors(
                self.item_gather(tf.range(self.n_items)), training=training
            )
            logits = tf.matmul(queries, candidates, transpose_b=True) / self.config.temperature
            logits += self.user_bias(self.user_bias_lookup(features[self._user_id_column]))
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=features[LABEL], logits=logits)
            )
            if self.config.vector_l2 > 0:
                loss += self._vector_penalty(queries, candidates, whole_catalog=True)
            return None, loss
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
            candidates = self.candidate_vectors(
                self.item_gather(tf.range(self.n_items)), training=training
            )
            logits = tf.matmul(queries, candidates, transpose_b=True) / self.config.temperature
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=rows, logits=logits)
            )
            whole_catalog = True
        elif self.config.negatives == "mixed":
            summed, candidates = self._mixed_negatives_loss(queries, features, training)
            loss, whole_catalog = None, False
        else:
            rows = self._item_rows(features)
            candidates = self.candidate_vectors(features, training=training)
            summed = self.task(
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
            loss, whole_catalog = None, False
        if self.config.vector_l2 > 0:
            penalty = self._vector_penalty(queries, candidates, whole_catalog=whole_catalog)
            loss = penalty if loss is None else loss + penalty
        return summed, loss

    def train_step(self, inputs):
        """TFRS's step; with several synchronous replicas, each replica's share of it.

        ``MultiWorkerMirroredStrategy`` sums the replicas' gradients. A replica
        sees ``1/replicas`` of the global batch, so its summed part (the
        in-batch softmax) is its share as it is, and its averaged parts (the
        other losses, ``vector_l2``, the layers' ``id_l2``) are divided by the
        number of replicas: the summed gradient is the one-process gradient of
        the global batch. With one replica (no strategy, ``mirrored`` on one
        device, every ``parameter_server`` worker) this is TFRS's own step.
        """
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        if replicas == 1:
            return super().train_step(inputs)
        with tf.GradientTape() as tape:
            summed, averaged = self._loss_parts(inputs, training=True)
            regularization = tf.reduce_sum([tf.reduce_sum(loss) for loss in self.losses])
            share = (averaged if averaged is not None else 0.0) + regularization
            share = share / replicas + (summed if summed is not None else 0.0)
        gradients = tape.gradient(share, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {"loss": share, "regularization_loss": regularization}

    def _mixed_negatives_loss(
        self, queries: tf.Tensor, features: Mapping[str, tf.Tensor], training: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Softmax over the batch's positives plus ``mixed_negatives`` uniform catalog items.

        Mixed negative sampling (Yi et al., 2019): an item is a candidate of a
        step as a batch positive (about ``batch * p(item)`` times, ``p`` its
        train frequency) or as a uniform draw (``draws / n_items`` times); its
        logit is corrected by the log of that sum (divided by the batch size,
        a constant the softmax ignores). Candidates equal to a row's positive
        are not negatives of that row.
        """
        rows = self._item_rows(features)
        count = self.mixed_draws.assign_add(1)
        seed = tf.stack([tf.constant(self.mixed_seed, tf.int64), count])
        draws = tf.random.stateless_uniform(
            [self.config.mixed_negatives], seed=seed, maxval=self.n_items, dtype=tf.int64
        )
        candidates = tf.concat(
            [
                self.candidate_vectors(features, training=training),
                self.candidate_vectors(self.item_gather(draws), training=training),
            ],
            axis=0,
        )
        candidate_rows = tf.concat([rows, draws], axis=0)
        batch = tf.cast(tf.shape(queries)[0], tf.float32)
        probability = tf.exp(tf.gather(self.item_log_probability, candidate_rows)) + tf.cast(
            self.config.mixed_negatives, tf.float32
        ) / (batch * self.n_items)
        loss = self.task(
            queries,
            candidates,
            candidate_sampling_probability=probability if self.config.logq_correction else None,
            candidate_ids=candidate_rows,
            compute_metrics=False,
            compute_batch_metrics=False,
        )
        return loss, candidates

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
    def gives_probabilities(self) -> bool:
        """Whether the model is a probability model (logistic losses)."""
        return self.user_bias is not None

    def probabilities(
        self, user_rows: np.ndarray, item_rows: np.ndarray, batch_size: int = 65536
    ) -> np.ndarray:
        """p(like) ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``: the sigmoid
        of ``q . c / temperature`` plus the user's bias, as the logistic losses train it.

        Raises:
            ConfigError: The model was trained with a softmax, whose scores are
                not probabilities of single pairs.
        """
        if not self.gives_probabilities:
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
            logits = tf.reduce_sum(
                self.query_vectors(users) * self.candidate_vectors(items), axis=-1
            )
            logits = logits / self.config.temperature
            ids = tf.constant(self._user_ids[user_rows[s : s + batch_size]])
            logits += self.user_bias(self.user_bias_lookup(ids))[:, 0]
            parts.append(tf.sigmoid(logits))
        return tf.concat(parts, 0).numpy() if parts else np.zeros(0, np.float32)

    def scorer(self):
        """A scorer for the evaluator: user rows -> scores over the catalog."""
        items = tf.constant(self.item_embeddings())
        score_rows = self._compiled_score_rows()

        def score(user_rows: np.ndarray) -> tf.Tensor:
            return score_rows(tf.constant(user_rows, dtype=tf.int64), items)

        return score

    def _compiled_score_rows(self):
        """``(user_rows [b] int64, items [n_items, dim]) -> scores [b, n_items]`` as one graph.

        Traced once per model (the evaluator calls it after every epoch): the
        query tower run eagerly layer by layer cost more than the scoring.
        """
        if getattr(self, "_score_rows", None) is None:

            @tf.function(
                input_signature=[
                    tf.TensorSpec([None], tf.int64),
                    tf.TensorSpec([None, None], tf.float32),
                ]
            )
            def score_rows(user_rows: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
                queries = self.query_vectors(self.user_gather(user_rows))
                return tf.matmul(queries, items, transpose_b=True)

            # Not tracked: a function is no weight, and checkpoints stay as they were.
            object.__setattr__(self, "_score_rows", score_rows)
        return self._score_rows

    def serving_parts(self, dataset):
        """What a SavedModel export needs from this model (:class:`~tfrs_recsys.models.serving_parts.ServingParts`).

        Query vectors ``[n_users, dim]`` of every user-table row, candidate
        vectors ``[n_items, dim]`` of the catalog (scored by dot product), the
        query tower on raw user columns for new users and the candidate tower
        on raw item columns for new items.

        Args:
            dataset: The dataset the model was built on (its user and item
                tables, in row order, and its schema).
        """
        from tfrs_recsys.models import serving_parts as parts
        from tfrs_recsys.towers.text_slots import precomputed_text_lookups

        user_id = dataset.schema.id_column("user")
        user_specs = parts.column_specs(
            dataset.schema, "user", [c for c in self.user_columns if c != user_id]
        )
        # score_items gives users outside the table a query of zeros plus, with an item
        # bias, the constant component that adds it: the items' own prior.
        unknown_query = np.zeros(
            self.config.output_dim + (1 if self.item_bias is not None else 0), np.float32
        )
        if self.item_bias is not None:
            unknown_query[-1] = self.config.temperature
        return parts.ServingParts(
            kind="retrieval",
            user_vectors=self.user_embeddings(np.arange(dataset.n_users, dtype=np.int64)),
            item_vectors=self.item_embeddings(),
            cells_per_chunk=parts.RETRIEVAL_CELLS_PER_CHUNK,
            encode_user_features=(
                (lambda f: self.query_vectors(parts.with_blank_id(f, user_id, self.user_columns)))
                if user_specs
                else None
            ),
            user_feature_specs=user_specs,
            encode_item_features=lambda f: self.candidate_vectors(f, training=False),
            item_feature_specs=parts.column_specs(dataset.schema, "item", self.item_columns),
            unknown_query=unknown_query,
            text_lookups=precomputed_text_lookups(self),
        )
