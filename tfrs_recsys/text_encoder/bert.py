"""BERT in TensorFlow, with weights read from a Hugging Face safetensors checkpoint.

:class:`BertModel` is the encoder half of the TF Hub BERT interface: a dict of
``input_word_ids``, ``input_mask`` and ``input_type_ids`` (int32
``[batch, seq]``) in; ``sequence_output`` ``[batch, seq, H]``,
``pooled_output`` and ``default`` ``[batch, H]`` and ``encoder_outputs`` (one
``[batch, seq, H]`` per layer) out. It is the post-LayerNorm BERT of Devlin et
al. as Hugging Face ``BertModel`` computes it: word + position + token-type
embeddings, LayerNorm, ``N`` layers of multi-head self-attention (additive
padding mask) and a GELU feed-forward block, each followed by a residual
LayerNorm; the pooler is ``tanh(dense(h_CLS))``.

Weights come from ``model.safetensors`` through ``safetensors.numpy`` (no torch);
PyTorch linear weights ``[out, in]`` are transposed to ``[in, out]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError

#: ``model_type`` values of the checkpoints this module can run.
BERT_MODEL_TYPES = ("bert",)
#: Hugging Face ``hidden_act`` names and whether they are the tanh approximation.
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True, "gelu_fast": True}
#: Key prefixes of BERT weights inside task checkpoints (``BertForMaskedLM`` etc.).
KEY_PREFIXES = ("", "bert.", "model.", "encoder_model.")
#: Adding this to a masked attention logit makes its softmax weight exactly 0 in float32.
MASK_LOGIT = -1e9


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture figures of a BERT checkpoint (Hugging Face ``config.json`` names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str = "config.json") -> BertConfig:
        """Reads a Hugging Face config; rejects anything that is not a plain BERT.

        Raises:
            ConfigError: the model type, activation or position embedding type is
                not BERT's, or a figure is missing or not a positive number.
        """
        model_type = config.get("model_type")
        if model_type not in BERT_MODEL_TYPES:
            raise ConfigError(
                f"{source}: model_type {model_type!r} is not a BERT checkpoint "
                f"(supported: {', '.join(BERT_MODEL_TYPES)})"
            )
        position = config.get("position_embedding_type", "absolute")
        if position != "absolute":
            raise ConfigError(
                f"{source}: position_embedding_type {position!r} is not supported (only 'absolute')"
            )
        act = config.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise ConfigError(
                f"{source}: hidden_act {act!r} is not supported ({', '.join(ACTIVATIONS)})"
            )
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in config:
                if field.default is dataclasses.MISSING:
                    raise ConfigError(f"{source}: missing {field.name!r}")
                continue
            value = config[field.name]
            if field.name == "hidden_act":
                values[field.name] = value
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: {field.name} must be a number, got {value!r}")
            values[field.name] = float(value) if field.type == "float" else int(value)
        result = cls(**values)
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            if getattr(result, name) <= 0:
                raise ConfigError(f"{source}: {name} must be positive, got {getattr(result, name)}")
        if result.hidden_size % result.num_attention_heads:
            raise ConfigError(
                f"{source}: hidden_size {result.hidden_size} is not a multiple of "
                f"num_attention_heads {result.num_attention_heads}"
            )
        return result

    @classmethod
    def from_file(cls, path: str | Path) -> BertConfig:
        path = Path(path)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON config ({exc})") from None
        if not isinstance(config, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(config, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "bert", **dataclasses.asdict(self)}


def weight_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Hugging Face weight names (no prefix) of a ``BertModel`` and their shapes."""
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config.num_hidden_layers):
        p = f"encoder.layer.{n}."
        for name in ("query", "key", "value"):
            shapes[f"{p}attention.self.{name}.weight"] = (h, h)
            shapes[f"{p}attention.self.{name}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (i, h)
        shapes[f"{p}intermediate.dense.bias"] = (i,)
        shapes[f"{p}output.dense.weight"] = (h, i)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    shapes["pooler.dense.weight"] = (h, h)
    shapes["pooler.dense.bias"] = (h,)
    return shapes


def load_safetensors_weights(path: str | Path, config: BertConfig) -> dict[str, np.ndarray]:
    """Reads the BERT weights of a safetensors file, keyed by :func:`weight_shapes` names.

    Accepts keys with a ``bert.`` (or ``model.``) prefix or none, and the old
    ``LayerNorm.gamma`` / ``beta`` names. A checkpoint without a pooler (sentence
    encoders may drop it) gets an identity pooler, so ``pooled_output`` is then
    ``tanh(h_CLS)``.

    Raises:
        ConfigError: the file is missing or unreadable, a weight is missing, or
            a weight's shape does not match ``config``.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"{path}: not a readable safetensors file ({exc})") from None
    expected = weight_shapes(config)
    prefix = next(
        (p for p in KEY_PREFIXES if f"{p}embeddings.word_embeddings.weight" in raw),
        None,
    )
    if prefix is None:
        raise ConfigError(
            f"{path}: no BERT embeddings.word_embeddings.weight (with prefix '', 'bert.' or 'model.')"
        )
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        candidates = [prefix + name]
        if name.endswith("LayerNorm.weight"):
            candidates.append(prefix + name[: -len("weight")] + "gamma")
        elif name.endswith("LayerNorm.bias"):
            candidates.append(prefix + name[: -len("bias")] + "beta")
        key = next((k for k in candidates if k in raw), None)
        if key is None:
            if name.startswith("pooler."):
                h = config.hidden_size
                weights[name] = (
                    np.eye(h, dtype=np.float32)
                    if name.endswith("weight")
                    else np.zeros(h, np.float32)
                )
                continue
            raise ConfigError(f"{path}: missing weight {prefix + name!r}")
        value = np.asarray(raw[key])
        if tuple(value.shape) != shape:
            raise ConfigError(
                f"{path}: weight {key!r} has shape {tuple(value.shape)}, config.json implies {shape}"
            )
        weights[name] = value.astype(np.float32)
    return weights


def random_weights(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Randomly initialised weights (normal, ``initializer_range``), for tests and fakes."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(config).items():
        if "LayerNorm.weight" in name:
            weights[name] = np.ones(shape, np.float32)
        elif name.endswith("bias") and "LayerNorm" in name:
            weights[name] = np.zeros(shape, np.float32)
        else:
            weights[name] = (rng.standard_normal(shape) * config.initializer_range).astype(
                np.float32
            )
    return weights


def _layer_norm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable, eps: float) -> tf.Tensor:
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta


class BertModel(tf.Module):
    """BERT encoder with the TF Hub BERT call convention.

    Args:
        config: The architecture.
        weights: Hugging Face-named weights (:func:`load_safetensors_weights`);
            None draws random ones (:func:`random_weights`).
        seed: Seed of the random weights.
    """

    def __init__(
        self,
        config: BertConfig,
        weights: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
        name: str | None = "bert",
    ) -> None:
        super().__init__(name=name)
        self.config = config
        weights = dict(weights) if weights is not None else random_weights(config, seed)
        self._gelu_approximate = ACTIVATIONS[config.hidden_act]

        def var(key: str, transpose: bool = False) -> tf.Variable:
            value = weights[key].T if transpose else weights[key]
            return tf.Variable(
                np.ascontiguousarray(value, dtype=np.float32), name=key.replace(".", "/")
            )

        with self.name_scope:
            self.word_embeddings = var("embeddings.word_embeddings.weight")
            self.position_embeddings = var("embeddings.position_embeddings.weight")
            self.token_type_embeddings = var("embeddings.token_type_embeddings.weight")
            self.embeddings_ln = (
                var("embeddings.LayerNorm.weight"),
                var("embeddings.LayerNorm.bias"),
            )
            self.layers = []
            for n in range(config.num_hidden_layers):
                p = f"encoder.layer.{n}."
                self.layers.append(
                    {
                        "query": (
                            var(p + "attention.self.query.weight", True),
                            var(p + "attention.self.query.bias"),
                        ),
                        "key": (
                            var(p + "attention.self.key.weight", True),
                            var(p + "attention.self.key.bias"),
                        ),
                        "value": (
                            var(p + "attention.self.value.weight", True),
                            var(p + "attention.self.value.bias"),
                        ),
                        "attention_output": (
                            var(p + "attention.output.dense.weight", True),
                            var(p + "attention.output.dense.bias"),
                        ),
                        "attention_ln": (
                            var(p + "attention.output.LayerNorm.weight"),
                            var(p + "attention.output.LayerNorm.bias"),
                        ),
                        "intermediate": (
                            var(p + "intermediate.dense.weight", True),
                            var(p + "intermediate.dense.bias"),
                        ),
                        "output": (
                            var(p + "output.dense.weight", True),
                            var(p + "output.dense.bias"),
                        ),
                        "output_ln": (
                            var(p + "output.LayerNorm.weight"),
                            var(p + "output.LayerNorm.bias"),
                        ),
                    }
                )
            self.pooler = (var("pooler.dense.weight", True), var("pooler.dense.bias"))

    @staticmethod
    def input_signature() -> dict[str, tf.TensorSpec]:
        return {
            name: tf.TensorSpec([None, None], tf.int32, name=name)
            for name in ("input_word_ids", "input_mask", "input_type_ids")
        }

    def __call__(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        """Runs BERT; see the module docstring for the inputs and outputs."""
        config = self.config
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        seq = tf.shape(word_ids)[1]
        heads = config.num_attention_heads
        head_dim = config.hidden_size // heads
        eps = config.layer_norm_eps

        def dropout(x: tf.Tensor, rate: float) -> tf.Tensor:
            return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x

        def dense(x: tf.Tensor, params: tuple[tf.Variable, tf.Variable]) -> tf.Tensor:
            # One [batch * seq, in] x [in, out] product: a rank-3 x rank-2 matmul
            # would run as a broadcast batch matmul, about 3x slower on CPU.
            kernel, bias = params
            flat = tf.linalg.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel) + bias
            return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [kernel.shape[1]]], 0))

        def split_heads(x: tf.Tensor) -> tf.Tensor:  # [b, s, h] -> [b, heads, s, d]
            x = tf.reshape(x, tf.concat([tf.shape(x)[:2], [heads, head_dim]], 0))
            return tf.transpose(x, [0, 2, 1, 3])

        h = (
            tf.gather(self.word_embeddings, word_ids)
            + self.position_embeddings[tf.newaxis, :seq]
            + tf.gather(self.token_type_embeddings, type_ids)
        )
        h = dropout(_layer_norm(h, *self.embeddings_ln, eps), config.hidden_dropout_prob)
        additive_mask = (1.0 - mask)[:, tf.newaxis, tf.newaxis, :] * MASK_LOGIT
        scale = 1.0 / math.sqrt(head_dim)
        encoder_outputs = []
        for layer in self.layers:
            q = split_heads(dense(h, layer["query"]))
            k = split_heads(dense(h, layer["key"]))
            v = split_heads(dense(h, layer["value"]))
            logits = tf.linalg.matmul(q, k, transpose_b=True) * scale + additive_mask
            probs = dropout(tf.nn.softmax(logits, axis=-1), config.attention_probs_dropout_prob)
            context = tf.transpose(tf.linalg.matmul(probs, v), [0, 2, 1, 3])
            context = tf.reshape(context, tf.shape(h))
            attended = dropout(
                dense(context, layer["attention_output"]), config.hidden_dropout_prob
            )
            h = _layer_norm(attended + h, *layer["attention_ln"], eps)
            inner = tf.nn.gelu(dense(h, layer["intermediate"]), approximate=self._gelu_approximate)
            out = dropout(dense(inner, layer["output"]), config.hidden_dropout_prob)
            h = _layer_norm(out + h, *layer["output_ln"], eps)
            encoder_outputs.append(h)
        pooled = tf.math.tanh(dense(h[:, 0], self.pooler))
        return {
            "sequence_output": h,
            "pooled_output": pooled,
            "default": pooled,
            "encoder_outputs": encoder_outputs,
        }
