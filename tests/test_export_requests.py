"""Odd serving requests: non-finite numerics count as missing; bad requests name their input.

The serving contract: a numeric feature that is NaN, +inf or -inf is treated as
missing, i.e. it gets the column's train mean (after the column's transform),
which normalises to 0, in graph, so TF Serving, a SavedModel loaded anywhere and
``load_exported`` all answer alike. Finite values are encoded exactly as before.

A tiny untrained retrieval model and ranking model of the hand-made genres dataset
(users: age, city; items: genres, a ``log1p`` price, kind) are exported once per
module (no training: the contract does not depend on the weights), then asked what a
hostile client would ask: through the raw signatures, in a fresh process that
imports only ``tensorflow``, and through ``load_exported``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import PROBE_PRELUDE, genre_dataset, model_for, small_model_config

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.preprocessing import fit_preprocessing, numeric_transform
from tfrs_recsys.features.side_encoder import EncoderDims, SideEncoder
from tfrs_recsys.serving.exported import ITEMS_FILE, MANIFEST_FILE, load_exported
from tfrs_recsys.serving.module import build_module, track_model_resources
from tfrs_recsys.serving.tables import tables_from_pairs
from tfrs_recsys.serving.tf_serving import ASSETS_EXTRA

N = 3
NAN, INF = float("nan"), float("inf")
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# Train users u0..u2 are 20, 30 and 40: the train mean of age is 30, variance 200 / 3.
AGE_MEAN, AGE_VARIANCE = 30.0, 200.0 / 3.0
# Train items i0, i1 cost 9 and 99: the mean of log1p(price) is (log 10 + log 100) / 2.
LOG_PRICE_MEAN = (math.log(10.0) + math.log(100.0)) / 2.0
LOG_PRICE_VARIANCE = ((math.log(100.0) - math.log(10.0)) / 2.0) ** 2


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def dataset():
    return genre_dataset()


@pytest.fixture(scope="module")
def preprocessing(dataset):
    config = small_model_config(feature_set="all", numeric_buckets=2)
    return fit_preprocessing(dataset, dataset.interactions, config)


def _export(model, dataset, path):
    """Saves ``model``'s serving module to ``path`` as ``export`` would, plus the assets
    ``load_exported`` reads (a hand-written manifest and item table)."""
    parts = model.serving_parts(dataset)
    tables = tables_from_pairs(dataset, parts, dataset.interactions, dataset.interactions)
    module, signatures = build_module(tables, parts, n=N, exclude=True)
    track_model_resources(module, model, signatures)
    tf.saved_model.save(module, str(path), signatures=signatures)
    extra = path / ASSETS_EXTRA
    extra.mkdir()
    manifest = {"n": N, "kind": parts.kind, "item_id_column": "item_id"}
    (extra / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    items = dataset.items.to_dict(orient="records")
    (extra / ITEMS_FILE).write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def retrieval(dataset, tmp_path_factory):
    """``(model, export path)`` of an untrained retrieval model reading every column."""
    tf.keras.utils.set_random_seed(3)
    model = model_for(dataset, dataset.interactions, small_model_config(feature_set="all"))
    return model, _export(model, dataset, tmp_path_factory.mktemp("requests") / "retrieval")


@pytest.fixture(scope="module")
def ranking(dataset, tmp_path_factory):
    """``(model, export path)`` of an untrained ranking model reading every column."""
    tf.keras.utils.set_random_seed(4)
    config = small_model_config(kind="ranking", feature_set="all")
    model = model_for(dataset, dataset.interactions, config)
    return model, _export(model, dataset, tmp_path_factory.mktemp("requests") / "ranking")


@pytest.fixture(scope="module")
def signatures(retrieval):
    return tf.saved_model.load(str(retrieval[1])).signatures


@pytest.fixture(scope="module")
def exported(retrieval):
    return load_exported(retrieval[1])


def _strings(values):
    return tf.constant(values, tf.string, shape=[len(values)])


def _item_columns(count: int, price) -> dict[str, tf.Tensor]:
    return {
        "item_id": _strings(["i0"] * count),
        "genres": _strings(["a|b"] * count),
        "price": tf.constant(price, tf.float32),
        "kind": _strings(["book"] * count),
    }


# --- The encoder: non-finite numerics are the train mean, finite ones unchanged ---------------


def test_encoder_gives_nan_and_infinities_the_train_mean_of_age(dataset, preprocessing):
    encoder = SideEncoder(
        dataset.schema.user_features, preprocessing.user, EncoderDims(id_dim=4, categorical_dim=2)
    )
    ages = [NAN, INF, -INF, AGE_MEAN, 25.0]
    out = encoder(
        {"user_id": _strings(["u0"] * 5), "age": tf.constant(ages), "city": _strings(["rome"] * 5)}
    ).numpy()
    age = out[:, 4]  # user_id 4 wide, then age, then city
    assert age[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(age[4], (25.0 - AGE_MEAN) / math.sqrt(AGE_VARIANCE), rtol=1e-6)
    for row in range(3):  # the whole vector is the mean user's
        np.testing.assert_array_equal(out[row], out[3])


def test_encoder_checks_finiteness_before_log1p(dataset, preprocessing):
    encoder = SideEncoder(
        dataset.schema.item_features,
        preprocessing.item,
        EncoderDims(id_dim=4, categorical_dim=2, numeric_buckets=2),
    )
    prices = [NAN, INF, -INF, 0.0]
    out = encoder(
        {
            "item_id": _strings(["i0"] * 4),
            "genres": _strings(["a"] * 4),
            "price": tf.constant(prices),
            "kind": _strings(["book"] * 4),
        }
    ).numpy()
    price = out[:, 4 + 2]  # item_id 4, genres 2, then price
    assert price[:3].tolist() == [0.0, 0.0, 0.0]
    # -inf is missing, not log1p(max(-inf, 0)) = log1p(0) as a price of 0 is.
    np.testing.assert_allclose(
        price[3], (0.0 - LOG_PRICE_MEAN) / math.sqrt(LOG_PRICE_VARIANCE), rtol=1e-5
    )
    for row in range(3):  # the bucket embedding too: the mean's bucket
        np.testing.assert_array_equal(out[row], out[0])


def test_encoder_encodes_finite_values_bit_for_bit_as_the_normalization_alone(
    dataset, preprocessing
):
    feature = dataset.schema.feature("item", "price")
    encoder = SideEncoder((feature,), preprocessing.item, EncoderDims())
    prices = np.array([0.0, 1e-45, 9.0, 99.0, 1000.0, -5.0, 3e38, -3e38], np.float32)
    encoded = encoder({"price": tf.constant(prices)}).numpy()[:, 0]
    before = encoder.normalizers["price"](numeric_transform(feature, tf.constant(prices)))
    np.testing.assert_array_equal(encoded, before.numpy())
    expected = (np.log1p(np.maximum(prices.astype(np.float64), 0.0)) - LOG_PRICE_MEAN) / math.sqrt(
        LOG_PRICE_VARIANCE
    )
    np.testing.assert_allclose(encoded, expected, rtol=1e-5)


# --- The signatures: the same contract in graph -------------------------------------------------------


def _from_features(signature, ages, cities=None):
    cities = cities or ["rome"] * len(ages)
    answer = signature(age=tf.constant(ages, tf.float32), city=_strings(cities))
    return answer["item_ids"].numpy().astype(str).tolist(), answer["scores"].numpy()


@pytest.mark.parametrize("kind", ["retrieval", "ranking"])
def test_recommend_from_features_answers_non_finite_ages_as_the_mean(kind, request):
    model, path = request.getfixturevalue(kind)
    signature = tf.saved_model.load(str(path)).signatures["recommend_from_features"]
    items, scores = _from_features(signature, [NAN, INF, -INF, AGE_MEAN])
    assert np.isfinite(scores).all() and all(row == items[3] for row in items)
    for row in range(3):
        np.testing.assert_allclose(scores[row], scores[3], rtol=1e-6, atol=1e-7)


def test_score_items_scores_a_non_finite_price_as_the_mean_price(signatures):
    mean_price = math.expm1(LOG_PRICE_MEAN)  # log1p of it is the train mean, up to rounding
    answer = signatures["score_items"](
        user_id=_strings(["u0", "nobody"]), **_item_columns(4, [NAN, INF, -INF, mean_price])
    )
    scores = answer["scores"].numpy()
    assert scores.shape == (2, 4) and np.isfinite(scores).all()
    for column in range(3):
        np.testing.assert_allclose(scores[:, column], scores[:, 3], rtol=1e-5, atol=1e-6)
        # Equal inputs; another row or column of a matrix product may round its last bit apart.
        np.testing.assert_allclose(scores[:, column], scores[:, 0], rtol=1e-6, atol=1e-7)


CLEAN_PROBE = (
    PROBE_PRELUDE
    + r"""
model = tf.saved_model.load(sys.argv[1])
nan, inf = float("nan"), float("inf")
ages = tf.constant([nan, inf, -inf, 30.0])
answer = model.signatures["recommend_from_features"](age=ages, city=tf.constant(["rome"] * 4))
out = {"features": plain(answer)}
strings = lambda v: tf.constant(v)
items = {"item_id": strings(["i0", "i0"]), "genres": strings(["a|b"] * 2),
         "price": tf.constant([nan, 9.0]), "kind": strings(["book"] * 2)}
out["score_items"] = plain(model.signatures["score_items"](user_id=strings(["u0", "nobody"]), **items))
out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "tfrs_recsys")
print(json.dumps(out))
"""
)


def test_a_process_with_tensorflow_alone_gets_the_same_answers(retrieval, signatures):
    result = subprocess.run(
        [sys.executable, "-c", CLEAN_PROBE, str(retrieval[1])],
        capture_output=True,
        text=True,
        env=TF_ENV,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["modules"] == []
    items, scores = _from_features(
        signatures["recommend_from_features"], [NAN, INF, -INF, AGE_MEAN]
    )
    assert answer["features"]["item_ids"]["value"] == items
    np.testing.assert_array_equal(answer["features"]["scores"]["value"], scores)
    assert all(row == items[3] for row in items)
    expected = signatures["score_items"](
        user_id=_strings(["u0", "nobody"]), **_item_columns(2, [NAN, 9.0])
    )["scores"].numpy()
    np.testing.assert_array_equal(answer["score_items"]["scores"]["value"], expected)
    assert np.isfinite(expected).all()


# --- Raw signatures: bad requests fail naming the input, odd ones have a documented answer -----------


def _raise_naming(call, *words):
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        call()
    for word in words:
        assert word in str(caught.value), str(caught.value)[-600:]


def test_feature_columns_of_different_lengths_name_the_input(signatures):
    _raise_naming(
        lambda: signatures["recommend_from_features"](
            age=tf.constant([30.0, 31.0]), city=_strings(["rome"] * 3)
        ),
        "recommend_from_features: input city has a different length from input age",
    )
    columns = {**_item_columns(2, [9.0, 9.0]), "price": tf.constant([9.0, 9.0, 9.0])}
    _raise_naming(
        lambda: signatures["score_items"](user_id=_strings(["u0"]), **columns),
        "score_items: input price has a different length from input item_id",
    )


def test_inputs_of_the_wrong_rank_name_the_input(signatures):
    _raise_naming(
        lambda: signatures["recommend_k"](user_id=_strings(["u0"]), k=tf.constant([2])),
        "Shape of tensor k [1] is not compatible with expected shape []",
    )
    _raise_naming(
        lambda: signatures["serving_default"](user_id=tf.constant([["u0"]])),
        "Shape of tensor user_id [1,1]",
    )
    _raise_naming(
        lambda: signatures["recommend_from_features"](
            age=tf.constant([[30.0]]), city=_strings(["rome"])
        ),
        "Shape of tensor age [1,1]",
    )


def test_pair_scores_of_different_lengths_name_the_input(ranking):
    score = tf.saved_model.load(str(ranking[1])).signatures["score"]
    _raise_naming(
        lambda: score(user_id=_strings(["u0", "u1"]), item_id=_strings(["i0"])),
        "score: input item_id has a different length from input user_id",
    )


def test_empty_batches_and_k_out_of_range_have_the_documented_shapes(signatures, dataset):
    answer = signatures["recommend_from_features"](age=tf.zeros([0]), city=_strings([]))
    assert answer["item_ids"].shape == (0, N) and answer["scores"].shape == (0, N)
    answer = signatures["score_items"](user_id=_strings([]), **_item_columns(2, [9.0, 9.0]))
    assert answer["scores"].shape == (0, 2)
    answer = signatures["score_items"](user_id=_strings(["u0"]), **_item_columns(0, []))
    assert answer["scores"].shape == (1, 0)
    users = _strings(["u3", "nobody"])  # no train items: nothing masked
    for k, width in ((0, 0), (-1, 0), (-(2**31), 0), (2, 2), (2**31 - 1, dataset.n_items)):
        answer = signatures["recommend_k"](user_id=users, k=tf.constant(k))
        assert answer["item_ids"].shape == (2, width), k


def test_bytes_that_are_not_utf8_are_unknown_strings(signatures):
    known = _from_features(signatures["recommend_from_features"], [25.0], ["never-seen"])
    odd = signatures["recommend_from_features"](
        age=tf.constant([25.0]), city=tf.constant([b"\xff\xfe"])
    )
    assert odd["item_ids"].numpy().astype(str).tolist() == known[0]
    np.testing.assert_array_equal(odd["scores"].numpy(), known[1])
    answer = signatures["serving_default"](user_id=tf.constant([b"\xff", b"u0"]))
    assert answer["known_user"].numpy().tolist() == [False, True]


# --- load_exported: the same contract, and one-line errors for what the graph cannot check ------------


def test_load_exported_treats_nan_inf_and_none_ages_as_missing(exported):
    ages = [NAN, INF, -INF, None, 1e39, AGE_MEAN]  # 1e39 is +inf in float32
    answers = exported.recommend_from_features(age=ages, city=["rome"] * len(ages))
    assert all(len(items) == N for items in answers)
    assert all(items == answers[-1] for items in answers)


def test_load_exported_scores_a_nan_price_as_the_mean_price(exported):
    mean_price = math.expm1(LOG_PRICE_MEAN)
    answer = exported.score_items(
        ["u0", "nobody"], item_id=["i0", "i0"], genres=["a|b"] * 2, price=[NAN, mean_price],
        kind=["book"] * 2,
    )  # fmt: skip
    assert np.isfinite(answer.scores).all()
    np.testing.assert_allclose(answer.scores[:, 0], answer.scores[:, 1], rtol=1e-5, atol=1e-6)


def test_load_exported_reads_bytes_as_utf8_and_clips_a_huge_k(exported, dataset):
    assert exported.recommend([b"u0", "nobody"], k=2) == exported.recommend(["u0", "nobody"], k=2)
    [answer] = exported.recommend(["u3"], k=10**30)  # u3 has no train items: nothing masked
    assert len(answer["items"]) == dataset.n_items
    assert exported.recommend(["u0"], k=0)[0]["items"] == []
    assert exported.recommend([], k=2) == []
    [none] = exported.recommend([None], k=1)
    assert none["user_id"] == "" and none["known_user"] is False
    by_bytes = exported.recommend_from_features(age=[25.0], city=[b"rome"])
    assert by_bytes == exported.recommend_from_features(age=[25.0], city=["rome"])
    assert exported.recommend_from_features(age=[], city=[]) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.recommend(["u0"], k=-1), "recommend: k must be a whole number >= 0, got -1"),
        (lambda m: m.recommend(["u0"], k=2.0), "recommend: k must be a whole number >= 0, got 2.0"),
        (lambda m: m.recommend(["u0"], k="2"), "recommend: k must be a whole number >= 0, got '2'"),
        (lambda m: m.recommend(["u0"], k=True), "k must be a whole number >= 0, got True"),
        (lambda m: m.recommend(["u0"], k=NAN), "k must be a whole number >= 0, got nan"),
        (lambda m: m.recommend("u0"), "recommend: user_ids must be a list with one value per row"),
        (lambda m: m.recommend(7), "user_ids must be a list with one value per row, got int 7"),
        (lambda m: m.recommend([["u0"]]), "user_ids[0] is ['u0']"),
        (lambda m: m.recommend([b"\xff"]), "recommend: user_ids[0] = b'\\xff' is not UTF-8 text"),
        (
            lambda m: m.recommend_from_features(k=-1, age=[1.0], city=["rome"]),
            "recommend_from_features: k must be a whole number >= 0",
        ),
        (
            lambda m: m.recommend_from_features(k=N + 1, age=[1.0], city=["rome"]),
            f"k must be in [0, {N}]",
        ),
        (
            lambda m: m.recommend_from_features(age=30.0, city=["rome"]),
            "recommend_from_features: age must be a list with one value per row, got float 30.0",
        ),
        (
            lambda m: m.recommend_from_features(age="30", city=["rome"]),
            "age must be a list with one value per row, got str '30'",
        ),
        (
            lambda m: m.recommend_from_features(age=["thirty"], city=["rome"]),
            "recommend_from_features: age[0] = 'thirty' is not a number (column age is numeric)",
        ),
        (
            lambda m: m.recommend_from_features(age=[1.0, 2.0], city=["rome"]),
            "recommend_from_features: the columns differ in length",
        ),
        (
            lambda m: m.score_items("u0", item_id=["i0"], genres=["a"], price=[1.0], kind=["b"]),
            "score_items: user_ids must be a list with one value per row, got str 'u0'",
        ),
        (
            lambda m: m.score_items(
                ["u0"], item_id=["i0"], genres=["a"], price=[1.0, 2.0], kind=["b"]
            ),
            "score_items: the columns differ in length",
        ),
    ],
)
def test_load_exported_refuses_malformed_requests_in_one_line(exported, call, message):
    with pytest.raises(ConfigError) as caught:
        call(exported)
    text = str(caught.value)
    assert message in text and "\n" not in text
