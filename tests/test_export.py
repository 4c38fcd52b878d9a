"""``tfrs-recsys export``: the SavedModel stands on TensorFlow alone and answers as the
trained model does; versions appear atomically; ``models.config``; ``recommend``.

One tiny retrieval run and one tiny ranking run are trained and exported once per
session. A fresh subprocess that imports only ``tensorflow`` loads the exports and
answers every request these tests ask about (one process for all of them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import PROBE_PRELUDE, tiny_experiment

from tfrs_recsys import cli
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.serving import tf_serving
from tfrs_recsys.serving.export import export_run
from tfrs_recsys.serving.exported import load_exported
from tfrs_recsys.serving.recommend import recommend
from tfrs_recsys.training.run import load_run, train

N = 5
REPO = Path(__file__).resolve().parents[1]
ODD_IDS = ["", "nobody", "ünïcødé-用户-🙂", "x" * 100_000, " bud_0002", "bud_0002\x00"]
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


# --- Session fixtures: two tiny runs, their exports, one probe subprocess --------------------------


@pytest.fixture(scope="session")
def retrieval_run(small_dir, tmp_path_factory):
    config = tiny_experiment(
        small_dir,
        model={"feature_set": "all", "id_mode": "input", "item_bias": True, "normalize": False},
        train={"epochs": 1},
    )
    run_dir = tmp_path_factory.mktemp("export-run") / "retrieval"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def ranking_run(small_dir, tmp_path_factory):
    config = tiny_experiment(
        small_dir,
        model={"kind": "ranking", "feature_set": "subset", "negatives_per_user": 5},
        train={"epochs": 1},
    )
    run_dir = tmp_path_factory.mktemp("export-run") / "ranking"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def exported_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports") / "exported_models"


@pytest.fixture(scope="session")
def retrieval_export(retrieval_run, exported_root):
    return export_run(retrieval_run, exported_root / "tiny", n=N, notice=lambda text: None)


@pytest.fixture(scope="session")
def ranking_export(ranking_run, exported_root):
    return export_run(ranking_run, exported_root / "tiny_ranking", n=N, notice=lambda text: None)


@pytest.fixture(scope="session")
def retrieval_model(retrieval_run):
    return load_run(retrieval_run)


@pytest.fixture(scope="session")
def ranking_model(ranking_run):
    return load_run(ranking_run)


PROBE = (
    PROBE_PRELUDE
    + r"""retrieval_dir, ranking_dir, request_file, out_file = sys.argv[1:]
requests = json.loads(open(request_file, encoding="utf-8").read())


def strings(values):
    return tf.constant(np.array([v.encode("utf-8") for v in values], dtype=object).reshape(len(values)), tf.string)

model = tf.saved_model.load(retrieval_dir)
default = model.signatures["serving_default"]
out = {"signatures": sorted(model.signatures.keys())}
out["known"] = plain(default(user_id=strings(requests["known"])))
out["odd"] = plain(default(user_id=strings(requests["odd"])))
out["batch_0"] = plain(default(user_id=strings([])))
out["batch_1"] = plain(default(user_id=strings(requests["known"][:1])))
out["batch_10000"] = plain(default(user_id=strings(requests["large"])))
out["k"] = {str(k): plain(model.signatures["recommend_k"](user_id=strings(requests["known"][:3]), k=tf.constant(k)))
            for k in requests["k_values"]}
features = {name: tf.constant(values, tf.float32 if name in requests["numeric"] else tf.string)
            for name, values in requests["features"].items()}
out["features"] = plain(model.signatures["recommend_from_features"](**features))
items = {name: tf.constant(values, tf.float32 if name in requests["numeric"] else tf.string)
         for name, values in requests["items"].items()}
out["score_items"] = plain(model.signatures["score_items"](**items))

ranking = tf.saved_model.load(ranking_dir)
out["ranking_signatures"] = sorted(ranking.signatures.keys())
out["ranking_known"] = plain(ranking.signatures["serving_default"](user_id=strings(requests["known"][:10])))
pairs = requests["pairs"]
out["score"] = plain(ranking.signatures["score"](user_id=strings(pairs["user_id"]), item_id=strings(pairs["item_id"])))
out["modules"] = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("tfrs_recsys", "tensorflow_recommenders", "tensorflow_text", "tensorflow_hub", "scann"))
open(out_file, "w", encoding="utf-8").write(json.dumps(out))
"""
)


@pytest.fixture(scope="session")
def probe_requests(retrieval_model, tmp_path_factory):
    data, model = retrieval_model.data, retrieval_model.model
    dataset = data.dataset
    rng = np.random.default_rng(0)
    user_ids = dataset.table("user").ids
    known = [str(u) for u in rng.choice(user_ids, size=40, replace=False)]
    large = [str(u) for u in rng.choice(user_ids, size=10_000)]
    large[::7] = ["unknown-" + str(i) for i in range(len(large[::7]))]
    feature_users = known[:12]
    users = dataset.users.set_index("user_id").loc[feature_users]
    feature_columns = [c for c in model.user_columns if c != "user_id"]
    numeric = [c for c in feature_columns if dataset.schema.feature("user", c).kind == "numeric"]
    features = {
        c: [float(v) if c in numeric else str(v) for v in users[c]] for c in feature_columns
    }
    features["profession"][0] = "a profession never seen"  # a new user's unseen category
    items = dataset.table("item").ids
    item_table = dataset.table("item")
    item_columns = {"user_id": known[:3] + ["nobody"]}
    for name in model.item_columns:
        values = np.asarray(item_table.columns[name])[:3]
        item_columns[name] = (
            [float(v) for v in values] if values.dtype.kind == "f" else [str(v) for v in values]
        )
        if dataset.schema.feature("item", name).kind == "numeric":
            numeric.append(name)
    # A new item: an id no table holds and a description never seen.
    item_columns["item_id"][2] = "a-brand-new-item"
    item_columns["description"][2] = "a solar powered kettle that also plays the radio"
    pairs = {
        "user_id": known[:20] + ["nobody", known[0]],
        "item_id": [str(items[i % len(items)]) for i in range(20)]
        + [str(items[0]), "no-such-item"],
    }
    return {
        "known": known,
        "odd": ODD_IDS + [known[0], known[0]],
        "large": large,
        "k_values": [0, 3, 10_000, -1],
        "features": features,
        "numeric": numeric,
        "items": item_columns,
        "pairs": pairs,
    }


@pytest.fixture(scope="session")
def probe(retrieval_export, ranking_export, probe_requests, tmp_path_factory):
    """Answers of the exports, from a subprocess that imports only tensorflow."""
    work = tmp_path_factory.mktemp("probe")
    request_file, out_file = work / "requests.json", work / "answers.json"
    request_file.write_text(json.dumps(probe_requests), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(retrieval_export.path),
            str(ranking_export.path),
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
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out_file.read_text(encoding="utf-8"))


def _expected(run, users, n=N, exclude=True):
    data, model = run.data, run.model
    return recommend(
        model.scorer(), data.dataset, users, n=n, exclude=data.split.train if exclude else None
    )


def _popular(run, n=N) -> list[str]:
    data = run.data
    _, items = data.dataset.encode(data.split.train)
    counts = np.bincount(items, minlength=data.dataset.n_items)
    return [str(i) for i in data.dataset.table("item").ids[np.argsort(-counts, kind="stable")[:n]]]


# --- The SavedModel stands on TensorFlow alone ------------------------------------------------------


def test_the_loading_process_imports_only_tensorflow(probe):
    assert probe["modules"] == []
    assert probe["signatures"] == [
        "recommend_from_features",
        "recommend_k",
        "score_items",
        "serving_default",
    ]
    assert probe["ranking_signatures"] == [
        "recommend_from_features",
        "recommend_k",
        "score",
        "serving_default",
    ]


def test_serving_default_uses_only_stock_tensorflow_ops(retrieval_export, ranking_export):
    assert retrieval_export.custom_ops == {}
    assert ranking_export.custom_ops == {}
    manifest = json.loads((retrieval_export.path / "assets.extra" / "export.json").read_text())
    assert manifest["custom_ops"] == {} and manifest["n"] == N and manifest["exclude_train"] is True
    assert manifest["custom_ops_to_load"] == [] and manifest["cold_start_text"] is False


# --- Answers ---------------------------------------------------------------------------------------------


def test_known_users_get_the_in_process_top_n_with_train_items_excluded(
    probe, probe_requests, retrieval_model
):
    users = probe_requests["known"]
    expected = _expected(retrieval_model, users)
    answer = probe["known"]
    assert answer["item_ids"]["shape"] == [len(users), N]
    assert answer["known_user"]["value"] == [True] * len(users)
    for row, recs in enumerate(expected):
        assert answer["item_ids"]["value"][row] == [r["item_id"] for r in recs]
        np.testing.assert_allclose(
            answer["scores"]["value"][row], [r["score"] for r in recs], rtol=1e-4, atol=1e-5
        )
    data = retrieval_model.data
    train = data.split.train
    for user, items in zip(users, answer["item_ids"]["value"]):
        assert not set(items) & set(train.loc[train["user_id"] == user, "item_id"])


def test_unknown_empty_unicode_and_long_ids_get_the_popular_items(probe, retrieval_model):
    answer = probe["odd"]
    popular = _popular(retrieval_model)
    assert answer["known_user"]["value"] == [False] * len(ODD_IDS) + [True, True]
    for row in range(len(ODD_IDS)):
        assert answer["item_ids"]["value"][row] == popular
        assert answer["scores"]["value"][row] == sorted(
            answer["scores"]["value"][row], reverse=True
        )
    # A duplicated known id gets the same answer twice.
    assert answer["item_ids"]["value"][-1] == answer["item_ids"]["value"][-2]
    assert answer["scores"]["value"][-1] == answer["scores"]["value"][-2]


def test_batch_sizes_0_1_and_10000(probe, probe_requests, retrieval_model):
    assert probe["batch_0"]["item_ids"]["shape"] == [0, N]
    assert probe["batch_0"]["scores"]["shape"] == [0, N]
    assert probe["batch_0"]["known_user"]["shape"] == [0]
    assert probe["batch_1"]["item_ids"]["value"] == [probe["known"]["item_ids"]["value"][0]]
    large = probe["batch_10000"]
    assert large["item_ids"]["shape"] == [10_000, N]
    ids = probe_requests["large"]
    known = [not u.startswith("unknown-") for u in ids]
    assert large["known_user"]["value"] == known
    sample = list(range(0, 10_000, 97))
    expected = _expected(retrieval_model, [ids[i] for i in sample if known[i]])
    got = [large["item_ids"]["value"][i] for i in sample if known[i]]
    assert got == [[r["item_id"] for r in recs] for recs in expected]
    popular = _popular(retrieval_model)
    assert all(large["item_ids"]["value"][i] == popular for i in range(10_000) if not known[i])


def test_recommend_k_clips_k_to_the_catalog(probe, probe_requests, retrieval_model):
    users = probe_requests["known"][:3]
    data = retrieval_model.data
    n_items = data.dataset.n_items
    assert probe["k"]["0"]["item_ids"]["shape"] == [3, 0]
    assert probe["k"]["-1"]["item_ids"]["shape"] == [3, 0]
    expected = _expected(retrieval_model, users, n=3)
    assert probe["k"]["3"]["item_ids"]["value"] == [
        [r["item_id"] for r in recs] for recs in expected
    ]
    everything = probe["k"]["10000"]
    assert everything["item_ids"]["shape"] == [3, n_items]
    train = data.split.train
    for row, user in enumerate(users):
        seen = set(train.loc[train["user_id"] == user, "item_id"])
        ids = everything["item_ids"]["value"][row]
        scores = everything["scores"]["value"][row]
        # Every unseen item once, then padding ("" and -inf) where the train items were masked.
        assert set(ids[: n_items - len(seen)]) == set(data.dataset.table("item").ids) - seen
        assert ids[n_items - len(seen) :] == [""] * len(seen)
        assert all(s == -np.inf for s in scores[n_items - len(seen) :])


def test_recommend_from_features_runs_the_query_tower_in_graph(
    probe, probe_requests, retrieval_model
):
    import tensorflow as tf

    data, model = retrieval_model.data, retrieval_model.model
    features = {
        name: tf.constant(values, tf.float32 if name in probe_requests["numeric"] else tf.string)
        for name, values in probe_requests["features"].items()
    }
    features["user_id"] = tf.fill([len(features["age"])], "")
    scores = tf.matmul(
        model.query_vectors(features), model.item_embeddings(), transpose_b=True
    ).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :N]
    item_ids = data.dataset.table("item").ids
    assert probe["features"]["item_ids"]["value"] == [
        [str(item_ids[i]) for i in row] for row in top
    ]
    np.testing.assert_allclose(
        probe["features"]["scores"]["value"],
        np.take_along_axis(scores, top, axis=1),
        rtol=1e-4,
        atol=1e-5,
    )


def test_score_items_scores_new_and_known_items_for_known_and_unknown_users(
    probe, probe_requests, retrieval_model
):
    import tensorflow as tf

    data, model = retrieval_model.data, retrieval_model.model
    columns = probe_requests["items"]
    features = {
        name: tf.constant(v, tf.float32 if name in probe_requests["numeric"] else tf.string)
        for name, v in columns.items()
        if name != "user_id"
    }
    queries = model.user_embeddings(data.dataset.table("user").index_of(columns["user_id"][:3]))
    unknown = np.zeros((1, queries.shape[1]), np.float32)
    unknown[0, -1] = model.config.temperature  # an unknown user: the item bias alone
    expected = np.concatenate([queries, unknown]) @ model.candidate_vectors(features).numpy().T
    answer = probe["score_items"]
    assert answer["known_user"]["value"] == [True, True, True, False]
    assert answer["scores"]["shape"] == [4, 3]
    np.testing.assert_allclose(answer["scores"]["value"], expected, rtol=1e-4, atol=1e-4)
    # The known items' scores are the model's (the new one goes through the towers: OOV id, bow text).
    full = model.scorer()(data.dataset.table("user").index_of(columns["user_id"][:3])).numpy()
    np.testing.assert_allclose(
        np.array(answer["scores"]["value"])[:3, :2], full[:, :2], rtol=1e-4, atol=1e-4
    )


def test_ranking_export_scores_pairs_and_ranks_the_catalog(probe, probe_requests, ranking_model):
    data, model = ranking_model.data, ranking_model.model
    pairs = probe_requests["pairs"]
    users = data.dataset.table("user").index_of(pairs["user_id"][:20])
    items = data.dataset.table("item").index_of(pairs["item_id"][:20])
    score = probe["score"]
    np.testing.assert_allclose(
        score["probability"]["value"][:20], model.probabilities(users, items), rtol=1e-4, atol=1e-6
    )
    assert score["known"]["value"] == [True] * 20 + [False, False]
    assert score["probability"]["value"][20:] == [0.0, 0.0]
    expected = _expected(ranking_model, probe_requests["known"][:10])
    assert probe["ranking_known"]["item_ids"]["value"] == [
        [r["item_id"] for r in recs] for recs in expected
    ]


def test_warmup_requests_replay_on_the_export(retrieval_export):
    path = retrieval_export.path / "assets.extra" / tf_serving.WARMUP_FILE
    if not tf_serving.serving_api_available():
        assert not path.exists()
        pytest.skip("tensorflow-serving-api is not installed")
    import tensorflow as tf

    requests = tf_serving.read_warmup_requests(path)
    assert retrieval_export.warmup_requests == len(requests) >= 2
    loaded = tf.saved_model.load(str(retrieval_export.path))
    for signature, inputs in requests:
        answer = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        assert answer["item_ids"].shape[0] == len(inputs["user_id"])


# --- saved_model_cli: the signatures and the documented REST examples ---------------------------------------


def _documented_rest_bodies() -> list[dict]:
    """The JSON bodies of the ``curl`` examples of the README and docs/."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages if page.is_file())
    return [json.loads(body) for body in re.findall(r"curl [^\n]*-d '(\{.*?\})'", text)]


@pytest.fixture(scope="session")
def saved_model_cli_runs(retrieval_export):
    """``saved_model_cli show --all`` and ``run`` for each documented REST body, in parallel."""
    path = str(retrieval_export.path)
    commands = {"show": [str(SAVED_MODEL_CLI), "show", "--dir", path, "--all"]}
    for number, body in enumerate(_documented_rest_bodies()):
        signature = body.get("signature_name", "serving_default")
        if "instances" in body:
            columns = {key: [row[key] for row in body["instances"]] for key in body["instances"][0]}
        else:
            columns = body["inputs"]
        exprs = ";".join(f"{key}={json.dumps(value)}" for key, value in columns.items())
        commands[f"run{number}"] = [
            str(SAVED_MODEL_CLI),
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            signature,
            "--input_exprs",
            exprs,
        ]
    processes = {
        name: subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=TF_ENV
        )
        for name, cmd in commands.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stdout, stderr)
    return results


def test_saved_model_cli_lists_the_signatures_with_names_and_dtypes(saved_model_cli_runs):
    code, out, err = saved_model_cli_runs["show"]
    assert code == 0, err[-2000:]
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name", out, flags=re.S))
    expected = {
        "serving_default": {
            "user_id": ("DT_STRING", "(-1)"),
            "item_ids": ("DT_STRING", f"(-1, {N})"),
            "scores": ("DT_FLOAT", f"(-1, {N})"),
            "known_user": ("DT_BOOL", "(-1)"),
        },
        "recommend_k": {
            "user_id": ("DT_STRING", "(-1)"),
            "k": ("DT_INT32", "()"),
            "item_ids": ("DT_STRING", "(-1, -1)"),
            "scores": ("DT_FLOAT", "(-1, -1)"),
            "known_user": ("DT_BOOL", "(-1)"),
        },
        "recommend_from_features": {
            "age": ("DT_FLOAT", "(-1)"),
            "profession": ("DT_STRING", "(-1)"),
            "personality": ("DT_STRING", "(-1)"),
            "item_ids": ("DT_STRING", f"(-1, {N})"),
            "scores": ("DT_FLOAT", f"(-1, {N})"),
        },
        "score_items": {
            "user_id": ("DT_STRING", "(-1)"),
            "item_id": ("DT_STRING", "(-1)"),
            "product_type": ("DT_STRING", "(-1)"),
            "description": ("DT_STRING", "(-1)"),
            "price": ("DT_FLOAT", "(-1)"),
            "features": ("DT_STRING", "(-1)"),
            "scores": ("DT_FLOAT", "(-1, -1)"),
            "known_user": ("DT_BOOL", "(-1)"),
        },
    }
    for signature, tensors in expected.items():
        assert signature in blocks, sorted(blocks)
        found = {
            name: (dtype, shape)
            for name, dtype, shape in re.findall(
                r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\S+(?: \S+)?)\n",
                blocks[signature],
            )
        }
        assert found == tensors, signature


def test_documented_rest_examples_match_the_signatures(saved_model_cli_runs):
    bodies = _documented_rest_bodies()
    assert any("instances" in b for b in bodies) and any("inputs" in b for b in bodies)
    for number, body in enumerate(bodies):
        code, out, err = saved_model_cli_runs[f"run{number}"]
        assert code == 0, (body, err[-2000:])
        if body.get("signature_name") == "score_items":
            assert (
                "Result for output key scores" in out and "Result for output key known_user" in out
            )
        else:
            assert "Result for output key item_ids" in out and "Result for output key scores" in out


# --- Versions, atomicity, models.config ----------------------------------------------------------------------


def test_versions_and_models_config(retrieval_export, ranking_export, exported_root):
    assert retrieval_export.path == exported_root / "tiny" / "1"
    assert (retrieval_export.path / "saved_model.pb").is_file()
    text = (exported_root / "models.config").read_text()
    assert text.count("config {") == len(tf_serving.model_directories(exported_root))
    for name in ("tiny", "tiny_ranking"):
        assert f'name: "{name}"' in text and f'base_path: "/models/{name}"' in text
    assert 'model_platform: "tensorflow"' in text
    assert not [p for p in exported_root.rglob("*") if ".tmp-" in p.name]


def test_a_killed_export_leaves_no_partial_version(
    retrieval_run, retrieval_export, tmp_path, monkeypatch
):
    out = tmp_path / "exported_models" / "killed"
    out.mkdir(parents=True)
    # The previous version, shared with the session export (a hard-linked copy is enough).
    previous = out / "1"
    subprocess.run(["cp", "-al", str(retrieval_export.path), str(previous)], check=True)
    before = sorted(p.relative_to(previous) for p in previous.rglob("*"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfrs_recsys",
            "export",
            "--run-dir",
            str(retrieval_run),
            "--out",
            str(out),
            "-n",
            "3",
        ],
        cwd=REPO,
        env=TF_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    staging = []
    while time.monotonic() < deadline and process.poll() is None:
        staging = [p for p in out.iterdir() if p.name.startswith(".export.tmp-")]
        if staging and any(staging[0].rglob("*")):
            break
        time.sleep(0.02)
    assert staging, "the export never started writing"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert tf_serving.versions(out) == [1]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["1"]
    assert sorted(p.relative_to(previous) for p in previous.rglob("*")) == before
    # The next export clears the dead process's staging directory and takes version 2;
    # without tensorflow-serving-api it skips the warm-up requests with a notice.
    monkeypatch.setattr(tf_serving, "serving_api_available", lambda: False)
    notices = []
    result = export_run(retrieval_run, out, n=3, notice=notices.append)
    assert result.version == 2 and tf_serving.versions(out) == [1, 2]
    assert not [p for p in out.iterdir() if p.name.startswith(".export.tmp-")]
    assert result.warmup_requests == 0
    assert not (result.path / "assets.extra" / tf_serving.WARMUP_FILE).exists()
    assert (
        len(notices) == 1 and "tensorflow-serving-api" in notices[0] and "[serving]" in notices[0]
    )


# --- Bad input -----------------------------------------------------------------------------------------------


def _cli(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, retrieval_run):
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.toml").write_text((retrieval_run / "config.toml").read_text())
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {
        "no such directory": [
            "export",
            "--run-dir",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "m"),
        ],
        "no trained weights": [
            "export",
            "--run-dir",
            str(no_weights),
            "--out",
            str(tmp_path / "m"),
        ],
        "not a directory": ["export", "--run-dir", str(retrieval_run), "--out", str(a_file)],
        "is not a directory": [
            "export",
            "--run-dir",
            str(retrieval_run),
            "--out",
            str(a_file / "model"),
        ],
        "not a run directory": ["export", "--run-dir", str(tmp_path), "--out", str(tmp_path / "m")],
    }
    for message, args in cases.items():
        code, _, err = _cli(args, capsys)
        assert code == 2, args
        assert len(err) == 1 and message in err[0], (args, err)
    for n in ("0", "-3", "ten"):
        with pytest.raises(SystemExit) as exc:
            cli.main(
                ["export", "--run-dir", str(retrieval_run), "--out", str(tmp_path / "m"), "-n", n]
            )
        assert exc.value.code == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and "-n" in err[0]
    assert not (tmp_path / "m").exists()


def test_scann_index_without_scann_names_the_extra(retrieval_run, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "scann"] + ["scann"]:
        monkeypatch.setitem(sys.modules, name, None)  # an import of scann now fails
    code, _, err = _cli(
        [
            "export",
            "--run-dir",
            str(retrieval_run),
            "--out",
            str(tmp_path / "m"),
            "--index",
            "scann",
        ],
        capsys,
    )
    assert code == 2 and len(err) == 1
    assert "scann" in err[0] and "tfrs-recsys[scann]" in err[0]


def _scann_installed() -> bool:
    try:
        from scann.scann_ops.py import scann_ops  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _scann_installed(), reason="the optional scann extra is not installed")
def test_scann_index_export_is_marked_as_needing_the_scann_ops(
    retrieval_run, retrieval_model, tmp_path
):
    import tensorflow as tf

    result = export_run(
        retrieval_run, tmp_path / "models" / "scann", n=N, index="scann", warmup=False
    )
    assert any(op.startswith("Scann") for op in result.custom_ops["serving_default"])
    users = ["bud_0002", "tec_0001", "cre_0010"]
    answer = tf.saved_model.load(str(result.path)).signatures["serving_default"](
        user_id=tf.constant(users)
    )
    # A catalog this small is searched exhaustively: the exact answer.
    expected = _expected(retrieval_model, users)
    assert answer["item_ids"].numpy().astype(str).tolist() == [
        [r["item_id"] for r in recs] for recs in expected
    ]


# --- recommend -----------------------------------------------------------------------------------------------


def test_recommend_prints_items_with_metadata_from_the_export(
    retrieval_export, retrieval_model, capsys
):
    code, out, err = _cli(
        [
            "recommend",
            "--model",
            str(retrieval_export.path.parent),
            "--user",
            "bud_0002",
            "--user",
            "nobody",
            "-n",
            "3",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["version"] == "1"
    known, unknown = result["users"]
    [expected] = _expected(retrieval_model, ["bud_0002"], n=3)
    assert [r["item_id"] for r in known["items"]] == [r["item_id"] for r in expected]
    for got, want in zip(known["items"], expected):
        assert set(got) == set(want)
        assert got["product_type"] == want["product_type"] and got["price"] == pytest.approx(
            want["price"]
        )
        assert got["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-5)
    assert known["known_user"] is True and unknown["known_user"] is False
    assert [r["item_id"] for r in unknown["items"]] == _popular(retrieval_model, 3)

    code, out, err = _cli(
        ["recommend", "--model", str(retrieval_export.path.parent), "--representative", "-n", "2"],
        capsys,
    )
    assert code == 0, err
    for personality in ("Tech Enthusiast", "Budget Conscious", "Creative Explorer"):
        assert f"== personality: {personality}" in out
    assert out.count("  1. item_") == 15 and "score" in out


def test_recommend_bad_input(retrieval_export, tmp_path, capsys):
    model = str(retrieval_export.path.parent)
    for args, message in (
        (["--model", str(tmp_path / "missing"), "--user", "u"], "no such directory"),
        (["--model", str(tmp_path), "--user", "u"], "no exported version"),
        (["--model", model, "--user", "u", "--version", "99"], "no version 99"),
        (["--model", model], "--user"),
    ):
        code, _, err = _cli(["recommend", *args], capsys)
        assert code == 2 and len(err) == 1 and message in err[0], (args, err)


# --- load_exported: the export as a Python object -------------------------------------------------------


@pytest.fixture(scope="session")
def exported(retrieval_export):
    return load_exported(retrieval_export.path.parent)  # the model directory: its latest version


def test_load_exported_recommends_with_item_metadata(exported, retrieval_model):
    assert exported.version == "1"
    known, unknown = exported.recommend(["bud_0002", "nobody"], k=3)
    [expected] = _expected(retrieval_model, ["bud_0002"], n=3)
    assert known["user_id"] == "bud_0002" and known["known_user"] is True
    assert [r["item_id"] for r in known["items"]] == [r["item_id"] for r in expected]
    for got, want in zip(known["items"], expected):
        assert got["product_type"] == want["product_type"]
        assert got["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-5)
    assert unknown["known_user"] is False
    assert [r["item_id"] for r in unknown["items"]] == _popular(retrieval_model, 3)
    assert exported.recommend([], k=3) == []


def test_load_exported_recommend_from_features_runs_the_query_tower(
    exported, probe_requests, retrieval_model
):
    import tensorflow as tf

    data, model = retrieval_model.data, retrieval_model.model
    columns = {name: values[:4] for name, values in probe_requests["features"].items()}
    answer = exported.recommend_from_features(k=3, **columns)
    features = {
        name: tf.constant(v, tf.float32 if name == "age" else tf.string)
        for name, v in columns.items()
    }
    features["user_id"] = tf.fill([4], "")
    scores = tf.matmul(
        model.query_vectors(features), model.item_embeddings(), transpose_b=True
    ).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    item_ids = data.dataset.table("item").ids
    assert [[r["item_id"] for r in recs] for recs in answer] == [
        [str(item_ids[i]) for i in row] for row in top
    ]
    np.testing.assert_allclose(
        [[r["score"] for r in recs] for recs in answer],
        np.take_along_axis(scores, top, 1),
        rtol=1e-4,
        atol=1e-5,
    )
    assert all(
        len(recs) == N for recs in exported.recommend_from_features(**columns)
    )  # k: the export's n


def test_load_exported_score_items_scores_known_items_as_the_model(exported, retrieval_model):
    data, model = retrieval_model.data, retrieval_model.model
    table = data.dataset.table("item")
    columns = {}
    for name in model.item_columns:
        values = np.asarray(table.columns[name])[:3]
        columns[name] = values.tolist()
    users = ["bud_0002", "tec_0001", "nobody"]
    answer = exported.score_items(users, **columns)
    assert answer.scores.shape == (3, 3) and answer.known_user.tolist() == [True, True, False]
    expected = model.scorer()(data.dataset.table("user").index_of(users[:2])).numpy()[:, :3]
    np.testing.assert_allclose(answer.scores[:2], expected, rtol=1e-4, atol=1e-4)


def test_load_exported_answers_nan_and_infinite_numerics_as_the_train_mean(
    exported, probe_requests, retrieval_model
):
    import tensorflow as tf

    data, model = retrieval_model.data, retrieval_model.model
    [age_mean], _ = retrieval_model.preprocessing.user.normalization["age"]
    columns = {name: values[:1] * 4 for name, values in probe_requests["features"].items()}
    answer = exported.recommend_from_features(**{**columns, "age": [np.nan, np.inf, -np.inf, None]})
    features = {name: tf.constant(v[:1]) for name, v in columns.items()}
    features["age"] = tf.constant([float(age_mean)], tf.float32)
    features["user_id"] = tf.constant([""])
    scores = tf.matmul(
        model.query_vectors(features), model.item_embeddings(), transpose_b=True
    ).numpy()[0]
    top = np.argsort(-scores, kind="stable")[:N]
    item_ids = data.dataset.table("item").ids
    for recs in answer:  # each row: the user of mean age
        assert [r["item_id"] for r in recs] == [str(item_ids[i]) for i in top]
        np.testing.assert_allclose([r["score"] for r in recs], scores[top], rtol=1e-4, atol=1e-5)

    table = data.dataset.table("item")
    items = {name: np.asarray(table.columns[name])[:1].tolist() * 2 for name in model.item_columns}
    [price_mean], _ = retrieval_model.preprocessing.item.normalization["price"]  # of log1p(price)
    items["price"] = [np.nan, float(np.expm1(price_mean))]
    scored = exported.score_items(["bud_0002", "nobody"], **items).scores
    assert np.isfinite(scored).all()
    np.testing.assert_allclose(scored[:, 0], scored[:, 1], rtol=1e-4, atol=1e-5)


def test_load_exported_names_wrong_columns_and_missing_signatures(
    exported, probe_requests, ranking_export
):
    columns = {name: values[:2] for name, values in probe_requests["features"].items()}
    with pytest.raises(ConfigError, match="missing age"):
        exported.recommend_from_features(**{k: v for k, v in columns.items() if k != "age"})
    with pytest.raises(ConfigError, match="unknown shoe_size"):
        exported.recommend_from_features(**columns, shoe_size=[40.0, 42.0])
    with pytest.raises(ConfigError, match="differ in length"):
        exported.recommend_from_features(**{**columns, "age": [30.0]})
    with pytest.raises(ConfigError, match=rf"k must be in \[0, {N}\]"):
        exported.recommend_from_features(k=N + 1, **columns)
    ranking = load_exported(ranking_export.path.parent)
    with pytest.raises(ConfigError, match="ranking export has no score_items signature"):
        ranking.score_items(["bud_0002"], item_id=["item_0001"])
    with pytest.raises(ConfigError, match="no version 7"):
        load_exported(ranking_export.path.parent, version=7)


# --- TF Serving plumbing ---------------------------------------------------------------------------------------


def test_models_config_lists_only_model_directories_with_versions(tmp_path):
    root = tmp_path / "exported_models"
    for path in (
        "a/1",
        "a/3",
        'we"ird/2',
        "empty",
        ".hidden/1",
        "b/.export.tmp-1-ab",
        "b/notaversion",
    ):
        (root / path).mkdir(parents=True)
    for path in ("a/1", "a/3", 'we"ird/2', ".hidden/1"):
        (root / path / "saved_model.pb").write_bytes(b"")
    assert tf_serving.versions(root / "a") == [1, 3]
    assert tf_serving.next_version(root / "a") == 4
    assert tf_serving.next_version(root / "b") == 1
    text = tf_serving.models_config_text(root, "/srv/models/")
    assert text == (
        "model_config_list {\n"
        '  config {\n    name: "a"\n    base_path: "/srv/models/a"\n    model_platform: "tensorflow"\n  }\n'
        '  config {\n    name: "we\\"ird"\n    base_path: "/srv/models/we\\"ird"\n    model_platform: "tensorflow"\n  }\n'
        "}\n"
    )
    path = tf_serving.write_models_config(root)
    assert path.read_text().count("config {") == 2 and '"/models/a"' in path.read_text()
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == [
        ".models.config.lock",
        "models.config",
    ]
