"""BERT WordPiece preprocessing in TensorFlow ops, as a TF Hub preprocessor module.

:class:`BertPreprocessor` turns strings into the inputs of a TF Hub BERT
encoder with the interface of the standard TF Hub BERT preprocessors:

- ``preprocessor(strings)``: ``{"input_word_ids", "input_mask",
  "input_type_ids"}``, int32 ``[batch, seq_length]`` (the default length);
- ``preprocessor.tokenize(strings)``: int32 ``RaggedTensor`` ``[batch, words,
  wordpieces]``;
- ``preprocessor.bert_pack_inputs([tokenized, ...], seq_length)``: one or two
  tokenized segments -> the three tensors at ``seq_length``
  (``[CLS] a [SEP] (b [SEP])``, round-robin truncation, zero padding).

The text clean-up is the Hugging Face ``BertNormalizer`` (the reference
tokenizer of sentence-transformers), done in TF string ops: drop NUL, U+FFFD and
control / format / private-use characters (tab, newline and carriage return
excepted), map Unicode white space to a space, put spaces around CJK
ideographs, then, for uncased vocabularies, NFD and removal of non-spacing
marks (accents), and lower-casing by a per-character table (Python's
``str.lower``, no locale, no final-sigma rule). Words are split on white space
and punctuation (ASCII symbols and Unicode ``P*``), words longer than
``max_chars_per_word`` characters become ``[UNK]``, and the rest go through
greedy longest-match WordPiece (``FastWordpieceTokenizer``).

tensorflow_text's own ``BertTokenizer(lower_case=True)`` does not match that
reference: it NFKC-case-folds (so full-width ``ＡＢＣ`` becomes ``abc``) and
turns control characters into spaces instead of removing them; only TF Text's
WordPiece step (``FastWordpieceTokenizer``) is used here.

Unassigned code points (Unicode ``Cn``), which the reference also removes, are
kept: RE2 has no class for them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text  # noqa: F401  (registers the ops a saved preprocessor needs)

from tfrs_recsys.errors import ConfigError

#: Code point ranges that BERT treats as CJK ideographs (one token each), as the
#: reference (Rust) normaliser has them: its Extension E range starts at U+2B920,
#: not U+2B820 as in the original BERT code.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
#: Unicode White_Space characters other than the ASCII ones (\x0b, \x0c, \x85 are
#: control characters and are removed before this applies).
_UNICODE_SPACES = r"[\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]"
_CONTROL = r"[\x{FFFD}\p{Cc}\p{Cf}\p{Co}\p{Cs}]"
_CJK = "[" + "".join(rf"\x{{{a:X}}}-\x{{{b:X}}}" for a, b in CJK_RANGES) + "]"
#: Punctuation the words are split on (each kept as a token of its own).
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"


def read_vocab(path: str | Path) -> list[str]:
    """The tokens of a ``vocab.txt`` (one per line, id = line number - 1).

    Raises:
        ConfigError: the file is missing, empty or lacks ``[CLS]``, ``[SEP]``,
            ``[PAD]`` or ``[UNK]``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable UTF-8 vocabulary ({exc})") from None
    vocab = text.split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    vocab = [token.rstrip("\r") for token in vocab]
    if not vocab:
        raise ConfigError(f"{path}: the vocabulary is empty")
    missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in vocab]
    if missing:
        raise ConfigError(f"{path}: the vocabulary lacks {', '.join(missing)}")
    return vocab


def _lowercase_table() -> tuple[np.ndarray, np.ndarray]:
    """Code points whose ``str.lower`` is one different code point, and that one."""
    keys, values = [], []
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lower = chr(cp).lower()
        if len(lower) == 1 and ord(lower) != cp:
            keys.append(cp)
            values.append(ord(lower))
    return np.array(keys, np.int64), np.array(values, np.int64)


class BertPreprocessor(tf.Module):
    """Strings -> BERT encoder inputs, saved as a TF Hub preprocessor.

    Args:
        vocab: The WordPiece vocabulary (``vocab[i]`` has id ``i``).
        lower_case: Uncased vocabulary: strip accents and lower-case.
        strip_accents: Strip accents; None follows ``lower_case`` (as the
            reference does).
        tokenize_chinese_chars: One token per CJK ideograph.
        seq_length: Length of the default call's outputs.
        max_chars_per_word: Longer words become ``[UNK]``.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        seq_length: int = 128,
        max_chars_per_word: int = 100,
        name: str | None = "bert_preprocessor",
    ) -> None:
        super().__init__(name=name)
        vocab = list(vocab)
        ids = {token: i for i, token in enumerate(vocab)}
        for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"):
            if token not in ids:
                raise ConfigError(f"the vocabulary lacks {token}")
        if seq_length < 2:
            raise ConfigError(f"seq_length must be at least 2, got {seq_length}")
        self.lower_case = bool(lower_case)
        self.strip_accents = self.lower_case if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.default_seq_length = int(seq_length)
        self.max_chars_per_word = int(max_chars_per_word)
        self.vocab_size = len(vocab)
        self.cls_id, self.sep_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]
        self.unk_token = "[UNK]"
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab,
            suffix_indicator="##",
            max_bytes_per_word=4 * self.max_chars_per_word,
            token_out_type=tf.int32,
            unknown_token=self.unk_token,
            no_pretokenization=True,
        )
        if self.lower_case:
            keys, values = _lowercase_table()
            self._lower_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1
            )
        else:
            self._lower_table = None

    # --- the steps --------------------------------------------------------------

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The reference clean-up of ``texts`` (any shape of UTF-8 strings)."""
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, _CONTROL, "")
        texts = tf.strings.regex_replace(texts, _UNICODE_SPACES, " ")
        if self.tokenize_chinese_chars:
            texts = tf.strings.regex_replace(texts, f"({_CJK})", r" \1 ")
        if self.strip_accents:
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        if self._lower_table is not None:
            chars = tf.strings.unicode_decode(texts, "UTF-8")
            flat = tf.cast(chars.flat_values, tf.int64)
            lowered = self._lower_table.lookup(flat)
            flat = tf.where(lowered >= 0, lowered, flat)
            texts = tf.strings.unicode_encode(
                chars.with_flat_values(tf.cast(flat, tf.int32)), "UTF-8"
            )
        return texts

    def split_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalised strings ``[batch]`` -> words ``[batch, (words)]``."""
        return tf_text.regex_split(texts, rf"\s+|{_PUNCTUATION}", _PUNCTUATION)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings ``[batch]`` -> WordPiece ids, int32 ``[batch, (words), (pieces)]``."""
        words = self.split_words(self.normalize(texts))
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self.max_chars_per_word
        flat = tf.where(too_long, tf.constant(self.unk_token), flat)
        pieces = self._wordpiece.tokenize(flat)  # [words, (pieces)]
        return tf.RaggedTensor.from_row_splits(pieces, words.row_splits, validate=False)

    @tf.function(autograph=False)
    def bert_pack_inputs(
        self, inputs: Sequence[tf.RaggedTensor], seq_length: tf.Tensor | int | None = None
    ) -> dict[str, tf.Tensor]:
        """Tokenized segments -> ``input_word_ids``, ``input_mask``, ``input_type_ids``.

        ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``, the segments trimmed
        round-robin to fit ``seq_length`` (default: the preprocessor's
        default length), then zero-padded to it.
        """
        segments = [
            tf.cast(s.merge_dims(-2, -1) if s.ragged_rank > 1 else s, tf.int32) for s in inputs
        ]
        seq_length = tf.cast(
            self.default_seq_length if seq_length is None else seq_length, tf.int32
        )
        budget = seq_length - len(segments) - 1
        if len(segments) == 1:
            segments = [segments[0][:, :budget]]
        else:
            segments = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
        rows = segments[0].nrows()
        cls = tf.fill([rows, 1], self.cls_id)
        sep = tf.fill([rows, 1], self.sep_id)
        ids = [cls]
        type_ids = [tf.zeros_like(cls)]
        for index, segment in enumerate(segments):
            ids += [segment, sep]
            type_ids += [tf.ones_like(segment) * index, tf.ones_like(sep) * index]
        ids, type_ids = tf.concat(ids, axis=1), tf.concat(type_ids, axis=1)

        def pad(values: tf.RaggedTensor, fill: int) -> tf.Tensor:
            dense = values.to_tensor(default_value=fill)
            return tf.pad(
                dense, [[0, 0], [0, seq_length - tf.shape(dense)[1]]], constant_values=fill
            )

        return {
            "input_word_ids": pad(ids, self.pad_id),
            "input_mask": pad(tf.ones_like(ids), 0),
            "input_type_ids": pad(type_ids, 0),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """Strings ``[batch]`` -> the encoder inputs at the default sequence length."""
        return self.bert_pack_inputs([self.tokenize(texts)])

    def trace_for_export(self) -> None:
        """Traces ``bert_pack_inputs`` for one and two segments (``seq_length`` a scalar tensor)."""
        ragged = tf.RaggedTensorSpec([None, None, None], tf.int32, ragged_rank=2)
        for n in (1, 2):
            self.bert_pack_inputs.get_concrete_function([ragged] * n, tf.TensorSpec([], tf.int32))
