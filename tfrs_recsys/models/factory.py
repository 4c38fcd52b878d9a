"""Builds the configured model from fitted preprocessing, and the pipeline that trains it."""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from tfrs_recsys.config import ExperimentConfig, ModelConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.pipelines import ranking_dataset, retrieval_dataset, user_label_dataset
from tfrs_recsys.features.preprocessing import Preprocessing


def build_model(
    config: ModelConfig, preprocessing: Preprocessing, dataset: RecDataset
) -> tf.keras.Model:
    """A retrieval or ranking model of ``config`` on ``dataset``'s feature tables.

    The model fits nothing: every vocabulary and statistic comes in
    ``preprocessing`` (:func:`~tfrs_recsys.features.preprocessing.fit_preprocessing`).
    """
    users, items = dataset.table("user"), dataset.table("item")
    if config.kind == "retrieval":
        from tfrs_recsys.models.retrieval import RetrievalModel

        return RetrievalModel(config, preprocessing, users, items)
    from tfrs_recsys.models.ranking import RankingModel

    return RankingModel(config, preprocessing, users, items)


def training_dataset(
    model: tf.keras.Model,
    dataset: RecDataset,
    train: pd.DataFrame,
    config: ExperimentConfig,
    *,
    drop_remainder: bool = False,
    replica: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """The tf.data pipeline the model trains on: positives, or positives + negatives.

    ``drop_remainder`` and ``replica`` (one replica's share of every global
    batch) as :func:`~tfrs_recsys.data.pipelines.retrieval_dataset` takes them.
    """
    shared = dict(drop_remainder=drop_remainder, replica=replica)
    columns = dict(user_columns=model.user_columns, item_columns=model.item_columns, **shared)
    if config.model.kind == "retrieval" and config.model.loss == "catalog_sigmoid":
        return user_label_dataset(
            dataset,
            train,
            batch_size=config.train.batch_size,
            seed=config.train.seed,
            user_columns=model.user_columns,
            **shared,
        )
    if config.model.kind == "retrieval" and config.model.loss == "softmax":
        return retrieval_dataset(
            dataset, train, batch_size=config.train.batch_size, seed=config.train.seed, **columns
        )
    return ranking_dataset(
        dataset,
        train,
        negatives_per_user=config.model.negatives_per_user,
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        **columns,
    )
