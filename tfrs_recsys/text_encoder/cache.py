"""Embed each distinct string once: an on-disk cache of sentence embeddings.

:func:`embed_texts` de-duplicates its strings, looks each one up by the SHA-256
of its UTF-8 bytes in ``<cache>/text_embeddings/<encoder fingerprint>/``, runs
the encoder only on the strings it does not find, stores their vectors and
returns one row per input string, in order. The fingerprint
(:meth:`~tfrs_recsys.text_encoder.hub_encoder.EncoderSpec.fingerprint`) covers
the weights, tokenizer, pooling, normalisation and sequence length, so a
different encoder or setting never reads another's vectors.

Each call that computes vectors adds one shard, ``shard-<hash>.npz`` (``keys``
uint8 ``[n, 32]``, ``vectors`` float32 ``[n, dim]``), written atomically
(:func:`tfrs_recsys.atomic.atomic_file`); past :data:`MAX_SHARDS` shards they are
merged into one. A shard that cannot be read is ignored (and removed), so its
strings are simply embedded again.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
import weakref
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.atomic import atomic_file
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.paths import cache_dir
from tfrs_recsys.progress import Periodic
from tfrs_recsys.progress import logger as progress

logger = logging.getLogger(__name__)

EMBEDDINGS_DIR = "text_embeddings"
#: More shards than this are merged into one after a store.
MAX_SHARDS = 32
DEFAULT_BATCH_SIZE = 64
#: Loaded encoder layers kept for later calls (loading MiniLM takes seconds).
_LAYERS: dict[Any, Any] = {}
_MAX_LAYERS = 2
#: The traced inference function of each layer, traced once.
_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def text_key(text: str) -> bytes:
    """The cache key of a string: SHA-256 of its UTF-8 bytes (32 bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """The vectors of one encoder fingerprint, stored as npz shards in ``directory``.

    Args:
        directory: The fingerprint's directory (created on the first store).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def for_fingerprint(cls, fingerprint: str, cache: Path | None = None) -> EmbeddingCache:
        """``<cache>/text_embeddings/<fingerprint>``."""
        root = Path(cache if cache is not None else cache_dir()).expanduser()
        return cls(root / EMBEDDINGS_DIR / fingerprint)

    def shards(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.npz")) if self.directory.is_dir() else []

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
        except FileNotFoundError:
            return None  # merged away by another process
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("ignoring unreadable embedding shard %s (%s); removing it", path, exc)
            path.unlink(missing_ok=True)
            return None
        if keys.ndim != 2 or keys.shape[1] != 32 or vectors.ndim != 2 or len(keys) != len(vectors):
            logger.warning("ignoring malformed embedding shard %s; removing it", path)
            path.unlink(missing_ok=True)
            return None
        return keys, vectors

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors of those ``keys`` that are in the cache."""
        wanted = set(keys)
        found: dict[bytes, np.ndarray] = {}
        if not wanted:
            return found
        for shard in self.shards():
            content = self._read(shard)
            if content is None:
                continue
            shard_keys, vectors = content
            for row, key in enumerate(shard_keys):
                key = key.tobytes()
                if key in wanted and key not in found:
                    found[key] = vectors[row]
            if len(found) == len(wanted):
                break
        return found

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path | None:
        """Adds a shard with ``vectors[i]`` under ``keys[i]``; returns its path (None if empty)."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ConfigError(
                f"expected one vector per key: {len(keys)} keys, vectors of shape {vectors.shape}"
            )
        if not len(keys):
            return None
        key_array = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 32)
        name = f"shard-{hashlib.sha256(key_array.tobytes()).hexdigest()[:16]}-{uuid.uuid4().hex[:8]}.npz"
        path = self._write(name, key_array, vectors)
        if len(self.shards()) > MAX_SHARDS:
            self.compact()
        return path

    def _write(self, name: str, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        with atomic_file(target) as staging:
            # A handle, not a path: np.savez would add ".npz" to the staging name.
            with open(staging, "wb") as handle:
                np.savez(handle, keys=keys, vectors=vectors)
        return target

    def compact(self) -> None:
        """Merges every readable shard into one (the merged shards are then removed)."""
        merged_keys: dict[bytes, np.ndarray] = {}
        merged: list[Path] = []
        for shard in self.shards():
            content = self._read(shard)
            if content is None:
                continue
            merged.append(shard)
            for key, vector in zip(content[0], content[1]):
                merged_keys.setdefault(key.tobytes(), vector)
        if len(merged) < 2:
            return
        keys = list(merged_keys)
        key_array = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 32)
        self._write(
            f"shard-{hashlib.sha256(key_array.tobytes()).hexdigest()[:16]}-{uuid.uuid4().hex[:8]}.npz",
            key_array,
            np.stack([merged_keys[k] for k in keys]),
        )
        for shard in merged:
            shard.unlink(missing_ok=True)

    def __len__(self) -> int:
        keys = set()
        for shard in self.shards():
            content = self._read(shard)
            if content is not None:
                keys.update(k.tobytes() for k in content[0])
        return len(keys)


def embed_texts(
    texts: Iterable[str],
    encoder: Any = "minilm",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache: Path | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """Sentence vectors of ``texts``, each distinct string embedded at most once.

    Args:
        texts: The strings (duplicates allowed; ``str()`` is applied).
        encoder: Anything :func:`~tfrs_recsys.text_encoder.hub_encoder.resolve_encoder`
            accepts (default ``"minilm"``), or a non-trainable
            :class:`~tfrs_recsys.text_encoder.hub_encoder.HubTextEncoder`.
        batch_size: Strings per encoder call (strings are sorted by length
            first, so a batch pads little).
        cache: The cache directory (default :func:`tfrs_recsys.paths.cache_dir`).
        use_cache: Read and write the on-disk cache; False embeds every
            distinct string.

    Returns:
        float32 ``[len(texts), dim]``, row ``i`` the vector of ``texts[i]``.

    Raises:
        ConfigError: a bad encoder or option, or a trainable encoder layer with
            ``use_cache`` (its vectors change as it trains).
    """
    import tensorflow as tf

    from tfrs_recsys.text_encoder.hub_encoder import HubTextEncoder, resolve_encoder

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive whole number, got {batch_size!r}")
    texts = [str(t) for t in texts]
    if isinstance(encoder, HubTextEncoder):
        if use_cache and encoder.trainable_weights:
            raise ConfigError(
                "a trainable text encoder's vectors change as it trains: pass use_cache=False"
            )
        layer, spec = encoder, encoder.spec
    else:
        layer, spec = None, resolve_encoder(encoder, cache=cache)
    distinct = list(dict.fromkeys(texts))
    keys = [text_key(t) for t in distinct]
    store = EmbeddingCache.for_fingerprint(spec.fingerprint(), cache) if use_cache else None
    found = store.lookup(keys) if store is not None else {}
    missing = [i for i, key in enumerate(keys) if key not in found]
    logger.info(
        "%d strings, %d distinct, %d cached, %d to embed",
        len(texts),
        len(distinct),
        len(found),
        len(missing),
    )
    if missing or not texts:
        if layer is None:
            layer = _layer(spec)
        embed = _embed_function(layer)
        order = sorted(missing, key=lambda i: len(distinct[i]))
        started = time.perf_counter()
        new_vectors = np.zeros((len(order), layer.dim), np.float32)
        if order:
            what = spec.name or "the text encoder"
            progress.info("embedding %d distinct texts with %s ...", len(order), what)
        ticker = Periodic("embedding texts", total=len(order), unit="texts")
        for start in range(0, len(order), batch_size):
            batch = [distinct[i] for i in order[start : start + batch_size]]
            new_vectors[start : start + len(batch)] = embed(tf.constant(batch)).numpy()
            ticker.advance(len(batch))
        ticker.finish()
        if order:
            logger.info("embedded %d strings in %.1f s", len(order), time.perf_counter() - started)
        for i, vector in zip(order, new_vectors):
            found[keys[i]] = vector
        if store is not None:
            store.store([keys[i] for i in order], new_vectors)
        if not texts:
            return np.zeros((0, layer.dim), np.float32)
    index = {text: found[key] for text, key in zip(distinct, keys)}
    return np.stack([index[t] for t in texts]).astype(np.float32, copy=False)


def encoder_layer(spec: Any) -> Any:
    """The non-trainable :class:`HubTextEncoder` of an ``EncoderSpec``, shared with :func:`embed_texts`.

    Loaded once and kept for later calls (up to two specs), like the layers
    :func:`embed_texts` loads itself.
    """
    return _layer(spec)


def _layer(spec: Any) -> Any:
    """The (non-trainable) layer of ``spec``, reused across calls."""
    layer = _LAYERS.pop(spec, None)
    if layer is None:
        layer = spec.layer()
    _LAYERS[spec] = layer
    while len(_LAYERS) > _MAX_LAYERS:
        _LAYERS.pop(next(iter(_LAYERS)))
    return layer


def _embed_function(layer: Any) -> Any:
    """``layer`` in inference mode as a tf.function of strings ``[batch]``, traced once per layer."""
    import tensorflow as tf

    function = _FUNCTIONS.get(layer)
    if function is None:
        layer_ref = weakref.ref(layer)  # the cached function must not keep the layer alive
        function = tf.function(
            lambda batch: layer_ref()(batch, training=False),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        _FUNCTIONS[layer] = function
    return function
