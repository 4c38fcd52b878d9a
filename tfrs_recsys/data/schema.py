"""The dataset schema: which columns are ids, categorical, numeric or text.

Models, pipelines and evaluation read the schema instead of hard-coding column
names, so the same code trains on the tech-products data, MovieLens or any other
dataset mapped onto the same two feature tables (users and items) plus a long
interaction table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from tfrs_recsys.errors import ConfigError

FeatureKind = Literal["id", "categorical", "categorical_list", "numeric", "text"]
Side = Literal["user", "item"]

FEATURE_KINDS: tuple[str, ...] = ("id", "categorical", "categorical_list", "numeric", "text")
NUMERIC_TRANSFORMS: tuple[str, ...] = ("none", "log1p")
SIDES: tuple[str, ...] = ("user", "item")

USER_ID = "user_id"
ITEM_ID = "item_id"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One column of a feature table.

    Attributes:
        name: Column name in the user or item table.
        kind: ``id`` (the table key), ``categorical`` (one string label),
            ``categorical_list`` (several labels joined by ``separator``),
            ``numeric`` (a float) or ``text`` (free text for the text encoder).
        transform: For numeric features, ``log1p`` applies ``log(1 + x)`` before
            normalisation (prices, counts); ``none`` otherwise.
        separator: For ``categorical_list``, the string between labels.
        as_text: Also feed this (categorical) column to the text encoder, as the
            second seed notebook does with ``profession``.
    """

    name: str
    kind: FeatureKind
    transform: str = "none"
    separator: str | None = None
    as_text: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a feature needs a non-empty name")
        if self.kind not in FEATURE_KINDS:
            raise ConfigError(
                f"feature {self.name!r}: kind must be one of {', '.join(FEATURE_KINDS)}, "
                f"got {self.kind!r}"
            )
        if self.transform not in NUMERIC_TRANSFORMS:
            raise ConfigError(
                f"feature {self.name!r}: transform must be one of "
                f"{', '.join(NUMERIC_TRANSFORMS)}, got {self.transform!r}"
            )
        if self.transform != "none" and self.kind != "numeric":
            raise ConfigError(f"feature {self.name!r}: only numeric features take a transform")
        if self.kind == "categorical_list" and not self.separator:
            raise ConfigError(f"feature {self.name!r}: a categorical_list needs a separator")

    @property
    def is_text(self) -> bool:
        """Whether the text encoder reads this column."""
        return self.kind == "text" or self.as_text


@dataclasses.dataclass(frozen=True)
class DatasetSchema:
    """Column roles of a recommendation dataset.

    Attributes:
        name: Dataset name (``tech-products``, ``movielens-100k``...).
        user_features: User-table columns; exactly one has kind ``id``.
        item_features: Item-table columns; exactly one has kind ``id``.
        user_segment: Optional user column to break metrics down by
            (``personality`` on the tech-products data).
        timestamp: Optional interaction column with event times, which enables
            the leave-last-out split.
    """

    name: str
    user_features: tuple[Feature, ...]
    item_features: tuple[Feature, ...]
    user_segment: str | None = None
    timestamp: str | None = None

    def __post_init__(self) -> None:
        for side in SIDES:
            features = self.side(side)  # type: ignore[arg-type]
            ids = [f.name for f in features if f.kind == "id"]
            if len(ids) != 1:
                raise ConfigError(
                    f"schema {self.name!r}: the {side} table needs exactly one id column, "
                    f"got {ids or 'none'}"
                )
            names = [f.name for f in features]
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ConfigError(
                    f"schema {self.name!r}: {side} columns named twice: {', '.join(duplicated)}"
                )
        if self.user_segment is not None and self.user_segment not in self.user_columns:
            raise ConfigError(
                f"schema {self.name!r}: segment column {self.user_segment!r} is not a user column"
            )

    def side(self, side: Side) -> tuple[Feature, ...]:
        """The features of one side (``user`` or ``item``)."""
        if side == "user":
            return self.user_features
        if side == "item":
            return self.item_features
        raise ConfigError(f"side must be 'user' or 'item', got {side!r}")

    def id_column(self, side: Side) -> str:
        """The name of the id column of one side."""
        return next(f.name for f in self.side(side) if f.kind == "id")

    @property
    def user_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.user_features)

    @property
    def item_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.item_features)

    def features(self, side: Side, kinds: Iterable[str] | None = None) -> tuple[Feature, ...]:
        """The features of one side, optionally only those of the given kinds."""
        wanted = None if kinds is None else set(kinds)
        return tuple(f for f in self.side(side) if wanted is None or f.kind in wanted)

    def text_features(self, side: Side) -> tuple[Feature, ...]:
        """The columns of one side that the text encoder reads."""
        return tuple(f for f in self.side(side) if f.is_text)

    def feature(self, side: Side, name: str) -> Feature:
        """One feature by name; raises ConfigError naming the known columns."""
        for f in self.side(side):
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.side(side))
        raise ConfigError(f"schema {self.name!r} has no {side} column {name!r} (known: {known})")

    def select(self, user: Iterable[str], item: Iterable[str]) -> DatasetSchema:
        """A schema restricted to the named columns (ids are always kept)."""
        user_keep, item_keep = set(user), set(item)
        for side, keep in (("user", user_keep), ("item", item_keep)):
            for name in keep:
                self.feature(side, name)  # type: ignore[arg-type]
        return dataclasses.replace(
            self,
            user_features=tuple(
                f for f in self.user_features if f.kind == "id" or f.name in user_keep
            ),
            item_features=tuple(
                f for f in self.item_features if f.kind == "id" or f.name in item_keep
            ),
            user_segment=self.user_segment if self.user_segment in user_keep else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSchema:
        try:
            return cls(
                name=data["name"],
                user_features=tuple(Feature(**f) for f in data["user_features"]),
                item_features=tuple(Feature(**f) for f in data["item_features"]),
                user_segment=data.get("user_segment"),
                timestamp=data.get("timestamp"),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed schema description: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DatasetSchema:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"schema is not valid JSON: {exc}") from exc
