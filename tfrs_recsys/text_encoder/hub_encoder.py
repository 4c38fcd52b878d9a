"""Sentence embeddings from a TF Hub BERT preprocessor + encoder pair.

:class:`HubTextEncoder` is a Keras layer, strings ``[batch]`` -> ``[batch,
dim]``, around two ``hub.KerasLayer``: any pair with the standard TF Hub BERT
interface works (e.g. ``bert_en_uncased_preprocess`` +
``bert_en_uncased_L-12_H-768_A-12`` from a URL or a local directory, or a pair
written by :mod:`tfrs_recsys.text_encoder.convert`). When the preprocessor
exposes ``tokenize`` and ``bert_pack_inputs`` (the standard ones do), the
sequence length is the layer's ``seq_length``; otherwise its default call is
used as it is. Each batch is cut to its longest sequence before the encoder
runs (padding is masked, so the vectors do not change).

:func:`resolve_encoder` turns what a user names (``"minilm"``, a converted
directory, a pair of handles) into an :class:`EncoderSpec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.text_encoder.convert import (
    DEFAULT_SEQ_LENGTH,
    MANIFEST_FILE,
    MINILM,
    POOLINGS,
    ensure_minilm,
    load_converted,
)

#: Names of the built-in default encoder.
MINILM_NAMES = ("minilm", MINILM.name)


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Which text encoder, and how its outputs become one vector per string.

    Attributes:
        preprocessor: Handle (URL or directory) of the TF Hub preprocessor.
        encoder: Handle of the TF Hub encoder.
        pooling: ``"mean"`` (mask-aware mean of ``sequence_output``) or
            ``"pooled"`` (``pooled_output``).
        normalize: L2-normalise the vectors.
        seq_length: Tokens per string including ``[CLS]`` and ``[SEP]``
            (longer strings are truncated).
        name: A readable name (logs, cache directory listings).
        weights_id: Identifies the weights when known (a converted encoder's
            fingerprint); otherwise the handles identify them.
    """

    preprocessor: str
    encoder: str
    pooling: str = "mean"
    normalize: bool = True
    seq_length: int = DEFAULT_SEQ_LENGTH
    name: str = ""
    weights_id: str = ""

    def __post_init__(self) -> None:
        _check_options(self.pooling, self.seq_length)

    def fingerprint(self) -> str:
        """Hex key of everything that determines the vectors (for the embedding cache)."""
        identity = self.weights_id or {
            "preprocessor": _handle_identity(self.preprocessor),
            "encoder": _handle_identity(self.encoder),
        }
        payload = {
            "weights": identity,
            "pooling": self.pooling,
            "normalize": bool(self.normalize),
            "seq_length": int(self.seq_length),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def layer(self, *, trainable: bool = False, **kwargs: Any) -> HubTextEncoder:
        """A :class:`HubTextEncoder` for this spec."""
        return HubTextEncoder(
            self.preprocessor,
            self.encoder,
            pooling=self.pooling,
            seq_length=self.seq_length,
            normalize=self.normalize,
            trainable=trainable,
            **kwargs,
        )


EncoderLike = Union[str, Path, EncoderSpec, Sequence[str], Mapping[str, Any]]


def _check_options(pooling: str, seq_length: int) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 2:
        raise ConfigError(f"seq_length must be a whole number >= 2, got {seq_length!r}")


def _handle_identity(handle: str) -> str:
    """A local SavedModel's content hash (graph + variable index), else the handle itself."""
    path = Path(handle).expanduser()
    if not (path / "saved_model.pb").is_file():
        return handle
    digest = hashlib.sha256()
    for relative in ("saved_model.pb", "variables/variables.index"):
        file = path / relative
        if file.is_file():
            digest.update(relative.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def resolve_encoder(
    spec: EncoderLike = "minilm",
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    seq_length: int | None = None,
    cache: Path | None = None,
) -> EncoderSpec:
    """Turns an encoder name, directory or handle pair into an :class:`EncoderSpec`.

    Args:
        spec: ``"minilm"`` (default: all-MiniLM-L6-v2, converted offline and
            cached on first use, mean pooling, normalised); a directory written
            by ``tfrs-recsys build-text-encoder``; a ``(preprocessor, encoder)``
            pair of TF Hub handles or SavedModel directories (mean pooling,
            normalised unless overridden); a mapping with keys
            ``preprocessor``, ``encoder`` and optionally the other
            :class:`EncoderSpec` fields; or an :class:`EncoderSpec`.
        pooling, normalize, seq_length: Override the spec's values.
        cache: The cache directory for ``"minilm"``.

    Raises:
        ConfigError: ``spec`` is none of these, or an option is invalid.
        TextEncoderBuildError: ``"minilm"`` is not cached and cannot be built.
    """
    if isinstance(spec, EncoderSpec):
        resolved = spec
    elif isinstance(spec, (str, Path)):
        text = str(spec)
        if text.lower() in MINILM_NAMES:
            resolved = _from_converted(ensure_minilm(cache), MINILM.name)
        elif (Path(text).expanduser() / MANIFEST_FILE).exists():
            path = Path(text).expanduser()
            resolved = _from_converted(load_converted(path), path.name)
        else:
            raise ConfigError(
                f"unknown text encoder {text!r}: expected 'minilm', a directory written by "
                "build-text-encoder, or a (preprocessor, encoder) pair of TF Hub handles"
            )
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {f.name for f in dataclasses.fields(EncoderSpec)}
        if unknown or not {"preprocessor", "encoder"} <= set(spec):
            raise ConfigError(
                "a text encoder mapping needs 'preprocessor' and 'encoder' and only EncoderSpec fields, "
                f"got keys {sorted(spec)}"
            )
        resolved = EncoderSpec(
            **{k: (str(v) if k in ("preprocessor", "encoder") else v) for k, v in spec.items()}
        )
    elif (
        isinstance(spec, Sequence)
        and len(spec) == 2
        and all(isinstance(h, (str, Path)) for h in spec)
    ):
        preprocessor, encoder = (str(h) for h in spec)
        resolved = EncoderSpec(preprocessor, encoder, name=Path(encoder).name)
    else:
        raise ConfigError(f"cannot interpret {spec!r} as a text encoder")
    changes = {
        k: v
        for k, v in (("pooling", pooling), ("normalize", normalize), ("seq_length", seq_length))
        if v is not None
    }
    return dataclasses.replace(resolved, **changes) if changes else resolved


def _from_converted(converted: Any, name: str) -> EncoderSpec:
    return EncoderSpec(
        preprocessor=converted.preprocessor,
        encoder=converted.encoder,
        pooling=converted.pooling,
        normalize=converted.normalize,
        seq_length=converted.seq_length,
        name=name,
        weights_id=converted.fingerprint,
    )


class HubTextEncoder(tf.keras.layers.Layer):
    """Strings ``[batch]`` (or ``[batch, 1]``) -> sentence vectors ``[batch, dim]``.

    Args:
        preprocessor_handle: TF Hub handle or directory of a BERT preprocessor.
        encoder_handle: TF Hub handle or directory of a BERT encoder.
        pooling: ``"mean"`` (mean of ``sequence_output`` over non-padding
            tokens) or ``"pooled"`` (``pooled_output``).
        seq_length: Tokens per string, passed to the preprocessor's
            ``bert_pack_inputs`` (ignored by a preprocessor without one).
        normalize: L2-normalise the output.
        trainable: Fine-tune the encoder's weights (``hub.KerasLayer``
            ``trainable``); its dropout is active in training.

    Attributes:
        dim: The output width.
    """

    def __init__(
        self,
        preprocessor_handle: str,
        encoder_handle: str,
        pooling: str = "mean",
        seq_length: int = DEFAULT_SEQ_LENGTH,
        normalize: bool = True,
        trainable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=trainable, **kwargs)
        _check_options(pooling, seq_length)
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401  (a preprocessor holds TF Text ops)

        self.preprocessor_handle = str(preprocessor_handle)
        self.encoder_handle = str(encoder_handle)
        self.pooling = pooling
        self.seq_length = int(seq_length)
        self.normalize = bool(normalize)
        try:
            self._preprocessor_module = hub.load(self.preprocessor_handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the text preprocessor {self.preprocessor_handle}: {exc}"
            ) from None
        if hasattr(self._preprocessor_module, "tokenize") and hasattr(
            self._preprocessor_module, "bert_pack_inputs"
        ):
            self._tokenize = hub.KerasLayer(self._preprocessor_module.tokenize, name="tokenize")
            self._pack = hub.KerasLayer(
                self._preprocessor_module.bert_pack_inputs,
                arguments={"seq_length": self.seq_length},
                name="bert_pack_inputs",
            )
            self._preprocess = None
        else:
            self._tokenize = self._pack = None
            self._preprocess = hub.KerasLayer(self._preprocessor_module, name="preprocessor")
        try:
            self._encoder = hub.KerasLayer(self.encoder_handle, trainable=trainable, name="encoder")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the text encoder {self.encoder_handle}: {exc}"
            ) from None
        self.dim = int(self._embed(tf.constant([""]), training=False).shape[-1])

    def encoder_inputs(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """The preprocessor's outputs, cut to the batch's longest sequence."""
        texts = tf.convert_to_tensor(texts, tf.string)
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, axis=-1)
        if self._pack is not None:
            inputs = self._pack([self._tokenize(texts)])
        else:
            inputs = self._preprocess(texts)
        mask = inputs["input_mask"]
        length = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)), 1)
        keys = ("input_word_ids", "input_mask", "input_type_ids")
        return {key: inputs[key][:, :length] for key in keys}

    def _embed(self, texts: tf.Tensor, training: bool | None) -> tf.Tensor:
        inputs = self.encoder_inputs(texts)
        outputs = self._encoder(inputs, training=training)
        if self.pooling == "pooled":
            vectors = outputs["pooled_output"]
        else:
            sequence = outputs["sequence_output"]
            mask = tf.cast(inputs["input_mask"], sequence.dtype)[:, :, tf.newaxis]
            vectors = tf.reduce_sum(sequence * mask, axis=1) / tf.maximum(
                tf.reduce_sum(mask, axis=1), 1e-9
            )
        if self.normalize:
            vectors = vectors / tf.maximum(tf.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors

    def call(self, texts: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self._embed(texts, training=training)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape([input_shape[0], self.dim])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "preprocessor_handle": self.preprocessor_handle,
                "encoder_handle": self.encoder_handle,
                "pooling": self.pooling,
                "seq_length": self.seq_length,
                "normalize": self.normalize,
            }
        )
        return config

    @classmethod
    def from_spec(
        cls, spec: EncoderLike = "minilm", *, trainable: bool = False, **kwargs: Any
    ) -> HubTextEncoder:
        """The layer of :func:`resolve_encoder`'s spec (``"minilm"`` by default)."""
        return resolve_encoder(spec).layer(trainable=trainable, **kwargs)

    @property
    def spec(self) -> EncoderSpec:
        """The :class:`EncoderSpec` of this layer (fingerprinted by its handles)."""
        return EncoderSpec(
            self.preprocessor_handle,
            self.encoder_handle,
            self.pooling,
            self.normalize,
            self.seq_length,
            name=Path(self.encoder_handle).name,
            weights_id=_converted_weights_id(self.encoder_handle),
        )


def _converted_weights_id(encoder_handle: str) -> str:
    """The fingerprint of a converted encoder directory's weights, '' for other handles."""
    parent = Path(encoder_handle).expanduser().parent
    if (parent / MANIFEST_FILE).is_file():
        try:
            return load_converted(parent).fingerprint
        except ConfigError:
            return ""
    return ""
