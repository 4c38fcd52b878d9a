"""The in-memory dataset: two feature tables and a long table of positives.

A :class:`RecDataset` is what every loader returns, whatever the file format:

- ``users``: one row per user, the schema's user columns, row order = user index;
- ``items``: one row per item (the whole catalog), row order = item index;
- ``interactions``: the positive ``(user_id, item_id)`` pairs in the order the
  loader produced them (the order the holdout split depends on), with optional
  ``timestamp`` and ``rating`` columns.

Feature tables are kept apart from the interactions, so pipelines gather
features per batch from the tables (see :mod:`tfrs_recsys.data.pipelines`) and
nothing joins a large frame in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature, Side
from tfrs_recsys.errors import DataValidationError


@dataclasses.dataclass(frozen=True)
class FeatureTable:
    """The raw features of one side, as column arrays indexed by row.

    Attributes:
        side: ``user`` or ``item``.
        features: The schema features of this side (the id first).
        columns: Column name -> array of length ``len(self)``: ``str`` objects for
            id, categorical, categorical-list and text columns, ``float32`` for
            numeric columns.
    """

    side: Side
    features: tuple[Feature, ...]
    columns: dict[str, np.ndarray]

    @property
    def id_name(self) -> str:
        return next(f.name for f in self.features if f.kind == "id")

    @property
    def ids(self) -> np.ndarray:
        return self.columns[self.id_name]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def _index(self) -> pd.Index:
        # Built on demand and cached on the frozen instance.
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = pd.Index(self.ids)
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def index_of(self, ids: Sequence[str] | np.ndarray, *, where: str = "") -> np.ndarray:
        """Row indices of the given ids.

        Raises:
            DataValidationError: An id is not in the table; the message names the
                first unknown id and ``where`` it came from.
        """
        positions = self._index.get_indexer(np.asarray(ids, dtype=object))
        unknown = np.flatnonzero(positions < 0)
        if unknown.size:
            first = np.asarray(ids, dtype=object)[unknown[0]]
            raise DataValidationError(
                f"{unknown.size} {self.side} id(s) are not in the {self.side} table, "
                f"first {first!r}" + (f" ({where})" if where else "")
            )
        return positions.astype(np.int64)

    @classmethod
    def from_frame(
        cls, side: Side, frame: pd.DataFrame, features: tuple[Feature, ...]
    ) -> FeatureTable:
        columns: dict[str, np.ndarray] = {}
        for feature in features:
            values = frame[feature.name]
            if feature.kind == "numeric":
                columns[feature.name] = values.to_numpy(dtype=np.float32)
            else:
                columns[feature.name] = values.fillna("").astype(str).to_numpy(dtype=object)
        return cls(side=side, features=features, columns=columns)


@dataclasses.dataclass(frozen=True)
class RecDataset:
    """Users, items and positive interactions under one schema.

    Attributes:
        schema: Column roles.
        users: User feature table (see module docstring).
        items: Item feature table; every item is in the catalog.
        interactions: Positive pairs in loader order, columns ``user_id``,
            ``item_id`` and optionally ``timestamp`` / ``rating``.
        n_raw_interactions: Interactions in the source before positives were
            selected (all ratings for explicit data), if known.
        source: Where the data came from (a directory or a name).
    """

    schema: DatasetSchema
    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    n_raw_interactions: int | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for side, frame in (("user", self.users), ("item", self.items)):
            wanted = [f.name for f in self.schema.side(side)]  # type: ignore[arg-type]
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise DataValidationError(
                    f"the {side} table lacks column(s) {', '.join(missing)} of schema "
                    f"{self.schema.name!r}"
                )
            ids = frame[self.schema.id_column(side)]  # type: ignore[arg-type]
            duplicated = ids[ids.duplicated()]
            if len(duplicated):
                raise DataValidationError(f"the {side} table repeats id {duplicated.iloc[0]!r}")
        for column in (USER_ID, ITEM_ID):
            if column not in self.interactions.columns:
                raise DataValidationError(f"the interaction table lacks column {column!r}")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def table(self, side: Side) -> FeatureTable:
        """The feature table of one side (cached)."""
        key = f"_table_{side}"
        cached = self.__dict__.get(key)
        if cached is None:
            frame = self.users if side == "user" else self.items
            cached = FeatureTable.from_frame(side, frame, self.schema.side(side))
            object.__setattr__(self, key, cached)
        return cached

    def encode(self, interactions: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices ``(user_index, item_index)`` of interaction pairs.

        Args:
            interactions: A frame with ``user_id`` and ``item_id`` columns;
                defaults to all positives of the dataset.
        """
        frame = self.interactions if interactions is None else interactions
        users = self.table("user").index_of(frame[USER_ID].to_numpy(), where="interactions")
        items = self.table("item").index_of(frame[ITEM_ID].to_numpy(), where="interactions")
        return users, items

    def summary(self) -> dict[str, Any]:
        """Counts and density, as printed by ``tfrs-recsys inspect-data``."""
        n_pos = len(self.interactions)
        per_user = self.interactions.groupby(USER_ID, sort=False).size()
        per_item = self.interactions.groupby(ITEM_ID, sort=False).size()
        cells = self.n_users * self.n_items
        summary: dict[str, Any] = {
            "dataset": self.schema.name,
            "source": self.source,
            "users": self.n_users,
            "items": self.n_items,
            "positives": n_pos,
            "density": n_pos / cells if cells else 0.0,
            "users_with_positives": int(per_user.size),
            "items_with_positives": int(per_item.size),
            "positives_per_user": _describe(per_user.to_numpy()),
            "positives_per_item": _describe(per_item.to_numpy()),
        }
        if self.n_raw_interactions is not None:
            summary["raw_interactions"] = self.n_raw_interactions
        segment = self.schema.user_segment
        if segment is not None:
            summary["users_per_" + segment] = {
                str(k): int(v) for k, v in self.users[segment].value_counts(sort=False).items()
            }
        return summary


def _describe(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 2),
        "max": int(values.max()),
    }
