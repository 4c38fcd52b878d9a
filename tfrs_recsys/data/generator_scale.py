"""Scale mode of the tech-products generator: positives sampled directly, never cell by cell.

(Over 450 lines: the scale generator and its true model share every parameter;
the sampler and the oracle must not drift apart.)

The default generator (:mod:`tfrs_recsys.data.generator`) draws every user x item
cell, which cannot reach 1M users x 100k items. This one samples each user's
positives directly from a true model built for it (docs/default-dataset.md,
"Scale mode"). Every cell ``(u, i)`` has a Poisson count with rate

    rate(u, i) = lambda[u] * p(i | u),   p(i | u) = exp(s(u, i)) / sum_j exp(s(u, j))
    s(u, i) = V[g[u], i] + taste[u] . E[c[i]] - sens[u] * pbar[c[i]]
    V[g, i] = type_weight * TYPE_AFFINITY[personality(g), type[i]] + text_weight * text[g, i]
              + appeal[i] - sens_bar[g] * (price_z[i] - pbar[c[i]])

and is a positive when its count is above 0, so ``P(u likes i) = 1 - exp(-rate(u, i))``
exactly, independently over cells. ``g[u]`` is the user's (personality, profession)
group; ``c[i]`` the item's latent cluster (a sub-category within a product type
and price tier, which ids and collaborative filtering recover; the cluster also
leans the item's text towards an audience and two qualities); ``E`` the
clusters' taste vectors; ``pbar`` a cluster's mean standardised log price;
``sens[u]`` the price sensitivity of the user's personality and age;
``appeal`` a Zipf popularity (``-appeal_weight * log(rank)``); ``text`` the match
of the group with the audience, qualities and feature phrases of the item's text,
as in the default generator. ``lambda[u]`` is the user's activity, lognormal
(clipped at 3 sigma) times a scale calibrated so that the mean number of
distinct positives per user is ``positives_per_user``.

Sampling (Poisson splitting): a user draws ``N ~ Poisson(lambda[u])`` items with
replacement from ``p(i | u)``; the per-item counts are then independent
``Poisson(rate(u, i))``, so the distinct items are exactly the positives above.
A draw is two-level: the cluster from ``p(c | u)`` (``K`` clusters), then the item
within the cluster by binary search in a cumulative table per (group, cluster),
``O(N (log K + log items))`` per user. :class:`ScaleTrueModel` recomputes the
exact rates and probabilities of any users from the saved arrays
(``truth_scale.npz``).

Randomness: users are drawn in fixed blocks of :data:`BLOCK_USERS`, each from its
own generator seeded by ``(seed, stream, block)``; the items from one generator
of ``(seed, stream)``. The output does not depend on the shard size (the
concatenated interactions are the same for any ``shard_users``).

Measured (benchmarks/generate_scale.py, 2 shared cores): 1M users x 100k items x
100M positives in about 1 minute, 0.75 GB peak memory, 1.2 GB of Parquet.

Longer than 500 lines: the true model, its sampler and the writer of its
directory share the arrays and the randomness blocks; they are kept together.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import atomic_directory, check_writable_target
from tfrs_recsys.data.tech_vocabulary import (
    AGE_MEAN,
    AUDIENCE_AFFINITY,
    AUDIENCES,
    DESCRIPTION_TEMPLATES,
    PERSONALITIES,
    PRICE_SENSITIVITY,
    PRODUCT_TYPES,
    PROFESSION_BOOST,
    PROFESSIONS,
    TYPE_AFFINITY,
    describe_item,
)
from tfrs_recsys.errors import ConfigError, DataValidationError
from tfrs_recsys.progress import logger

__all__ = [
    "BLOCK_USERS",
    "DATASET_TOML",
    "SCALE_TRUTH_FILE",
    "SEED_MAX",
    "ScaleConfig",
    "ScaleData",
    "ScaleTrueModel",
    "dataset_toml",
    "generate_scale",
    "load_scale_truth",
    "write_scale_dataset",
]

SEED_MAX = 2**64 - 1
#: Users per random block: the unit of randomness (not of output) of the interactions.
BLOCK_USERS = 4096
SCALE_TRUTH_FILE = "truth_scale.npz"
DATASET_TOML = "dataset.toml"
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
INTERACTIONS_DIR = "interactions"
MANIFEST_FILE = "dataset.json"
#: The first timestamp: 2024-01-01T00:00:00Z, in Unix seconds.
START_TIME = 1_704_067_200

_USER_STREAM, _ITEM_STREAM, _DRAW_STREAM = 11, 12, 13
# Cells of p(i | u) (float32) kept in memory to calibrate the activity scale: 100 MB.
_CALIBRATION_CELLS = 25_000_000
# Cells of a float64 temporary of the true model's row functions: 32 MB.
_CHUNK_CELLS = 4_000_000


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """Sizes and weights of the scale true model (see the module docstring).

    Attributes:
        users, items: Sizes.
        positives_per_user: Target mean of distinct positives per user, at most items / 2.
        seed: Seed of every draw, in ``[0, 2**64 - 1]``.
        clusters: Latent item clusters; 0 for ``items // 400`` clipped to ``[8, 512]``.
        activity_sigma: Log-scale spread of the users' activity (positives per user).
        type_weight, text_weight, price_weight, taste_weight: Scales of the score terms.
        appeal_weight: Zipf exponent of item popularity.
        taste_rank: Dimension of the user and cluster taste vectors.
        cluster_text_share: Probability that an item's audience (and qualities) are
            its cluster's rather than random.
        days: Span of the timestamps.
    """

    users: int = 10_000
    items: int = 1_000
    positives_per_user: float = 100.0
    seed: int = 42
    clusters: int = 0
    activity_sigma: float = 1.0
    type_weight: float = 1.0
    text_weight: float = 1.0
    price_weight: float = 0.7
    appeal_weight: float = 0.5
    taste_weight: float = 1.0
    taste_rank: int = 8
    cluster_text_share: float = 0.5
    days: int = 365

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ConfigError(f"users must be at least 1, got {self.users}")
        if self.items < len(PRODUCT_TYPES):
            raise ConfigError(
                f"items must be at least {len(PRODUCT_TYPES)} (one per product type), "
                f"got {self.items}"
            )
        if not 0 < self.positives_per_user <= self.items / 2:
            raise ConfigError(
                f"positives_per_user must be in (0, items / 2 = {self.items / 2:g}], "
                f"got {self.positives_per_user}"
            )
        if isinstance(self.seed, bool) or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"seed must be a whole number in [0, {SEED_MAX}], got {self.seed}")
        if self.clusters and not len(PRODUCT_TYPES) <= self.clusters <= self.items:
            raise ConfigError(
                f"clusters must be 0 (automatic) or in [{len(PRODUCT_TYPES)}, items], "
                f"got {self.clusters}"
            )
        if self.taste_rank < 1 or self.days < 1 or self.activity_sigma < 0:
            raise ConfigError(
                "taste_rank and days must be positive and activity_sigma >= 0, got "
                f"{self.taste_rank}, {self.days}, {self.activity_sigma}"
            )
        if not 0.0 <= self.cluster_text_share <= 1.0:
            raise ConfigError(
                f"cluster_text_share must be in [0, 1], got {self.cluster_text_share}"
            )

    @property
    def n_clusters(self) -> int:
        """The requested number of clusters (the true model may have a few more or fewer)."""
        return self.clusters or int(np.clip(self.items // 400, len(PRODUCT_TYPES), 512))


# --- The true model -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScaleTrueModel:
    """Exact Poisson rates and like-probabilities of any users (module docstring).

    Attributes: ``group`` [users] (personality x profession), ``rate`` [users]
    (``lambda``), ``sensitivity`` [users], ``user_taste`` [users, r], ``cluster``
    [items], ``group_item`` [groups, items] (``V``), ``cluster_taste`` [K, r],
    ``cluster_price`` [K] (``pbar``) and ``seed``.
    """

    group: np.ndarray
    rate: np.ndarray
    sensitivity: np.ndarray
    user_taste: np.ndarray
    cluster: np.ndarray
    group_item: np.ndarray
    cluster_taste: np.ndarray
    cluster_price: np.ndarray
    seed: int

    @property
    def n_users(self) -> int:
        return len(self.group)

    @property
    def n_items(self) -> int:
        return len(self.cluster)

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_taste)

    @functools.cached_property
    def _cluster_log_mass(self) -> np.ndarray:
        """``log sum_{i in c} exp(V[g, i])`` [groups, K] (float64)."""
        v = self.group_item.astype(np.float64)
        top = v.max(axis=1, keepdims=True)
        mass = np.zeros((len(v), self.n_clusters))
        for g in range(len(v)):
            mass[g] = np.bincount(
                self.cluster, weights=np.exp(v[g] - top[g]), minlength=self.n_clusters
            )
        return np.log(mass) + top

    def cluster_scores(self, users: np.ndarray) -> np.ndarray:
        """``taste[u] . E[c] - sens[u] * pbar[c]`` [len(users), K] (float64)."""
        users = np.asarray(users, dtype=np.int64)
        taste = self.user_taste[users].astype(np.float64) @ self.cluster_taste.T.astype(np.float64)
        return taste - np.outer(self.sensitivity[users], self.cluster_price).astype(np.float64)

    def cluster_log_probabilities(self, users: np.ndarray) -> np.ndarray:
        """``log p(c | u)`` [len(users), K] (float64): the first level of a draw."""
        users = np.asarray(users, dtype=np.int64)
        logits = self.cluster_scores(users) + self._cluster_log_mass[self.group[users]]
        return logits - _logsumexp(logits)[:, None]

    def log_item_probabilities(self, users: np.ndarray) -> np.ndarray:
        """``log p(i | u)`` [len(users), items] (float64)."""
        users = np.asarray(users, dtype=np.int64)
        scores = self.cluster_scores(users)
        logits = scores + self._cluster_log_mass[self.group[users]]
        out = self.group_item[self.group[users]].astype(np.float64)
        out += scores[:, self.cluster]
        out -= _logsumexp(logits)[:, None]
        return out

    def logits(self, users: np.ndarray) -> np.ndarray:
        """Log Poisson rates ``log rate(u, i)`` [len(users), items] (float32); ranks as p."""
        return self._by_chunks(users, self._log_rates)

    def probabilities(self, users: np.ndarray) -> np.ndarray:
        """``P(u likes i) = 1 - exp(-rate(u, i))`` [len(users), items] (float32)."""
        return self._by_chunks(users, lambda rows: -np.expm1(-np.exp(self._log_rates(rows))))

    def pair_probabilities(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``P(users[k] likes items[k])`` [n] (float32), ``O(taste_rank)`` a pair.

        The first call computes every user's normaliser of ``p(i | u)`` (``O(users x K)``).
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape:
            raise ConfigError(f"users and items differ in shape: {users.shape} vs {items.shape}")
        cluster = self.cluster[items]
        score = (
            self.group_item[self.group[users], items].astype(np.float64)
            + np.einsum(
                "nr,nr->n",
                self.user_taste[users].astype(np.float64),
                self.cluster_taste[cluster].astype(np.float64),
            )
            - self.sensitivity[users].astype(np.float64) * self.cluster_price[cluster]
        )
        rate = self.rate[users] * np.exp(score - self._user_log_normaliser[users])
        return (-np.expm1(-rate)).astype(np.float32)

    @functools.cached_property
    def _user_log_normaliser(self) -> np.ndarray:
        """``log sum_i exp(s(u, i))`` of every user [users] (float64)."""
        step = max(1, _CHUNK_CELLS // self.n_clusters)
        out = np.empty(self.n_users)
        for s in range(0, self.n_users, step):
            users = np.arange(s, min(s + step, self.n_users))
            out[users] = _logsumexp(
                self.cluster_scores(users) + self._cluster_log_mass[self.group[users]]
            )
        return out

    def expected_positives(self, users: np.ndarray) -> np.ndarray:
        """Expected number of distinct positives of each user [len(users)] (float64)."""
        users = np.asarray(users, dtype=np.int64)
        step = max(1, _CHUNK_CELLS // self.n_items)
        return np.concatenate(
            [
                -np.expm1(-np.exp(self._log_rates(users[s : s + step]))).sum(axis=1)
                for s in range(0, len(users), step)
            ]
        )

    def _log_rates(self, users: np.ndarray) -> np.ndarray:
        log_rate = np.log(self.rate[users].astype(np.float64))
        return self.log_item_probabilities(users) + log_rate[:, None]

    def _by_chunks(self, users: np.ndarray, rows: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``rows(users)`` as float32, computed a few users at a time (bounded temporaries)."""
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items), np.float32)
        step = max(1, _CHUNK_CELLS // self.n_items)
        for s in range(0, len(users), step):
            out[s : s + step] = rows(users[s : s + step])
        return out

    @functools.cached_property
    def _item_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items by cluster, cluster starts [K + 1], and the flat cumulative table.

        ``table[g * items + j] = g * K + c + P(item <= order[j] | g, c)`` for the
        ``j``-th item ``order[j]`` (of cluster ``c``): increasing over ``(g, c, j)``,
        so one binary search of ``g * K + c + uniform`` draws an item of cluster ``c``.
        """
        order = np.argsort(self.cluster, kind="stable")
        cluster = self.cluster[order].astype(np.int64)
        starts = np.searchsorted(cluster, np.arange(self.n_clusters + 1))
        ends = starts[1:] - 1
        n_groups, k = len(self.group_item), self.n_clusters
        table = np.empty(n_groups * self.n_items)
        for g in range(n_groups):
            within = np.exp(
                self.group_item[g, order].astype(np.float64) - self._cluster_log_mass[g, cluster]
            )
            cumulative = np.cumsum(within)
            base = np.concatenate([[0.0], cumulative[ends[:-1]]])
            cumulative -= base[cluster]
            cumulative[ends] = 1.0
            table[g * self.n_items : (g + 1) * self.n_items] = g * k + cluster + cumulative
        return order, starts, table

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draws the positives of user rows ``users`` (repeats allowed: independent draws).

        Returns:
            ``(row, item)``: positions in ``users`` and item indices of the
            positives, unique pairs sorted by row then item.
        """
        users = np.asarray(users, dtype=np.int64)
        counts = rng.poisson(self.rate[users].astype(np.float64))
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        b, k, n = len(users), self.n_clusters, self.n_items
        rows = np.repeat(np.arange(b), counts)
        # Level 1: the cluster, by binary search in the rows' cumulative p(c | u) laid end to end.
        cumulative = np.cumsum(np.exp(self.cluster_log_probabilities(users)), axis=1)
        cumulative[:, -1] = 1.0
        flat = (cumulative + np.arange(b)[:, None]).ravel()
        found = np.searchsorted(flat, rows + rng.random(total), side="right")
        cluster = np.minimum(found - rows * k, k - 1)
        # Level 2: the item within the cluster, in the table of the user's group.
        order, starts, table = self._item_table
        group = self.group[users][rows].astype(np.int64)
        query = group * k + cluster + rng.random(total)
        by_value = np.argsort(query)  # sorted needles: searchsorted narrows from the last hit
        found = np.empty(total, np.int64)
        found[by_value] = np.searchsorted(table, query[by_value], side="right")
        position = np.clip(found - group * n, starts[cluster], starts[cluster + 1] - 1)
        keys = np.sort(rows * n + order[position])  # np.unique hashes: 100x slower here
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        return keys // n, keys % n

    def save(self, path: Path) -> None:
        np.savez(path, **{f.name: np.asarray(getattr(self, f.name)) for f in _FIELDS})

    @classmethod
    def load(cls, path: Path) -> ScaleTrueModel:
        try:
            with np.load(path) as data:
                values = {f.name: data[f.name] for f in _FIELDS}
        except (OSError, KeyError, ValueError) as exc:
            raise DataValidationError(
                f"not a valid scale true-model file: {exc}", file=path
            ) from exc
        values["seed"] = int(values["seed"])
        return cls(**values)


_FIELDS = dataclasses.fields(ScaleTrueModel)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1)
    return np.log(np.exp(x - top[:, None]).sum(axis=1)) + top


def load_scale_truth(directory: Path) -> ScaleTrueModel | None:
    """The scale true model of a dataset directory (``truth_scale.npz``), if it has one."""
    path = Path(directory) / SCALE_TRUTH_FILE
    return ScaleTrueModel.load(path) if path.is_file() else None


# --- Users, items and the truth -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScaleData:
    """The feature tables, the true model and the items' launch times (seconds after start).

    Interactions come from :meth:`iter_blocks`.
    """

    config: ScaleConfig
    users: pd.DataFrame
    items: pd.DataFrame
    truth: ScaleTrueModel
    launch: np.ndarray

    @property
    def n_blocks(self) -> int:
        return -(-self.truth.n_users // BLOCK_USERS)

    def block(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The positives of random block ``index``: ``(user, item, timestamp)``, by user, item.

        A timestamp falls uniformly between the item's launch and the end of the span.
        """
        start = index * BLOCK_USERS
        users = np.arange(start, min(start + BLOCK_USERS, self.truth.n_users))
        rng = np.random.default_rng([self.config.seed, _DRAW_STREAM, index])
        rows, items = self.truth.sample(users, rng)
        span = self.config.days * 86_400
        launch = self.launch[items]
        offset = launch + np.floor((span - launch) * rng.random(len(items))).astype(np.int64)
        return users[rows], items, START_TIME + offset

    def iter_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`block` of every block in user order."""
        for index in range(self.n_blocks):
            yield self.block(index)


def generate_scale(config: ScaleConfig | None = None) -> ScaleData:
    """Draws the users, the items and the scale true model (calibrated activity).

    Memory: about 100 bytes a user, 0.5 kB an item, 12 bytes x 30 groups an
    item (the sampling table) and about 100 MB for the calibration.
    """
    config = config or ScaleConfig()
    personality, profession, age, activity, user_taste = _draw_users(config)
    rng = np.random.default_rng([config.seed, _ITEM_STREAM])
    items, item_parts = _make_items(config, rng)
    n_pers, n_prof = len(PERSONALITIES), len(PROFESSIONS)
    group_pers = np.repeat(np.arange(n_pers), n_prof)

    item_type, cluster, price_z, text = item_parts
    k = int(cluster.max()) + 1
    cluster_price = np.bincount(cluster, weights=price_z, minlength=k) / np.bincount(
        cluster, minlength=k
    )
    sens_bar = config.price_weight * (PRICE_SENSITIVITY + 0.02 * (35.0 - AGE_MEAN))[group_pers]
    rank = rng.permutation(config.items) + 1
    appeal = -config.appeal_weight * np.log(rank)
    group_item = (
        config.type_weight * TYPE_AFFINITY[group_pers][:, item_type]
        + config.text_weight * text.T
        + appeal[None, :]
        - sens_bar[:, None] * (price_z - cluster_price[cluster])[None, :]
    )
    scale = np.sqrt(config.taste_weight / np.sqrt(config.taste_rank))
    cluster_taste = scale * rng.standard_normal((k, config.taste_rank))
    span = config.days * 86_400
    launch = np.clip(rng.uniform(-0.5 * span, 0.9 * span, config.items), 0, None).astype(np.int64)

    sensitivity = config.price_weight * (PRICE_SENSITIVITY[personality] + 0.02 * (35.0 - age))
    truth = ScaleTrueModel(
        group=(personality * n_prof + profession).astype(np.int16),
        rate=np.zeros(config.users, np.float32),
        sensitivity=sensitivity.astype(np.float32),
        user_taste=np.float32(scale) * user_taste,
        cluster=cluster.astype(np.int32),
        group_item=group_item.astype(np.float32),
        cluster_taste=cluster_taste.astype(np.float32),
        cluster_price=cluster_price.astype(np.float32),
        seed=config.seed,
    )
    rate = _calibrated_rates(truth, activity, config.positives_per_user)
    truth = dataclasses.replace(truth, rate=rate.astype(np.float32))
    users = _users_frame(personality, profession, age)
    return ScaleData(config=config, users=users, items=items, truth=truth, launch=launch)


def _calibrated_rates(truth: ScaleTrueModel, activity: np.ndarray, mean: float) -> np.ndarray:
    """``scale * activity`` whose mean number of distinct positives per user is ``mean``.

    ``E(u) = sum_i 1 - exp(-scale * activity[u] * p(i | u))`` on a sample of users
    (all of them if they fit in the calibration budget), extrapolated with the
    ratio estimator ``sum_all activity * sum_s E(s) / sum_s activity``; ``E`` is
    increasing and concave in ``scale``, so Newton's method from below converges.
    """
    n_sample = min(truth.n_users, max(64, _CALIBRATION_CELLS // truth.n_items))
    sample = np.linspace(0, truth.n_users - 1, n_sample).round().astype(np.int64)
    sample = np.unique(sample)
    weights = activity[sample]
    target = mean * truth.n_users * weights.sum() / activity.sum()
    chunk = 16
    probabilities = np.empty((len(sample), truth.n_items), np.float32)
    for s in range(0, len(sample), chunk):
        probabilities[s : s + chunk] = np.exp(truth.log_item_probabilities(sample[s : s + chunk]))
    scale = target / weights.sum()
    for _ in range(100):
        expected = slope = 0.0
        for s in range(0, len(sample), chunk):
            p = probabilities[s : s + chunk]
            w = weights[s : s + chunk, None]
            x = (scale * w) * p
            expected += float(-np.expm1(-x).sum())
            slope += float((w * p * np.exp(-x)).sum())
        if abs(target - expected) <= 1e-7 * target:
            break
        scale += (target - expected) / slope
    return scale * activity


def _draw_users(
    config: ScaleConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Personality, profession, age, activity and standard-normal taste of every user."""
    n_pers = len(PERSONALITIES)
    weights = np.ones((n_pers, len(PROFESSIONS)))
    for p, (prefix, _) in enumerate(PERSONALITIES):
        for prof, boost in PROFESSION_BOOST[prefix].items():
            weights[p, PROFESSIONS.index(prof)] += boost
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    parts: list[tuple[np.ndarray, ...]] = []
    for block in range(-(-config.users // BLOCK_USERS)):
        n = min(BLOCK_USERS, config.users - block * BLOCK_USERS)
        rng = np.random.default_rng([config.seed, _USER_STREAM, block])
        personality = rng.integers(n_pers, size=n)
        age = np.clip(np.rint(AGE_MEAN[personality] + 8.0 * rng.standard_normal(n)), 18, 65)
        profession = (rng.random(n)[:, None] > cumulative[personality]).sum(axis=1)
        profession = np.minimum(profession, len(PROFESSIONS) - 1)
        sigma = config.activity_sigma
        activity = np.exp(np.clip(sigma * rng.standard_normal(n), -3 * sigma, 3 * sigma))
        taste = rng.standard_normal((n, config.taste_rank), dtype=np.float32)
        parts.append((personality, profession, age, activity, taste))
    personality, profession, age, activity, taste = (np.concatenate(p) for p in zip(*parts))
    return personality, profession, age, activity, taste


def _users_frame(personality: np.ndarray, profession: np.ndarray, age: np.ndarray) -> pd.DataFrame:
    width = max(4, len(str(len(age))))
    return pd.DataFrame(
        {
            "user_id": [f"user_{n:0{width}d}" for n in range(1, len(age) + 1)],
            "age": age.astype(np.int64),
            "profession": np.asarray(PROFESSIONS, dtype=object)[profession],
            "personality": np.asarray([name for _, name in PERSONALITIES], dtype=object)[
                personality
            ],
        }
    )


def _make_items(
    config: ScaleConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The items table and (type, cluster, standardised log price, group text match [items, G])."""
    n_types = len(PRODUCT_TYPES)
    shares = np.array([t.share for t in PRODUCT_TYPES])
    counts = np.floor(shares / shares.sum() * config.items).astype(int)
    counts[np.argsort(-shares)[: config.items - counts.sum()]] += 1
    per_type = np.clip(np.rint(config.n_clusters * counts / config.items), 1, None).astype(int)
    per_type = np.minimum(per_type, counts)  # no cluster without items (tiny catalogs)
    first = np.concatenate([[0], np.cumsum(per_type)[:-1]])

    item_type = rng.permutation(np.repeat(np.arange(n_types), counts))
    cluster = np.empty(config.items, np.int64)
    for t in range(n_types):
        members = np.flatnonzero(item_type == t)
        if len(members) == 0:
            continue
        size = rng.lognormal(0.0, 0.5, per_type[t])
        extra = rng.choice(per_type[t], size=len(members) - per_type[t], p=size / size.sum())
        cluster[members] = first[t] + rng.permutation(
            np.concatenate([np.arange(per_type[t]), extra])
        )
    n_clusters = int(per_type.sum())
    cluster_type = np.repeat(np.arange(n_types), per_type)

    low = np.log([t.price_range[0] for t in PRODUCT_TYPES])[cluster_type]
    high = np.log([t.price_range[1] for t in PRODUCT_TYPES])[cluster_type]
    centre = rng.uniform(low, high)
    # Around the cluster's centre, reflected into the type's range (no pile-up at the bounds).
    width = (high - low)[cluster]
    spread = centre[cluster] + 0.12 * width * rng.standard_normal(config.items) - low[cluster]
    spread = np.mod(spread, 2 * width)
    log_price = low[cluster] + np.where(spread > width, 2 * width - spread, spread)
    price = np.round(np.exp(log_price), 2)
    price_z = (np.log(price) - np.log(price).mean()) / (np.log(price).std() + 1e-12)

    # The clusters' audience and pair of qualities, which their items lean towards.
    cluster_audience = rng.integers(len(AUDIENCES), size=n_clusters)
    cluster_qualities = [
        rng.choice(len(PRODUCT_TYPES[t].qualities), size=2, replace=False) for t in cluster_type
    ]
    affinity = _token_affinity(rng)
    n_pers, n_prof = len(PERSONALITIES), len(PROFESSIONS)
    item_text = np.zeros((config.items, n_pers + n_prof))
    own = rng.random((config.items, 2)) < config.cluster_text_share
    templates = rng.integers(len(DESCRIPTION_TEMPLATES), size=config.items)
    n_features = rng.integers(2, 5, size=config.items)
    descriptions, features = [], []
    for i in range(config.items):
        kind, c = PRODUCT_TYPES[item_type[i]], cluster[i]
        audience = AUDIENCES[cluster_audience[c] if own[i, 0] else rng.integers(len(AUDIENCES))]
        pair = (
            cluster_qualities[c]
            if own[i, 1]
            else rng.choice(len(kind.qualities), size=2, replace=False)
        )
        q1, q2 = kind.qualities[pair[0]], kind.qualities[pair[1]]
        purpose = kind.purposes[rng.integers(len(kind.purposes))]
        description, chosen = describe_item(
            kind, templates[i], audience, (q1, q2), purpose, n_features[i], rng
        )
        descriptions.append(description)
        features.append(", ".join(chosen))
        for token in (
            f"audience:{audience}",
            f"quality:{q1}",
            f"quality:{q2}",
            *(f"feature:{f}" for f in chosen),
        ):
            item_text[i] += affinity[token]
    group_text = (
        item_text[:, np.repeat(np.arange(n_pers), n_prof)]
        + item_text[:, n_pers + np.tile(np.arange(n_prof), n_pers)]
    )
    group_text = (group_text - group_text.mean()) / (group_text.std() + 1e-9)

    width = max(4, len(str(config.items)))
    items = pd.DataFrame(
        {
            "item_id": [f"item_{n:0{width}d}" for n in range(1, config.items + 1)],
            "product_type": np.asarray([t.name for t in PRODUCT_TYPES], dtype=object)[item_type],
            "description": descriptions,
            "price": price,
            "features": features,
        }
    )
    return items, (item_type, cluster, price_z, group_text)


def _token_affinity(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Affinity of every text token with the personalities then the professions.

    Hand-set for audiences (:data:`AUDIENCE_AFFINITY`), random and sparse for
    qualities and feature phrases, as in the default generator.
    """
    keys = [p for p, _ in PERSONALITIES] + list(PROFESSIONS)
    out: dict[str, np.ndarray] = {}
    for audience in AUDIENCES:
        row = np.zeros(len(keys))
        for key, value in AUDIENCE_AFFINITY[audience].items():
            row[keys.index(key)] = value
        out[f"audience:{audience}"] = row
    qualities = sorted({q for t in PRODUCT_TYPES for q in t.qualities})
    phrases = sorted({f for t in PRODUCT_TYPES for f in t.features})
    for kind, words, scale in (("quality", qualities, 0.6), ("feature", phrases, 0.35)):
        for word in words:
            out[f"{kind}:{word}"] = (
                scale * rng.standard_normal(len(keys)) * (rng.random(len(keys)) < 0.4)
            )
    return out


# --- Writing ------------------------------------------------------------------


def dataset_toml(name: str = "tech-products-scale") -> str:
    """The ``dataset.toml`` declaring the files and the columns' roles."""
    return f"""name = "{name}"

[interactions]
path = "{INTERACTIONS_DIR}/*.parquet"
user_id = "user_id"
item_id = "item_id"
timestamp = "timestamp"

[users]
path = "{USERS_FILE}"
id = "user_id"

[users.columns]
age = "numeric"
profession = "categorical"
personality = "categorical"

[items]
path = "{ITEMS_FILE}"
id = "item_id"

[items.columns]
price = {{ role = "numeric", log = true }}
product_type = "categorical"
description = "text"
features = "text"
"""


def write_scale_dataset(
    out: str | Path,
    config: ScaleConfig | None = None,
    *,
    shard_users: int = 20_000,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generates a scale dataset into ``out`` (atomically) and returns its manifest.

    Writes ``users.parquet``, ``items.parquet``, ``interactions/part-NNNNN.parquet``
    (``user_id, item_id, timestamp``; ``shard_users`` users a shard),
    ``truth_scale.npz``, ``dataset.toml`` and ``dataset.json``. Logs a progress
    line (:mod:`tfrs_recsys.progress`) every twentieth of the shards.

    Raises:
        ConfigError: ``shard_users`` is not positive, or ``out`` exists and is
            not empty and ``overwrite`` is false (before anything is drawn).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = config or ScaleConfig()
    if shard_users < 1:
        raise ConfigError(f"shard_users must be at least 1, got {shard_users}")
    out = Path(out)
    check_writable_target(out, overwrite=overwrite)
    started = time.perf_counter()
    data = generate_scale(config)
    setup_seconds = time.perf_counter() - started
    user_ids = pa.array(data.users["user_id"].to_numpy(), pa.string())
    item_ids = pa.array(data.items["item_id"].to_numpy(), pa.string())
    n_shards = -(-config.users // shard_users)
    every = max(1, -(-n_shards // 20))
    positives = 0
    per_user = np.zeros(config.users, np.int64)
    with atomic_directory(out, overwrite=overwrite) as staging:
        data.users.to_parquet(staging / USERS_FILE, index=False)
        data.items.to_parquet(staging / ITEMS_FILE, index=False)
        data.truth.save(staging / SCALE_TRUTH_FILE)
        (staging / INTERACTIONS_DIR).mkdir()
        shards = 0
        for done, (users_done, user, item, stamp) in enumerate(_shards(data, shard_users), 1):
            if len(user):  # a shard of users without positives is no file (readers refuse them)
                table = pa.table(
                    {
                        "user_id": user_ids.take(pa.array(user)),
                        "item_id": item_ids.take(pa.array(item)),
                        "timestamp": pa.array(stamp, pa.int64()),
                    }
                )
                path = staging / INTERACTIONS_DIR / f"part-{shards:05d}.parquet"
                pq.write_table(table, path, use_dictionary=["item_id"])
                shards += 1
            positives += len(user)
            per_user += np.bincount(user, minlength=config.users)
            if done % every == 0 or done == n_shards:
                logger.info(
                    "generate-data --scale: %d/%d shards, %d/%d users, %d positives, %.0f s",
                    done,
                    n_shards,
                    users_done,
                    config.users,
                    positives,
                    time.perf_counter() - started,
                )
        (staging / DATASET_TOML).write_text(dataset_toml(), encoding="utf-8")
        manifest = {
            "dataset": "tech-products-scale",
            "layout": "long",
            "users": config.users,
            "items": config.items,
            "positives": positives,
            "density": positives / (config.users * config.items),
            "positives_per_user": {
                "mean": positives / config.users,
                "median": float(np.median(per_user)),
                "min": int(per_user.min()),
                "max": int(per_user.max()),
                "users_without_positives": int((per_user == 0).sum()),
            },
            "clusters": data.truth.n_clusters,
            "shards": shards,
            "shard_users": shard_users,
            "generator": {"mode": "scale", **dataclasses.asdict(config)},
            "truth": SCALE_TRUTH_FILE,
            "seconds": {
                "setup": round(setup_seconds, 2),
                "total": round(time.perf_counter() - started, 2),
            },
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _shards(
    data: ScaleData, shard_users: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(users so far, user, item, timestamp)`` of shards of ``shard_users`` consecutive users."""
    n_users = data.truth.n_users
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    shard_end = min(shard_users, n_users)
    for index, (user, item, stamp) in enumerate(data.iter_blocks()):
        block_end = min((index + 1) * BLOCK_USERS, n_users)
        while shard_end <= block_end:  # the shard ends within this block
            cut = int(np.searchsorted(user, shard_end))
            pending.append((user[:cut], item[:cut], stamp[:cut]))
            user, item, stamp = user[cut:], item[cut:], stamp[cut:]
            yield shard_end, *(np.concatenate(parts) for parts in zip(*pending))
            pending = []
            if shard_end == n_users:
                return
            shard_end = min(shard_end + shard_users, n_users)
        pending.append((user, item, stamp))
