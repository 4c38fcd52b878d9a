"""Deterministic generator of the tech-products dataset (docs/default-dataset.md).

Every cell of the user x item matrix is drawn from a hidden true probability

    p(u, i) = sigmoid(b + activity[u] + appeal[i] + G[group[u], i]
                      - sensitivity[u] * price_z[i] + taste[u] . taste[i] + noise(u, i))

where ``group[u]`` is the user's (personality, profession) pair and ``G`` mixes

- the personality x product-type affinity,
- the match between the user's personality and profession and the audience,
  qualities and feature phrases named in the item's description and features
  (a signal only the text carries: the product type and price do not show it).

``activity`` and ``appeal`` are per-user and per-item random offsets (spread of
positives per user, item popularity), the low-rank ``taste`` term is signal only
ids and collaborative filtering can recover, ``sensitivity`` depends on
personality and age, and ``noise`` is a per-cell logistic term. The intercept
``b`` is calibrated so that the expected density equals the target.

Randomness is counter-based: the cell noise and the Bernoulli draw of cell
``(u, i)`` are hashes of ``(seed, u, i)``, so results do not depend on how the
matrix is chunked, and :class:`TrueModel` recomputes the exact probabilities of
any users from a few small arrays (``truth.npz``), at any catalog size.

Before drawing anything, :func:`check_memory` refuses sizes the machine cannot
hold. Longer than 500 lines: the memory estimate is measured on this code and
kept beside it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

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
from tfrs_recsys.progress import Periodic

#: The largest seed: the counter-based draws key on a 64-bit unsigned seed.
SEED_MAX = 2**64 - 1


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Sizes and the mixing weights of the true preference logit.

    Attributes:
        users: Number of users, split evenly over the 5 personalities.
        items: Catalog size.
        seed: Seed of every random draw, in ``[0, 2**64 - 1]``.
        density: Target share of positive cells (the notebooks' 9.66 %).
        type_weight, price_weight, text_weight, appeal_weight, taste_weight,
        activity_weight, noise_scale: Scales of the logit terms (see module doc).
        taste_rank: Rank of the low-rank taste term.
    """

    users: int = 10_000
    items: int = 1_000
    seed: int = 42
    density: float = 0.0966
    type_weight: float = 1.0
    price_weight: float = 0.7
    text_weight: float = 1.0
    appeal_weight: float = 0.8
    taste_weight: float = 0.8
    activity_weight: float = 0.6
    noise_scale: float = 0.3
    taste_rank: int = 8

    def __post_init__(self) -> None:
        if self.users < len(PERSONALITIES):
            raise ConfigError(f"users must be at least {len(PERSONALITIES)}, got {self.users}")
        if self.items < 2:
            raise ConfigError(f"items must be at least 2, got {self.items}")
        if not 0.0 < self.density < 1.0:
            raise ConfigError(f"density must be in (0, 1), got {self.density}")
        if isinstance(self.seed, bool) or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(
                f"seed must be a whole number in [0, {SEED_MAX}] (a 64-bit key), got {self.seed}"
            )
        if self.taste_rank < 1:
            raise ConfigError(f"taste_rank must be positive, got {self.taste_rank}")


# --- Counter-based randomness -------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # Multiplication modulo 2**64 is the point of the hash: silence overflow.
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def cell_uniform(seed: int, stream: int, users: np.ndarray, n_items: int) -> np.ndarray:
    """Uniform (0, 1) numbers for cells ``(u, i)`` of the given user rows.

    A pure function of ``(seed, stream, u, i)``: ``[len(users), n_items]`` float64.
    """
    with np.errstate(over="ignore"):  # modulo 2**64, as in _splitmix64
        key = _splitmix64(np.uint64(seed) * np.uint64(0x100000001B3) + np.uint64(stream))
    cells = (
        users.astype(np.uint64)[:, None] * np.uint64(n_items)
        + np.arange(n_items, dtype=np.uint64)[None, :]
    )
    bits = _splitmix64(cells ^ key)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


_NOISE_STREAM = 1
_DRAW_STREAM = 2


# --- The true model -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrueModel:
    """The hidden preference model: exact ``p(u, i)`` for any user rows.

    Attributes mirror the terms of the module docstring: ``group`` [users] int,
    ``group_item`` [groups, items], ``activity`` and ``sensitivity`` [users],
    ``appeal`` and ``price_z`` [items], ``user_taste`` [users, r],
    ``item_taste`` [items, r], ``intercept``, ``noise_scale`` and ``seed``.
    """

    group: np.ndarray
    group_item: np.ndarray
    activity: np.ndarray
    sensitivity: np.ndarray
    appeal: np.ndarray
    price_z: np.ndarray
    user_taste: np.ndarray
    item_taste: np.ndarray
    intercept: float
    noise_scale: float
    seed: int

    @property
    def n_users(self) -> int:
        return len(self.group)

    @property
    def n_items(self) -> int:
        return len(self.appeal)

    def logits(self, users: np.ndarray, *, intercept: float | None = None) -> np.ndarray:
        """True logits ``[len(users), n_items]`` (float32) of user rows ``users``."""
        users = np.asarray(users, dtype=np.int64)
        b = float(self.intercept if intercept is None else intercept)
        out = self.group_item[self.group[users]].astype(np.float32)
        out += (self.activity[users] + b).astype(np.float32)[:, None]
        out += self.appeal.astype(np.float32)[None, :]
        out -= np.outer(self.sensitivity[users], self.price_z).astype(np.float32)
        out += (self.user_taste[users] @ self.item_taste.T).astype(np.float32)
        if self.noise_scale > 0:
            uniform = cell_uniform(self.seed, _NOISE_STREAM, users, self.n_items)
            # Logistic noise with standard deviation noise_scale.
            out += (self.noise_scale * np.sqrt(3.0) / np.pi) * np.log(
                uniform / (1.0 - uniform)
            ).astype(np.float32)
        return out

    def probabilities(self, users: np.ndarray) -> np.ndarray:
        """True probabilities ``[len(users), n_items]`` (float32)."""
        return _sigmoid(self.logits(users))

    def draw(self, users: np.ndarray) -> np.ndarray:
        """The sampled 0/1 cells ``[len(users), n_items]`` (bool) of user rows."""
        users = np.asarray(users, dtype=np.int64)
        return cell_uniform(self.seed, _DRAW_STREAM, users, self.n_items) < self.probabilities(
            users
        )

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            **{f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)},
        )

    @classmethod
    def load(cls, path: Path) -> TrueModel:
        try:
            with np.load(path) as data:
                values = {f.name: data[f.name] for f in dataclasses.fields(cls)}
        except (OSError, KeyError, ValueError) as exc:
            raise DataValidationError(f"not a valid true-model file: {exc}", file=path) from exc
        values["intercept"] = float(values["intercept"])
        values["noise_scale"] = float(values["noise_scale"])
        values["seed"] = int(values["seed"])
        return cls(**values)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


# --- The generated tables -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GeneratedData:
    """Users and items tables plus the true model; cells come from ``iter_cells``."""

    config: GeneratorConfig
    users: pd.DataFrame
    items: pd.DataFrame
    truth: TrueModel

    def iter_cells(self, chunk_users: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields ``(user_rows, cells)`` with ``cells`` [len(user_rows), items] bool.

        Logs a progress line (:mod:`tfrs_recsys.progress`) every 10 seconds.
        """
        ticker = Periodic("drawing interactions", total=self.truth.n_users, unit="users")
        for start in range(0, self.truth.n_users, chunk_users):
            rows = np.arange(start, min(start + chunk_users, self.truth.n_users))
            yield rows, self.truth.draw(rows)
            ticker.advance(len(rows))
        ticker.finish()

    def matrix(self) -> np.ndarray:
        """The whole 0/1 matrix ``[users, items]`` (uint8); for small sizes only."""
        return np.concatenate([cells for _, cells in self.iter_cells()]).astype(np.uint8)


# --- Memory -------------------------------------------------------------------

# Peak bytes of generate() plus writing the dataset, measured (RSS) on 10^5..10^6 users and
# 2..10^5 items: per user, per item, per cell of the intercept calibration (at most
# _CALIBRATION_CELLS), plus a fixed part (the chunks being written, the interpreter).
_BYTES_PER_USER = 400
_BYTES_PER_ITEM = 1_500
_BYTES_PER_CELL = 40
_BYTES_FIXED = 400 * 2**20
_CALIBRATION_CELLS = 20_000_000


def memory_needed(users: int, items: int) -> int:
    """Estimated peak bytes of generating and writing a ``users`` x ``items`` dataset."""
    cells = min(users * items, _CALIBRATION_CELLS)
    return (
        _BYTES_PER_USER * users + _BYTES_PER_ITEM * items + _BYTES_PER_CELL * cells + _BYTES_FIXED
    )


def physical_memory() -> int | None:
    """Bytes of physical memory of the machine, or None if the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return None


def check_memory(config: GeneratorConfig, available: int | None = None) -> None:
    """Fails, before anything is allocated, if the dataset cannot fit in memory.

    Args:
        config: The sizes to generate.
        available: Bytes of memory; default :func:`physical_memory`.

    Raises:
        ConfigError: The estimate (:func:`memory_needed`) exceeds ``available``;
            the message gives both and a number of users that fits.
    """
    available = physical_memory() if available is None else available
    needed = memory_needed(config.users, config.items)
    if available is None or needed <= available:
        return
    # The most users whose estimate takes half of the memory (a margin for everything else).
    low, high = 0, config.users
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (
            (middle, high)
            if memory_needed(middle, config.items) <= available // 2
            else (low, middle - 1)
        )
    fits = low
    suggestion = (
        f"try --users {_round_down(fits):,} or fewer"
        if fits >= len(PERSONALITIES)
        else "try fewer --items"
    )
    raise ConfigError(
        f"{config.users:,} users x {config.items:,} items need about {_gigabytes(needed)} of "
        f"memory to generate, this machine has {_gigabytes(available)}; {suggestion}"
    )


def _gigabytes(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"


def _round_down(value: int) -> int:
    """``value`` rounded down to its two leading digits (123,456 -> 120,000)."""
    scale = 10 ** max(0, len(str(value)) - 2)
    return value // scale * scale


def generate(config: GeneratorConfig | None = None) -> GeneratedData:
    """Draws the users, the items and the true preference model.

    The 0/1 cells are drawn lazily by :meth:`GeneratedData.iter_cells`.

    Raises:
        ConfigError: The sizes need more memory than the machine has
            (:func:`check_memory`; checked before anything is drawn).
    """
    config = config or GeneratorConfig()
    check_memory(config)
    rng = np.random.default_rng(config.seed)
    users, personality, profession, age = _make_users(config, rng)
    items, item_type, tokens = _make_items(config, rng)

    n_pers, n_prof = len(PERSONALITIES), len(PROFESSIONS)
    group = personality * n_prof + profession

    # Text affinity of every token with every personality and profession:
    # hand-set for audiences, random (sparse-ish) for qualities and feature phrases.
    token_names = tokens.columns
    affinity = np.zeros((len(token_names), n_pers + n_prof))
    keys = [p for p, _ in PERSONALITIES] + list(PROFESSIONS)
    for t, name in enumerate(token_names):
        kind, _, word = name.partition(":")
        if kind == "audience":
            for key, value in AUDIENCE_AFFINITY[word].items():
                affinity[t, keys.index(key)] = value
        else:
            scale = 0.6 if kind == "quality" else 0.35
            affinity[t] = (
                scale * rng.standard_normal(n_pers + n_prof) * (rng.random(n_pers + n_prof) < 0.4)
            )
    item_text = tokens.to_numpy(dtype=np.float64) @ affinity  # [items, pers + prof]
    group_text = (
        item_text[:, np.repeat(np.arange(n_pers), n_prof)]
        + item_text[:, n_pers + np.tile(np.arange(n_prof), n_pers)]
    )  # [items, groups]
    group_text = (group_text - group_text.mean()) / (group_text.std() + 1e-9)
    group_type = TYPE_AFFINITY[np.repeat(np.arange(n_pers), n_prof)][
        :, item_type
    ]  # [groups, items]
    group_item = config.type_weight * group_type + config.text_weight * group_text.T

    log_price = np.log(items["price"].to_numpy())
    price_z = (log_price - log_price.mean()) / log_price.std()
    sensitivity = config.price_weight * (PRICE_SENSITIVITY[personality] + 0.02 * (35.0 - age))

    r = config.taste_rank
    truth = TrueModel(
        group=group.astype(np.int32),
        group_item=group_item.astype(np.float32),
        activity=(config.activity_weight * rng.standard_normal(config.users)).astype(np.float32),
        sensitivity=sensitivity.astype(np.float32),
        appeal=(config.appeal_weight * rng.standard_normal(config.items)).astype(np.float32),
        price_z=price_z.astype(np.float32),
        user_taste=(
            np.sqrt(config.taste_weight / np.sqrt(r)) * rng.standard_normal((config.users, r))
        ).astype(np.float32),
        item_taste=(
            np.sqrt(config.taste_weight / np.sqrt(r)) * rng.standard_normal((config.items, r))
        ).astype(np.float32),
        intercept=0.0,
        noise_scale=config.noise_scale,
        seed=config.seed,
    )
    truth = dataclasses.replace(truth, intercept=_calibrate_intercept(truth, config.density, rng))
    return GeneratedData(config=config, users=users, items=items, truth=truth)


def _calibrate_intercept(truth: TrueModel, density: float, rng: np.random.Generator) -> float:
    """Intercept whose expected density equals ``density`` (Newton on a sample)."""
    sample = np.arange(truth.n_users)
    if truth.n_users * truth.n_items > _CALIBRATION_CELLS:
        sample = np.sort(
            rng.choice(
                truth.n_users, size=max(1, _CALIBRATION_CELLS // truth.n_items), replace=False
            )
        )
    base = truth.logits(sample, intercept=0.0).astype(np.float64)
    b = float(np.log(density / (1.0 - density)) - base.mean())
    for _ in range(30):
        p = 0.5 * (1.0 + np.tanh(0.5 * (base + b)))
        gap = p.mean() - density
        if abs(gap) < 1e-7:
            break
        b -= float(gap / max((p * (1.0 - p)).mean(), 1e-12))
    return float(b)


def _user_ids(prefix: str, count: int, width: int) -> list[str]:
    return [f"{prefix}_{n:0{width}d}" for n in range(1, count + 1)]


def _make_users(
    config: GeneratorConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    n_pers = len(PERSONALITIES)
    counts = np.full(n_pers, config.users // n_pers)
    counts[: config.users % n_pers] += 1
    width = max(4, len(str(counts.max())))
    personality = np.repeat(np.arange(n_pers), counts)
    ids = [
        uid for (prefix, _), n in zip(PERSONALITIES, counts) for uid in _user_ids(prefix, n, width)
    ]

    age = np.clip(np.rint(AGE_MEAN[personality] + 8.0 * rng.standard_normal(config.users)), 18, 65)
    weights = np.ones((n_pers, len(PROFESSIONS)))
    for p, (prefix, _) in enumerate(PERSONALITIES):
        for prof, boost in PROFESSION_BOOST[prefix].items():
            weights[p, PROFESSIONS.index(prof)] += boost
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    profession = (rng.random(config.users)[:, None] > cumulative[personality]).sum(axis=1)
    profession = np.minimum(profession, len(PROFESSIONS) - 1)

    users = pd.DataFrame(
        {
            "user_id": ids,
            "age": age.astype(np.int64),
            "profession": np.asarray(PROFESSIONS, dtype=object)[profession],
            "personality": np.asarray([name for _, name in PERSONALITIES], dtype=object)[
                personality
            ],
        }
    )
    return users, personality, profession, age


def _make_items(
    config: GeneratorConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    shares = np.array([t.share for t in PRODUCT_TYPES])
    counts = np.floor(shares / shares.sum() * config.items).astype(int)
    counts[np.argsort(-shares)[: config.items - counts.sum()]] += 1
    item_type = rng.permutation(np.repeat(np.arange(len(PRODUCT_TYPES)), counts))

    low = np.array([t.price_range[0] for t in PRODUCT_TYPES])[item_type]
    high = np.array([t.price_range[1] for t in PRODUCT_TYPES])[item_type]
    price = np.round(np.exp(rng.uniform(np.log(low), np.log(high))), 2)

    quality_vocab = sorted({q for t in PRODUCT_TYPES for q in t.qualities})
    feature_vocab = sorted({f for t in PRODUCT_TYPES for f in t.features})
    token_names = (
        [f"audience:{a}" for a in AUDIENCES]
        + [f"quality:{q}" for q in quality_vocab]
        + [f"feature:{f}" for f in feature_vocab]
    )
    token_index = {name: k for k, name in enumerate(token_names)}
    tokens = np.zeros((config.items, len(token_names)), dtype=np.float32)

    templates = rng.integers(len(DESCRIPTION_TEMPLATES), size=config.items)
    audiences = rng.integers(len(AUDIENCES), size=config.items)
    n_features = rng.integers(2, 5, size=config.items)
    descriptions, features = [], []
    for i, t in enumerate(item_type):
        kind = PRODUCT_TYPES[t]
        q1, q2 = rng.choice(kind.qualities, size=2, replace=False)
        purpose = kind.purposes[rng.integers(len(kind.purposes))]
        audience = AUDIENCES[audiences[i]]
        description, chosen = describe_item(
            kind, templates[i], audience, (q1, q2), purpose, n_features[i], rng
        )
        descriptions.append(description)
        features.append(", ".join(chosen))
        tokens[i, token_index[f"audience:{audience}"]] = 1.0
        tokens[i, token_index[f"quality:{q1}"]] = 1.0
        tokens[i, token_index[f"quality:{q2}"]] = 1.0
        for phrase in chosen:
            tokens[i, token_index[f"feature:{phrase}"]] = 1.0

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
    return items, item_type, pd.DataFrame(tokens, columns=token_names)
