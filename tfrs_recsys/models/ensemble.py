"""A seed ensemble of two-tower retrieval models, served as one two-tower.

``train.ensemble = K`` trains a retrieval config K times with seeds ``seed``,
``seed + 1``, ... and scores with the sum of the members' scores. Members of
one config differ only in their random initialisation and batch order, so
they make different errors on the users and items with few positives; their
sum averages those out (a variance reduction, as bagging does).

The sum of dot products is itself a dot product: with member query vectors
``q_k`` and candidate vectors ``c_k``,

    sum_k q_k . c_k = [q_1, ..., q_K] . [c_1, ..., c_K]

so the ensemble exports as a single two-tower whose vectors are the members'
side by side (``K x dim`` wide), scored by the same brute-force or ScaNN top-k.

Example:
    >>> ensemble = EnsembleModel([run_a.model, run_b.model, run_c.model])
    >>> scores = ensemble.scorer()(np.array([0, 1]))  # [2, n_items]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.serving_parts import ServingParts

__all__ = ["EnsembleModel"]


class EnsembleModel(tf.Module):
    """The members' summed scores; a :class:`~tfrs_recsys.recommender.Recommender`.

    Args:
        members: Trained :class:`~tfrs_recsys.models.retrieval.RetrievalModel`\\ s
            of one config on one dataset (tracked, so an export keeps their
            variables and tables).

    Raises:
        ConfigError: No member, or members of different kinds of model.
    """

    def __init__(self, members: Sequence[tf.keras.Model]) -> None:
        super().__init__(name="ensemble")
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        kinds = {getattr(m.config, "kind", None) for m in members}
        if kinds != {"retrieval"}:
            raise ConfigError(
                f"an ensemble sums retrieval models; got kinds {sorted(map(str, kinds))}"
            )
        self.members = list(members)

    @property
    def config(self):
        """The members' model config (the first member's; they share it)."""
        return self.members[0].config

    @property
    def user_columns(self) -> list[str]:
        return self.members[0].user_columns

    @property
    def item_columns(self) -> list[str]:
        return self.members[0].item_columns

    @property
    def n_items(self) -> int:
        return self.members[0].n_items

    @property
    def gives_probabilities(self) -> bool:
        """Whether every member gives probabilities (logistic losses)."""
        return all(m.gives_probabilities for m in self.members)

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The mean of the members' p(like) ``[n]`` of the pairs.

        Raises:
            ConfigError: A member only ranks (softmax loss).
        """
        if not self.gives_probabilities:
            raise ConfigError(
                "this ensemble's members rank (softmax loss): only logistic losses give probabilities"
            )
        return np.mean([m.probabilities(user_rows, item_rows) for m in self.members], axis=0)

    def item_embeddings(self) -> np.ndarray:
        """Candidate vectors ``[n_items, K x dim]``: the members' side by side."""
        return np.concatenate([m.item_embeddings() for m in self.members], axis=1)

    def user_embeddings(self, user_rows: np.ndarray) -> np.ndarray:
        """Query vectors ``[b, K x dim]`` of user-table rows: the members' side by side."""
        return np.concatenate([m.user_embeddings(user_rows) for m in self.members], axis=1)

    def scorer(self):
        """User rows ``[b]`` -> the sum of the members' scores ``[b, n_items]``."""
        scorers = [m.scorer() for m in self.members]

        def score(user_rows: np.ndarray) -> tf.Tensor:
            return tf.add_n([tf.convert_to_tensor(s(user_rows)) for s in scorers])

        return score

    def serving_parts(self, dataset) -> ServingParts:
        """One two-tower's parts: each vector the members' vectors side by side.

        The members' precomputed text lookups are all listed (the first
        member's under the column's name, the others' as ``column@k``), so a
        cold-start text fallback reaches every member.
        """
        parts = [m.serving_parts(dataset) for m in self.members]
        first = parts[0]
        if any(p.score_chunk is not None for p in parts):  # pragma: no cover - retrieval only
            raise ConfigError("an ensemble is served as a dot product; a member scores otherwise")

        def side_by_side(encoders):
            if any(e is None for e in encoders):
                return None
            return lambda features: tf.concat([e(features) for e in encoders], axis=1)

        lookups: dict[str, dict] = {}
        for k, part in enumerate(parts):
            for side, columns in part.text_lookups.items():
                for column, layer in columns.items():
                    lookups.setdefault(side, {})[column if k == 0 else f"{column}@{k}"] = layer
        unknown = [p.unknown_query for p in parts]
        return ServingParts(
            kind="retrieval",
            user_vectors=np.concatenate([p.user_vectors for p in parts], axis=1),
            item_vectors=np.concatenate([p.item_vectors for p in parts], axis=1),
            cells_per_chunk=min(p.cells_per_chunk for p in parts),
            encode_user_features=side_by_side([p.encode_user_features for p in parts]),
            user_feature_specs=first.user_feature_specs,
            encode_item_features=side_by_side([p.encode_item_features for p in parts]),
            item_feature_specs=first.item_feature_specs,
            unknown_query=None if any(u is None for u in unknown) else np.concatenate(unknown),
            text_lookups=lookups,
        )

    def __repr__(self) -> str:
        return f"EnsembleModel({len(self.members)} members)"
