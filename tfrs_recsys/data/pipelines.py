"""tf.data input pipelines: interaction pairs in, batches of raw feature dicts out.

The pipelines carry row indices of ``(user, item)`` pairs and gather the raw
features of each batch from in-memory feature tables (:class:`FeatureGather`),
so the interaction stream stays two integers a row however many features the
model reads; the same gather works on pairs streamed from files. Raw strings
and numbers come out: lookups and normalisation happen in the model graph.

- :func:`retrieval_dataset`: train positives, shuffled every epoch, batched.
- :func:`ranking_dataset`: positives (label 1) plus ``negatives_per_user``
  items per user (label 0) drawn uniformly from the items that are not the
  user's excluded items (by default the *train* positives only: the holdout is
  never consulted), sampled again every epoch inside the pipeline.

Both yield ``dict[str, tf.Tensor]`` with every user and item feature as a
``[batch]`` tensor (``tf.string`` or ``tf.float32``), plus ``label``
(``tf.float32`` [batch]) for ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.data.dataset import FeatureTable, RecDataset
from tfrs_recsys.errors import ConfigError

LABEL = "label"
AUTOTUNE = tf.data.AUTOTUNE


class FeatureGather:
    """Gathers raw feature columns of one side by row index, in graph.

    Args:
        table: The user or item feature table.
        columns: Columns to emit (default: all of the table's).

    Example:
        >>> gather = FeatureGather(dataset.table("item"), ["item_id", "price"])
        >>> gather(tf.constant([0, 3]))  # {"item_id": [2] string, "price": [2] float32}
    """

    def __init__(self, table: FeatureTable, columns: Sequence[str] | None = None) -> None:
        names = list(table.columns) if columns is None else list(columns)
        unknown = [c for c in names if c not in table.columns]
        if unknown:
            raise ConfigError(
                f"the {table.side} table has no column(s) {', '.join(unknown)} "
                f"(known: {', '.join(table.columns)})"
            )
        self.side = table.side
        self.size = len(table)
        self._constants = {name: _to_constant(table.columns[name]) for name in names}

    @property
    def columns(self) -> list[str]:
        return list(self._constants)

    def __call__(self, index: tf.Tensor) -> dict[str, tf.Tensor]:
        """``{column: tensor[batch]}`` for row indices ``index`` [batch]."""
        return {name: tf.gather(values, index) for name, values in self._constants.items()}


def _to_constant(values: np.ndarray) -> tf.Tensor:
    if values.dtype.kind == "f":
        return tf.constant(values.astype(np.float32))
    return tf.constant([str(v).encode("utf-8") for v in values], dtype=tf.string)


def _gathers(
    dataset: RecDataset,
    user_columns: Sequence[str] | None,
    item_columns: Sequence[str] | None,
) -> tuple[FeatureGather, FeatureGather]:
    users = FeatureGather(dataset.table("user"), user_columns)
    items = FeatureGather(dataset.table("item"), item_columns)
    clash = sorted(set(users.columns) & set(items.columns))
    if clash:
        raise ConfigError(
            f"column(s) {', '.join(clash)} exist on both the user and the item side; "
            "rename them so a batch dict can hold both"
        )
    if LABEL in users.columns or LABEL in items.columns:
        raise ConfigError(f"a feature column may not be called {LABEL!r}")
    return users, items


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")


def _epochs(seed: int, rerandomize: bool, make_epoch) -> tf.data.Dataset:
    """One epoch per iteration: ``make_epoch(epoch_seed)`` with a fresh seed each time.

    ``Dataset.random(rerandomize_each_iteration=True)`` gives a new int64 every
    time the dataset is iterated (Keras iterates once per epoch), from which the
    epoch derives stateless seeds for its permutation and negatives.
    """
    return (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=rerandomize)
        .take(1)
        .flat_map(make_epoch)
    )


def replica_rows(rows: tf.Tensor, replica: tuple[int | tf.Tensor, int]) -> tf.Tensor:
    """Replica ``index``'s share of a batch's rows, ``replica = (index, replicas)``.

    Every ``replicas``-th row from ``index``: the replicas of a synchronous
    step (``MultiWorkerMirroredStrategy``) together see exactly the global
    batch a single process would; ``(0, 1)`` is the batch itself, unchanged.
    ``index`` may be a scalar tensor (a parameter-server worker's index).
    """
    index, replicas = replica
    if isinstance(index, tf.Tensor):
        return rows[tf.cast(index, tf.int32) :: replicas]
    if not 0 <= index < replicas:
        raise ConfigError(f"replica {index} of {replicas}: expected 0 <= index < replicas")
    return rows if replicas == 1 else rows[index::replicas]


def _n_batches(n: int, batch_size: int, drop_remainder: bool) -> int:
    return n // batch_size if drop_remainder else -(-n // batch_size)


def _batches(
    users: FeatureGather,
    items: FeatureGather,
    user_rows: tf.Tensor,
    item_rows: tf.Tensor,
    labels: tf.Tensor | None,
    *,
    batch_size: int,
    n_batches: int,
    shuffle_seed: tf.Tensor | None,
    replica: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """One epoch of feature-dict batches over the example rows ``[n]``.

    ``shuffle_seed`` (a stateless seed, shape [2]) permutes the examples; None
    keeps their order. ``replica`` (:func:`replica_rows`) keeps one replica's
    share of every batch.
    """
    n = tf.shape(user_rows)[0]
    order = (
        tf.range(n)
        if shuffle_seed is None
        else tf.random.experimental.stateless_shuffle(tf.range(n), seed=shuffle_seed)
    )

    def batch(b: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = replica_rows(order[b * batch_size : (b + 1) * batch_size], replica)
        features = {**users(tf.gather(user_rows, rows)), **items(tf.gather(item_rows, rows))}
        if labels is not None:
            features[LABEL] = tf.gather(labels, rows)
        return features

    return tf.data.Dataset.range(n_batches).map(
        batch, num_parallel_calls=AUTOTUNE, deterministic=True
    )


def retrieval_dataset(
    dataset: RecDataset,
    pairs: pd.DataFrame,
    *,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int = 42,
    user_columns: Sequence[str] | None = None,
    item_columns: Sequence[str] | None = None,
    drop_remainder: bool = False,
    replica: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches of positive pairs as feature dicts, for a retrieval model.

    The pair indices are held in memory; every epoch draws a fresh full
    permutation in graph and emits whole batches (about 10x faster than an
    element-wise ``Dataset.shuffle`` over the pairs). Without shuffling, the
    gathered batches are cached after the first epoch.

    Args:
        dataset: Supplies the feature tables.
        pairs: Positive pairs (``user_id``, ``item_id``), e.g. the train split.
        batch_size: Pairs per batch.
        shuffle: Reshuffle the pairs every epoch (from ``seed``); without it
            every epoch gives the pairs in order.
        seed: Seed of the per-epoch permutations.
        user_columns, item_columns: Feature columns to emit (default: all).
        drop_remainder: Drop the last partial batch.
        replica: ``(index, replicas)``: emit replica ``index``'s share of
            every batch (:func:`replica_rows`); ``(0, 1)``: whole batches.

    Returns:
        A dataset of ``{column: tensor[batch]}``; one pass is one epoch.
    """
    _check_batch_size(batch_size)
    users, items = _gathers(dataset, user_columns, item_columns)
    user_index, item_index = dataset.encode(pairs)
    n = len(user_index)
    all_users = tf.constant(user_index.astype(np.int32))
    all_items = tf.constant(item_index.astype(np.int32))
    n_batches = _n_batches(n, batch_size, drop_remainder)

    def epoch(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        return _batches(
            users,
            items,
            all_users,
            all_items,
            None,
            batch_size=batch_size,
            n_batches=n_batches,
            shuffle_seed=tf.stack([epoch_seed, 0]) if shuffle else None,
            replica=replica,
        )

    if not shuffle:
        # Same batches every epoch (validation, evaluation): gather them once.
        return epoch(tf.constant(0, tf.int64)).cache().prefetch(AUTOTUNE)
    return _epochs(seed, True, epoch).prefetch(AUTOTUNE)


class NegativeSampler:
    """Draws items uniformly from each user's complement of excluded items.

    Exact and rejection-free: with a user's excluded items sorted as
    ``e_0 < e_1 < ... < e_{k-1}``, the ``r``-th non-excluded item (0-based) is
    ``r + #{j : e_j - j <= r}``, so one ``searchsorted`` over ``e_j - j`` maps
    uniform draws ``r`` in ``[0, n_items - k)`` to items.

    Args:
        n_users, n_items: Table sizes.
        user_index, item_index: The excluded pairs as row indices (for the
            package's models: the train positives only).
    """

    def __init__(
        self, n_users: int, n_items: int, user_index: np.ndarray, item_index: np.ndarray
    ) -> None:
        pairs = np.unique(
            np.asarray(user_index, dtype=np.int64) * n_items
            + np.asarray(item_index, dtype=np.int64)
        )
        users, items = pairs // n_items, pairs % n_items
        counts = np.bincount(users, minlength=n_users)
        splits = np.concatenate([[0], np.cumsum(counts)])
        # e_j - j within each user's sorted run.
        shifted = items - (np.arange(len(items)) - np.repeat(splits[:-1], counts))
        self.n_items = n_items
        self.counts = counts
        self._shifted = tf.RaggedTensor.from_row_splits(
            tf.constant(shifted.astype(np.int32)), tf.constant(splits, dtype=tf.int64)
        )
        self._counts = tf.constant(counts.astype(np.int32))

    def __call__(self, users: tf.Tensor, per_user: int, seed: tf.Tensor) -> tf.Tensor:
        """Item rows ``[len(users), per_user]`` (int32), drawn with replacement.

        Args:
            users: User rows [B] (int32); each must have a non-excluded item.
            per_user: Draws per user.
            seed: A stateless seed, shape [2] int64.
        """
        free = self.n_items - tf.gather(self._counts, users)  # [B]
        uniform = tf.random.stateless_uniform(
            [tf.shape(users)[0], per_user], seed=seed, dtype=tf.float32
        )
        r = tf.minimum(
            tf.cast(uniform * tf.cast(free[:, None], tf.float32), tf.int32), free[:, None] - 1
        )
        shifted = tf.gather(self._shifted, users).to_tensor(default_value=self.n_items)
        return r + tf.cast(tf.searchsorted(shifted, r, side="right", out_type=tf.int32), tf.int32)


def ranking_dataset(
    dataset: RecDataset,
    positives: pd.DataFrame,
    *,
    negatives_per_user: int = 100,
    exclude: pd.DataFrame | None = None,
    resample_each_epoch: bool = True,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int = 42,
    user_columns: Sequence[str] | None = None,
    item_columns: Sequence[str] | None = None,
    drop_remainder: bool = False,
    replica: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Positives (label 1) plus sampled negatives (label 0), for a ranking model.

    Every user with a positive gets ``negatives_per_user`` negatives per epoch,
    drawn with replacement from the items not in that user's ``exclude`` pairs,
    inside the pipeline; positives and negatives are then shuffled together.

    Args:
        dataset: Supplies the feature tables.
        positives: Positive pairs (``user_id``, ``item_id``): the train split.
        negatives_per_user: Negatives per user and epoch.
        exclude: Pairs never drawn as negatives. Defaults to ``positives``, so
            only the train positives are consulted. Passing train + holdout
            reproduces the seed notebooks' negatives, which leak the holdout.
        resample_each_epoch: Draw fresh negatives every epoch; with False the
            same negatives come back every epoch (as the notebooks drew once).
        batch_size, shuffle, seed, user_columns, item_columns, drop_remainder, replica:
            As in :func:`retrieval_dataset`.

    Returns:
        A dataset of ``{column: tensor[batch], "label": float32[batch]}``.
    """
    _check_batch_size(batch_size)
    if negatives_per_user < 0:
        raise ConfigError(f"negatives_per_user must be >= 0, got {negatives_per_user}")
    users, items = _gathers(dataset, user_columns, item_columns)
    user_index, item_index = dataset.encode(positives)
    excluded = (user_index, item_index) if exclude is None else dataset.encode(exclude)
    sampler = NegativeSampler(dataset.n_users, dataset.n_items, *excluded)

    sampled_users = (
        np.unique(user_index).astype(np.int32) if negatives_per_user else np.zeros(0, np.int32)
    )
    full = sampled_users[sampler.counts[sampled_users] >= dataset.n_items]
    if len(full):
        raise ConfigError(
            f"{len(full)} user(s) have every item excluded and no negative to draw, "
            f"first {dataset.table('user').ids[full[0]]!r}"
        )
    pos_users = tf.constant(user_index.astype(np.int32))
    pos_items = tf.constant(item_index.astype(np.int32))
    neg_users = tf.constant(sampled_users)
    n = len(user_index) + len(sampled_users) * negatives_per_user
    labels = tf.constant(
        np.concatenate([np.ones(len(user_index)), np.zeros(n - len(user_index))]).astype(np.float32)
    )
    n_batches = _n_batches(n, batch_size, drop_remainder)
    fixed_negative_seed = tf.constant([seed, 1], dtype=tf.int64)

    def epoch(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        negative_seed = tf.stack([epoch_seed, 1]) if resample_each_epoch else fixed_negative_seed
        negatives = sampler(neg_users, negatives_per_user, negative_seed)
        all_users = tf.concat([pos_users, tf.repeat(neg_users, negatives_per_user)], 0)
        all_items = tf.concat([pos_items, tf.reshape(negatives, [-1])], 0)
        return _batches(
            users,
            items,
            all_users,
            all_items,
            labels,
            batch_size=batch_size,
            n_batches=n_batches,
            shuffle_seed=tf.stack([epoch_seed, 2]) if shuffle else None,
            replica=replica,
        )

    if not shuffle and not (resample_each_epoch and negatives_per_user):
        # Same examples every epoch: gather them once.
        return epoch(tf.constant(seed, tf.int64)).cache().prefetch(AUTOTUNE)
    return _epochs(seed, True, epoch).prefetch(AUTOTUNE)


def user_label_dataset(
    dataset: RecDataset,
    positives: pd.DataFrame,
    *,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 42,
    user_columns: Sequence[str] | None = None,
    drop_remainder: bool = False,
    replica: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches of users with their positives as a multi-hot row over the catalog.

    For losses that score every catalog item for each user (a full-matrix
    logistic loss): every user with a positive appears once per epoch, in a
    fresh order each epoch. ``replica`` as in :func:`retrieval_dataset`.

    Returns:
        A dataset of ``{user column: tensor[batch], "label": float32[batch, n_items]}``.
    """
    _check_batch_size(batch_size)
    users = FeatureGather(dataset.table("user"), user_columns)
    user_index, item_index = dataset.encode(positives)
    order = np.lexsort((item_index, user_index))
    counts = np.bincount(user_index, minlength=dataset.n_users)
    items_of_user = tf.RaggedTensor.from_row_splits(
        tf.constant(item_index[order].astype(np.int64)),
        tf.constant(np.concatenate([[0], np.cumsum(counts)]), dtype=tf.int64),
    )
    active = tf.constant(np.flatnonzero(counts).astype(np.int32))
    n = int(active.shape[0])
    n_items = dataset.n_items
    n_batches = _n_batches(n, batch_size, drop_remainder)

    def epoch(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        ordering = (
            tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([epoch_seed, 3]))
            if shuffle
            else tf.range(n)
        )

        def batch(b: tf.Tensor) -> dict[str, tf.Tensor]:
            rows = tf.gather(
                active, replica_rows(ordering[b * batch_size : (b + 1) * batch_size], replica)
            )
            items = tf.gather(items_of_user, rows)
            cells = tf.stack([items.value_rowids(), items.flat_values], axis=1)
            labels = tf.scatter_nd(
                cells,
                tf.ones_like(items.flat_values, tf.float32),
                [tf.shape(rows, tf.int64)[0], n_items],
            )
            return {**users(rows), LABEL: tf.minimum(labels, 1.0)}

        return tf.data.Dataset.range(n_batches).map(
            batch, num_parallel_calls=AUTOTUNE, deterministic=True
        )

    if not shuffle:
        return epoch(tf.constant(0, tf.int64)).cache().prefetch(AUTOTUNE)
    return _epochs(seed, True, epoch).prefetch(AUTOTUNE)
