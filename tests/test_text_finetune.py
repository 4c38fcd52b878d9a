"""``model.text_trainable``: the TF Hub BERT text encoder fine-tuned inside the
towers (a tiny converted BERT pair here), and the export of such a run."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import (  # noqa: F401
    embedding_cache,
    first_batch,
    model_for,
    new_user_columns,
    small_model_config,
    small_split,
    tiny_bert_pair,
    tiny_experiment,
)

from tfrs_recsys.config import ExperimentConfig, ModelConfig, TrainConfig, load_config
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.text import FineTunedTextEncoder, PrecomputedTextEncoder
from tfrs_recsys.models.factory import training_dataset
from tfrs_recsys.serving.export import export_run
from tfrs_recsys.text_encoder import HubTextEncoder, embed_texts
from tfrs_recsys.training.run import load_run, train

N = 5
UNSEEN_PROFESSION = "deep sea welder and amateur astronomer"


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    return tiny_bert_pair(tmp_path_factory, "finetune")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    yield from embedding_cache(tmp_path_factory, "finetune")


# --- Config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text_encoder", ["bow", "none"])
def test_text_trainable_needs_the_bert_encoder(text_encoder):
    with pytest.raises(ConfigError, match="text_trainable.*text_encoder"):
        ModelConfig(feature_set="all", text_encoder=text_encoder, text_trainable=True)


def test_text_trainable_is_off_by_default_and_set_like_other_booleans(tmp_path):
    assert ModelConfig().text_trainable is False
    config = load_config(None, ["model.text_encoder=bert", "model.text_trainable=true"])
    assert config.model.text_trainable is True
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert load_config(path).model.text_trainable is True
    with pytest.raises(ConfigError, match="text_trainable"):
        load_config(None, ["model.text_trainable=true"])


# --- The layer -------------------------------------------------------------------------------------------


def test_duplicate_strings_are_encoded_once_each_and_gathered_back(pair_dir):
    encoder = HubTextEncoder.from_spec(str(pair_dir), trainable=True)
    layer = FineTunedTextEncoder(encoder)
    texts = ["data engineer", "nurse", "data engineer", "", "nurse", "data engineer"]
    got = layer(tf.constant(texts), training=False).numpy()
    assert got.shape == (len(texts), encoder.dim) and layer.dim == encoder.dim
    for i, text in enumerate(texts):
        np.testing.assert_allclose(
            got[i], encoder(tf.constant([text]), training=False).numpy()[0], atol=1e-5
        )
    # The installed lookup: known strings as the encoder gives them, unknown ones zero.
    lookup = layer.precompute(texts)
    with layer.use_lookup(lookup):
        looked_up = layer(tf.constant(["nurse", "never seen"])).numpy()
    np.testing.assert_allclose(looked_up[0], got[1], atol=1e-5)
    np.testing.assert_array_equal(looked_up[1], 0.0)
    assert layer.lookup is None


# --- Training -------------------------------------------------------------------------------------------


def _model(dataset, train_pairs, pair_dir, trainable, kind="retrieval", **overrides):
    config = small_model_config(
        kind=kind,
        feature_set="all",
        text_encoder="bert",
        text_model=str(pair_dir),
        text_trainable=trainable,
        **overrides,
    )
    return model_for(dataset, train_pairs, config)


def _encoder_weights(model):
    return [
        v
        for layer in model.submodules
        if isinstance(layer, HubTextEncoder)
        for v in layer.trainable_weights
    ]


@pytest.mark.parametrize(
    "kind,overrides",
    [("retrieval", {"loss": "softmax", "negatives": "in_batch"}), ("ranking", {})],
)
def test_fine_tuning_trains_the_encoder(
    small_dataset, small_split, pair_dir, cache, kind, overrides
):
    tf.keras.utils.set_random_seed(3)
    model = _model(small_dataset, small_split.train, pair_dir, True, kind=kind, **overrides)
    query_encoders = model.submodules
    item_side = next(m for m in query_encoders if m.name == "item_features").text_encoders
    user_side = next(m for m in query_encoders if m.name == "user_features").text_encoders
    assert all(
        isinstance(e, FineTunedTextEncoder) for e in [*item_side.values(), *user_side.values()]
    )
    # One trainable encoder per side, shared by the side's text columns.
    assert item_side["description"].encoder is item_side["features"].encoder
    assert item_side["description"].encoder is not user_side["profession"].encoder
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    experiment = ExperimentConfig(model=model.config, train=TrainConfig(batch_size=64, seed=1))
    pipeline = training_dataset(model, small_dataset, small_split.train, experiment)
    batch = first_batch(pipeline)
    before_loss = float(model.compute_loss(batch))
    encoder_weights = _encoder_weights(model)
    assert encoder_weights
    trainable = {id(v) for v in model.trainable_weights}
    assert all(id(v) in trainable for v in encoder_weights)
    before = [v.numpy().copy() for v in encoder_weights]
    model.fit(pipeline.repeat().take(6), verbose=0)
    after_loss = float(model.compute_loss(batch))
    assert np.isfinite(after_loss) and after_loss < before_loss
    changed = [not np.allclose(a, v.numpy()) for a, v in zip(before, encoder_weights)]
    assert sum(changed) > len(changed) // 2


def test_without_it_the_encoder_is_not_in_the_model(small_dataset, small_split, pair_dir, cache):
    model = _model(small_dataset, small_split.train, pair_dir, False)
    assert _encoder_weights(model) == []
    assert not any(isinstance(m, (HubTextEncoder, FineTunedTextEncoder)) for m in model.submodules)
    encoders = next(m for m in model.submodules if m.name == "item_features").text_encoders
    assert all(isinstance(e, PrecomputedTextEncoder) for e in encoders.values())


# --- Export -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finetuned_run(small_dir, pair_dir, cache, tmp_path_factory):
    config = tiny_experiment(
        small_dir,
        model={
            "feature_set": "all",
            "text_encoder": "bert",
            "text_model": str(pair_dir),
            "text_trainable": True,
            "id_mode": "input",
            "loss": "softmax",
            "negatives": "in_batch",
        },
        train={"epochs": 1, "batch_size": 256, "learning_rate": 0.01},
    )
    run_dir = tmp_path_factory.mktemp("finetune-run") / "bert"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def exports(finetuned_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune-exports") / "exported_models"
    notices = []
    plain = export_run(finetuned_run, root / "plain", n=N, warmup=False, notice=notices.append)
    cold = export_run(
        finetuned_run, root / "cold", n=N, warmup=False, cold_start_text=True, notice=notices.append
    )
    return {"plain": plain, "cold": cold}


@pytest.fixture(scope="module")
def trained(finetuned_run):
    return load_run(finetuned_run)


def _user_features(trained, users, profession=None):
    schema = trained.data.dataset.schema
    return {
        name: tf.constant(
            values, tf.float32 if schema.feature("user", name).kind == "numeric" else tf.string
        )
        for name, values in new_user_columns(trained, users, profession).items()
    }


def _top(trained, features):
    data, model = trained.data, trained.model
    full = {**features, "user_id": tf.fill([len(next(iter(features.values())))], "")}
    scores = tf.matmul(model.query_vectors(full), model.item_embeddings(), transpose_b=True).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :N]
    ids = data.dataset.table("item").ids
    return [[str(ids[i]) for i in row] for row in top], np.take_along_axis(scores, top, axis=1)


def _answer(path, features):
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["recommend_from_features"](**features)
    return [[v.decode() for v in row] for row in out["item_ids"].numpy()], out["scores"].numpy()


def test_the_fine_tuned_encoder_differs_from_the_frozen_one(trained, pair_dir, cache):
    data, model = trained.data, trained.model
    layer = next(m for m in model.submodules if m.name == "user_features").text_encoders[
        "profession"
    ]
    assert isinstance(layer, FineTunedTextEncoder)
    texts = [str(t) for t in data.dataset.users["profession"].unique()[:4]]
    frozen = embed_texts(texts, str(pair_dir))
    assert not np.allclose(layer(tf.constant(texts)).numpy(), frozen, atol=1e-4)


def test_the_default_export_is_stock_tensorflow_and_answers_as_the_model(exports, trained):
    plain = exports["plain"]
    assert plain.custom_ops == {} and plain.custom_ops_to_load == []
    assert not plain.cold_start_text
    data = trained.data
    users = [str(u) for u in data.dataset.users["user_id"].iloc[:4]]
    features = _user_features(trained, users)
    ids, scores = _answer(plain.path, features)
    want_ids, want_scores = _top(trained, features)
    assert ids == want_ids
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


def test_the_cold_start_export_encodes_unseen_text_with_the_fine_tuned_encoder(exports, trained):
    data = trained.data
    users = [str(u) for u in data.dataset.users["user_id"].iloc[:3]]
    features = _user_features(trained, users, profession=UNSEEN_PROFESSION)
    want_ids, want_scores = _top(
        trained, features
    )  # the in-process model runs its fine-tuned encoder
    ids, scores = _answer(exports["cold"].path, features)
    assert ids == want_ids
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    # Without the flag the unseen string gets the zero vector.
    _, plain_scores = _answer(exports["plain"].path, features)
    assert not np.allclose(plain_scores, want_scores, atol=1e-4)
    assert exports[
        "cold"
    ].custom_ops_to_load  # TF Text ops, as for a frozen --cold-start-text export
