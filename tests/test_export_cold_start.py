"""``tfrs-recsys export --cold-start-text``: a BERT-text run's export whose
``recommend_from_features`` and ``score_items`` run the TF Hub encoder on text
no precomputed table holds (a new user's profession, a new item's description).

One tiny retrieval run with ``model.text_encoder = "bert"`` (the tiny converted
BERT pair of the text tests) is trained for one epoch and exported twice, with
and without the flag. A fresh subprocess that imports only ``tensorflow`` (then
``tensorflow_text``) loads both exports and answers the requests below.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import (
    PROBE_PRELUDE,
    embedding_cache,
    new_user_columns,
    tiny_bert_pair,
    tiny_experiment,
)

from tfrs_recsys import cli
from tfrs_recsys.features.text import PrecomputedTextEncoder
from tfrs_recsys.serving.export import export_run
from tfrs_recsys.text_encoder import embed_texts
from tfrs_recsys.training.run import load_run, train

N = 5
SEQ_LENGTH = 16
UNSEEN_PROFESSION = "deep sea welder and amateur astronomer"
UNSEEN_DESCRIPTION = "a solar powered kettle that also plays the radio"
NEW_ITEM = "item_brand_new"
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    return tiny_bert_pair(tmp_path_factory, "cold", seq_length=SEQ_LENGTH)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    yield from embedding_cache(tmp_path_factory, "cold")


@pytest.fixture(scope="module")
def bert_run(small_dir, pair_dir, cache, tmp_path_factory):
    config = tiny_experiment(
        small_dir,
        model={
            "feature_set": "all",
            "text_encoder": "bert",
            "text_model": str(pair_dir),
            "id_mode": "input",
            "item_bias": True,
            "normalize": False,
        },
        train={"epochs": 1},
    )
    run_dir = tmp_path_factory.mktemp("cold-run") / "bert"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def exports(bert_run, cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("cold-exports") / "exported_models"
    notices = []
    plain = export_run(bert_run, root / "plain", n=N, warmup=False, notice=notices.append)
    assert notices == []
    cold = export_run(
        bert_run, root / "cold", n=N, warmup=False, cold_start_text=True, notice=notices.append
    )
    return {"plain": plain, "cold": cold, "notices": notices}


@pytest.fixture(scope="module")
def trained(bert_run, cache):
    return load_run(bert_run)


PROBE = (
    PROBE_PRELUDE
    + r"""plain_dir, cold_dir, request_file, out_file = sys.argv[1:]
requests = json.loads(open(request_file, encoding="utf-8").read())


def inputs(columns, numeric):
    return {name: tf.constant(values, tf.float32 if name in numeric else tf.string, shape=[len(values)])
            for name, values in columns.items()}

def ask(model):
    answers = {}
    for name, columns in requests["features"].items():
        answers["features_" + name] = plain(model.signatures["recommend_from_features"](**inputs(columns, requests["numeric"])))
    for name, columns in requests["items"].items():
        answers["items_" + name] = plain(model.signatures["score_items"](**inputs(columns, requests["numeric"])))
    return answers

out = {}
default = tf.saved_model.load(plain_dir)          # stock ops: TensorFlow alone loads it
out["plain"] = ask(default)
try:
    tf.saved_model.load(cold_dir)
    out["cold_without_tf_text"] = "loaded"
except Exception as exc:                          # TF Text ops are not registered yet
    out["cold_without_tf_text"] = f"{type(exc).__name__}: {exc}"[:300]
import tensorflow_text  # noqa: F401
cold = tf.saved_model.load(cold_dir)
out["cold"] = ask(cold)
out["signatures"] = sorted(cold.signatures.keys())
out["modules"] = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("tfrs_recsys", "tensorflow_recommenders", "tensorflow_hub"))
out["tf_text_imported"] = "tensorflow_text" in sys.modules
open(out_file, "w", encoding="utf-8").write(json.dumps(out))
"""
)


def _item_columns(trained, rows, user_ids, new_item=False):
    data, model = trained.data, trained.model
    table = data.dataset.table("item")
    columns = {"user_id": list(user_ids)}
    for name in model.item_columns:
        values = np.asarray(table.columns[name])[rows]
        columns[name] = (
            [float(v) for v in values] if values.dtype.kind == "f" else [str(v) for v in values]
        )
    if new_item:
        columns["item_id"][0] = NEW_ITEM
        columns["description"][0] = UNSEEN_DESCRIPTION
    return columns


@pytest.fixture(scope="module")
def probe_requests(trained):
    data, model = trained.data, trained.model
    users = [str(u) for u in data.dataset.users["user_id"].iloc[:4]]
    schema = data.dataset.schema
    numeric = [
        c
        for side, names in (("user", model.user_columns), ("item", model.item_columns))
        for c in names
        if schema.feature(side, c).kind == "numeric"
    ]
    empty = {name: [] for name in new_user_columns(trained, users)}
    empty_items = {name: [] for name in _item_columns(trained, [0], users[:1])}
    return {
        "numeric": numeric,
        "users": users,
        "features": {
            "known": new_user_columns(trained, users),
            "unseen": new_user_columns(trained, users, profession=UNSEEN_PROFESSION),
            "batch_0": empty,
        },
        "items": {
            "new": _item_columns(trained, [0, 1, 2, 3], users[:2] + ["nobody", ""], new_item=True),
            "known": _item_columns(trained, list(range(data.dataset.n_items)), users[:3]),
            "batch_0": empty_items,
            "no_users": {**_item_columns(trained, [0, 1], []), "user_id": []},
        },
    }


@pytest.fixture(scope="module")
def probe(exports, probe_requests, pair_dir, tmp_path_factory):
    """The exports' answers, from a fresh process, the encoder pair's directory moved away meanwhile."""
    work = tmp_path_factory.mktemp("cold-probe")
    request_file, out_file = work / "requests.json", work / "answers.json"
    request_file.write_text(json.dumps(probe_requests), encoding="utf-8")
    hidden = pair_dir.with_name(pair_dir.name + "-moved-away")
    pair_dir.rename(hidden)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PROBE,
                str(exports["plain"].path),
                str(exports["cold"].path),
                str(request_file),
                str(out_file),
            ],
            capture_output=True,
            text=True,
            cwd=work,
            env=TF_ENV,
            timeout=300,
            check=False,
        )
    finally:
        hidden.rename(pair_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out_file.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _table_with(model, side, column, pair_dir, text):
    """The model with ``text`` added to one precomputed table, its vector from the encoder in process.

    Independent of the export's fallback: a new lookup layer holding the table's
    strings plus ``text`` replaces the column's layer while the block runs.
    """
    encoder = model.query_tower.encoder if side == "user" else model.candidate_tower.encoder
    old = encoder.text_encoders[column]
    keys, rows = old.table.export()
    texts = [k.decode("utf-8") for k in keys.numpy()] + [text]
    vectors = np.concatenate(
        [tf.gather(old.vectors, rows).numpy(), embed_texts([text], str(pair_dir), use_cache=False)]
    )
    encoder.text_encoders[column] = PrecomputedTextEncoder(texts, vectors)
    try:
        yield
    finally:
        encoder.text_encoders[column] = old


def _top(model, columns, n=N):
    features = {
        name: tf.constant(v, tf.float32 if name == "age" else tf.string)
        for name, v in columns.items()
    }
    features["user_id"] = tf.fill([len(columns["age"])], "")
    scores = tf.matmul(
        model.query_vectors(features), model.item_embeddings(), transpose_b=True
    ).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return top, np.take_along_axis(scores, top, axis=1)


def _assert_answer(answer, trained, expected):
    data = trained.data
    top, scores = expected
    ids = data.dataset.table("item").ids
    assert answer["item_ids"]["value"] == [[str(ids[i]) for i in row] for row in top]
    np.testing.assert_allclose(answer["scores"]["value"], scores, rtol=1e-4, atol=1e-4)


# --- Loading: TensorFlow + TF Text only; the default export TensorFlow alone -------------------------------


def test_the_cold_start_export_loads_with_tensorflow_text_alone(probe):
    assert probe["modules"] == [] and probe["tf_text_imported"]
    assert probe["signatures"] == [
        "recommend_from_features",
        "recommend_k",
        "score_items",
        "serving_default",
    ]
    # All signatures share one function library: without TF Text nothing loads.
    assert probe["cold_without_tf_text"] != "loaded"
    assert (
        "not registered" in probe["cold_without_tf_text"]
        or "Op type" in probe["cold_without_tf_text"]
    )


def test_manifest_custom_ops_and_notice(exports, pair_dir):
    plain, cold = exports["plain"], exports["cold"]
    assert plain.custom_ops == {} and not plain.cold_start_text
    assert cold.cold_start_text
    assert "serving_default" not in cold.custom_ops and "recommend_k" not in cold.custom_ops
    assert set(cold.custom_ops) == {"recommend_from_features", "score_items"}
    assert any("Wordpiece" in op for op in cold.custom_ops["recommend_from_features"])
    manifest = json.loads((cold.path / "assets.extra" / "export.json").read_text())
    assert manifest["cold_start_text"] is True and manifest["needs_tf_text_to_load"] is True
    encoder = manifest["text_encoder"]
    assert encoder["text_model"] == str(pair_dir)
    assert encoder["preprocessor"].startswith(str(pair_dir)) and encoder["encoder"].startswith(
        str(pair_dir)
    )
    assert (
        encoder["pooling"] == "mean"
        and encoder["seq_length"] == SEQ_LENGTH
        and encoder["normalize"] is True
    )
    assert encoder["columns"] == {"item": ["description", "features"], "user": ["profession"]}
    # The whole SavedModel's ops: the signatures' and the saved preprocessor's other functions.
    assert set(cold.custom_ops["recommend_from_features"]) <= set(manifest["custom_ops_to_load"])
    assert cold.custom_ops_to_load == manifest["custom_ops_to_load"]
    plain_manifest = json.loads((plain.path / "assets.extra" / "export.json").read_text())
    assert (
        plain_manifest["cold_start_text"] is False
        and plain_manifest["needs_tf_text_to_load"] is False
    )
    assert plain_manifest["custom_ops"] == {} and plain_manifest["custom_ops_to_load"] == []
    assert plain_manifest["text_encoder"] == encoder
    [notice] = exports["notices"]
    assert (
        "TF Text" in notice
        and "TF Serving >= 2.20" in notice
        and "import tensorflow_text" in notice
    )
    # The export carries the encoder (the probe loads it with the pair's directory moved away):
    # the preprocessor's vocabulary asset and the encoder's weights.
    assert (cold.path / "assets" / "vocab.txt").is_file() and not (
        plain.path / "assets" / "vocab.txt"
    ).exists()
    assert (cold.path / "variables" / "variables.data-00000-of-00001").stat().st_size > (
        plain.path / "variables" / "variables.data-00000-of-00001"
    ).stat().st_size


# --- recommend_from_features ------------------------------------------------------------------------------


def test_an_unseen_profession_goes_through_the_encoder(probe, probe_requests, trained, pair_dir):
    model = trained.model
    unseen = probe_requests["features"]["unseen"]
    with _table_with(model, "user", "profession", pair_dir, UNSEEN_PROFESSION):
        expected = _top(model, unseen)
    _assert_answer(probe["cold"]["features_unseen"], trained, expected)
    # Without the flag the unseen string gets the zero vector (the model's own behaviour).
    _assert_answer(probe["plain"]["features_unseen"], trained, _top(model, unseen))
    assert not np.allclose(
        probe["cold"]["features_unseen"]["scores"]["value"],
        probe["plain"]["features_unseen"]["scores"]["value"],
        atol=1e-4,
    )


def test_a_known_profession_gives_the_same_answer_with_and_without_the_flag(
    probe, probe_requests, trained
):
    model = trained.model
    expected = _top(model, probe_requests["features"]["known"])
    _assert_answer(probe["cold"]["features_known"], trained, expected)
    _assert_answer(probe["plain"]["features_known"], trained, expected)


def test_batch_0(probe):
    for export in ("plain", "cold"):
        assert probe[export]["features_batch_0"]["item_ids"]["shape"] == [0, N]
        assert probe[export]["items_batch_0"]["scores"]["shape"] == [0, 0]
        assert probe[export]["items_no_users"]["scores"]["shape"] == [0, 2]


# --- score_items ---------------------------------------------------------------------------------------------


def test_score_items_of_known_items_are_the_models_scores(probe, probe_requests, trained):
    data, model = trained.data, trained.model
    users = probe_requests["users"][:3]
    expected = model.scorer()(data.dataset.table("user").index_of(users)).numpy()
    for export in ("plain", "cold"):
        answer = probe[export]["items_known"]
        assert answer["known_user"]["value"] == [True] * 3
        np.testing.assert_allclose(answer["scores"]["value"], expected, rtol=1e-4, atol=1e-4)


def test_score_items_of_a_new_item_with_an_unseen_description(
    probe, probe_requests, trained, pair_dir
):
    data, model = trained.data, trained.model
    columns = probe_requests["items"]["new"]
    features = {
        name: tf.constant(v, tf.float32 if name in probe_requests["numeric"] else tf.string)
        for name, v in columns.items()
        if name != "user_id"
    }
    queries = model.user_embeddings(data.dataset.table("user").index_of(columns["user_id"][:2]))
    unknown = np.zeros((2, queries.shape[1]), np.float32)
    unknown[:, -1] = model.config.temperature  # the unknown user: item bias only
    queries = np.concatenate([queries, unknown])
    with _table_with(model, "item", "description", pair_dir, UNSEEN_DESCRIPTION):
        expected = queries @ model.candidate_vectors(features).numpy().T
    zero_text = queries @ model.candidate_vectors(features).numpy().T
    cold, plain = probe["cold"]["items_new"], probe["plain"]["items_new"]
    assert cold["known_user"]["value"] == [True, True, False, False]
    np.testing.assert_allclose(cold["scores"]["value"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plain["scores"]["value"], zero_text, rtol=1e-4, atol=1e-4)
    # Only the new item's column differs; unknown users score items by their bias alone.
    assert not np.allclose(
        np.array(cold["scores"]["value"])[:2, 0],
        np.array(plain["scores"]["value"])[:2, 0],
        atol=1e-4,
    )
    np.testing.assert_allclose(
        np.array(cold["scores"]["value"])[:, 1:],
        np.array(plain["scores"]["value"])[:, 1:],
        atol=1e-4,
    )
    bias = model.item_bias(model.item_bias_lookup(features["item_id"])).numpy()[:, 0]
    np.testing.assert_allclose(
        cold["scores"]["value"][2], model.config.temperature * bias, rtol=1e-4, atol=1e-5
    )


# --- Bad input -----------------------------------------------------------------------------------------------


def test_cold_start_text_on_a_run_without_bert_text_is_one_line_and_exit_2(
    bert_run, tmp_path, capsys
):
    config = (bert_run / "config.toml").read_text()
    assert 'text_encoder = "bert"' in config
    cases = {
        "bag-of-words": config.replace('text_encoder = "bert"', 'text_encoder = "bow"'),
        "no text features": config.replace('text_encoder = "bert"', 'text_encoder = "none"'),
        "feature_set = 'subset'": config.replace('feature_set = "all"', 'feature_set = "subset"'),
    }
    for message, text in cases.items():
        run_dir = tmp_path / message.replace(" ", "_").replace("'", "")
        run_dir.mkdir()
        (run_dir / "config.toml").write_text(text)
        code = cli.main(
            ["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "m"), "--cold-start-text"]
        )
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1, (message, err)
        assert "--cold-start-text" in err[0] and message in err[0], err
    assert not (tmp_path / "m").exists()
