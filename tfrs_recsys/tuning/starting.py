"""Where ``tfrs-recsys tune`` starts: the base config and the configs tried first."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tfrs_recsys.config import ExperimentConfig, load_config, with_overrides
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import make_split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.tuning.defaults import dataset_stats, known_configs


def starting_point(
    source: str,
    model_name: str,
    config: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[ExperimentConfig, dict[str, ExperimentConfig]]:
    """The base config of a study of ``model_name`` on ``source``, and the configs tried first.

    The base is ``config`` (a shipped name or a TOML file) when given, else the
    config ``compare`` would use for the dataset (its shipped config, or the
    default chosen from the dataset's statistics); ``overrides`` apply to it
    and ``data.source`` is ``source``. The configs tried first are the base and
    the statistics-based default (its searched keys).
    """
    from tfrs_recsys.training.compare import model_config

    source_override = f'data.source="{source}"'
    if config is not None:
        base = load_config(config, [source_override, *overrides])
        kind, feature_set = model_name.split("_", 1)
        if (base.model.kind, base.model.feature_set) != (kind, feature_set):
            raise ConfigError(
                f"--config {config}: is a {base.model.kind}_{base.model.feature_set} config, "
                f"not {model_name} (model.kind / model.feature_set)"
            )
        origin = f"--config {config}"
        data_config = base.data
    else:
        probe = with_overrides(ExperimentConfig(), [source_override, *overrides])
        data_config = probe.data
    dataset = load_dataset(source, min_rating=data_config.min_rating)
    split = make_split(data_config.split, dataset.interactions)
    stats = dataset_stats(dataset, split.train)
    if config is None:
        base, origin = model_config(
            model_name, dataset.schema.name, source, overrides=overrides, stats=stats
        )
        base = dataclasses.replace(base, data=dataclasses.replace(base.data, split=split.name))
    return base, known_configs(base, origin, stats)
