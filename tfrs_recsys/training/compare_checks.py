"""Checks every model of a ``compare`` against the dataset before any of them trains.

A comparison can run for hours; a model that cannot run on the dataset (a
column its features need is missing, its text encoder is unavailable, its
catalog is too large for it, its config is invalid) must fail before the first
model trains, not after the others finished.

:func:`check_model` runs the same code that would fail later, only cheaper:
for a TFRS model it fits the preprocessing of the model's feature columns on
the model's own data and split and builds the model, but trains nothing; with a BERT text encoder it
checks that the encoder resolves and builds the text slots with the in-graph
bag-of-words encoder instead of embedding the catalog. Peers run their own
dataset checks (the oracle's ``truth.npz``, EASE's catalog limit, the
``implicit`` package for ALS, the notebook models' columns).
"""

from __future__ import annotations

import dataclasses
import inspect

from tfrs_recsys.config import ExperimentConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.splits import Split, carve_validation
from tfrs_recsys.errors import ConfigError, RecsysError

__all__ = ["check_model", "check_peer", "check_tfrs_model"]

SEED_TEXT_MODEL = "minilm"  # the text encoder of seed_all (SeedAllModel.fit's default)


def check_model(
    name: str, dataset: RecDataset, split: Split, config: ExperimentConfig | None = None
) -> None:
    """Raises a one-line :class:`ConfigError` naming ``name`` if it cannot run on ``dataset``.

    Args:
        name: A model of :data:`~tfrs_recsys.training.compare.MODEL_NAMES`.
        dataset: The data the model trains on (for a TFRS model, loaded with
            its config's ``data.min_rating``).
        split: The train / holdout split of ``dataset`` the model trains on.
        config: A TFRS model's resolved config (None for peers).
    """
    try:
        if config is None:
            check_peer(name, dataset)
        else:
            check_tfrs_model(config, dataset, split)
    except RecsysError as exc:
        raise ConfigError(
            f"model {name} cannot run on {dataset.schema.name}: {exc}; nothing was trained "
            f"(leave {name} out of --models or change its config)"
        ) from None


def check_peer(name: str, dataset: RecDataset) -> None:
    """The dataset checks of the non-TFRS model ``name`` (cheap; fits nothing)."""
    if name == "oracle":
        from tfrs_recsys.baselines.oracle import OracleScorer

        OracleScorer.for_dataset(dataset)
    elif name == "ease":
        from tfrs_recsys.baselines.ease import check_catalog_size
        from tfrs_recsys.baselines.tuning import tune_ease

        check_catalog_size(
            dataset.n_items, inspect.signature(tune_ease).parameters["max_items"].default
        )
    elif name == "als":
        from tfrs_recsys.baselines.als import import_implicit

        import_implicit()
    elif name == "seed_subset":
        from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel

        SeedSubsetModel.check_dataset(dataset)
    elif name == "seed_all":
        from tfrs_recsys.features.columns import text_model_spec
        from tfrs_recsys.notebook_models.seed_all import SeedAllModel
        from tfrs_recsys.text_encoder import resolve_encoder

        SeedAllModel.check_dataset(dataset)
        resolve_encoder(text_model_spec(SEED_TEXT_MODEL))


def check_tfrs_model(config: ExperimentConfig, dataset: RecDataset, split: Split) -> None:
    """Fits ``config``'s preprocessing and builds its model on ``dataset``, training nothing.

    The steps are those of :func:`tfrs_recsys.training.run.train` up to the
    model, on the same data: the validation carve of ``split.train``, the
    feature columns of both sides, their vocabularies and statistics, the
    towers. The model is dropped afterwards; its weights are never used, and
    :func:`~tfrs_recsys.training.run.train` seeds every random generator
    before it builds the model it trains.
    """
    from tfrs_recsys.features.columns import text_model_spec, uses_text
    from tfrs_recsys.features.preprocessing import fit_preprocessing
    from tfrs_recsys.models.factory import build_model

    model_config = config.model
    if uses_text(model_config) and model_config.text_encoder == "bert":
        from tfrs_recsys.text_encoder import resolve_encoder

        resolve_encoder(text_model_spec(model_config.text_model))
        # The same text columns and slots, without embedding the whole catalog now.
        model_config = dataclasses.replace(model_config, text_encoder="bow", text_trainable=False)
    fit = carve_validation(
        split.train, fraction=config.data.validation_fraction, seed=config.data.validation_seed
    )
    preprocessing = fit_preprocessing(dataset, fit.train, model_config)
    build_model(model_config, preprocessing, dataset)
