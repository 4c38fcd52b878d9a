"""Retrieval then ranking: the two-stage order, ``evaluate --rerank``, the two-stage export.

The order is checked against a plain-Python computation (sorted lists per user):
candidates (the retrieval model's top ``M`` unseen items) first in the ranking
model's order, then the other unseen items in retrieval order, seen items never.
One tiny retrieval run and one tiny ranking run are trained once for the module;
the export is loaded in a fresh interpreter that imports only TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from model_fixtures import PROBE_PRELUDE, small_split, tiny_experiment  # noqa: F401

from tfrs_recsys import cli
from tfrs_recsys.data.generator import GeneratorConfig, generate
from tfrs_recsys.data.techproducts import write_tech_products
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.models.two_stage import (
    TwoStageRecommender,
    candidate_negative_exclusions,
    rerank_order,
)
from tfrs_recsys.serving.export import export_run
from tfrs_recsys.training.run import load_run, train

M = 7
N = 5


def expected_order(retrieval: np.ndarray, logits: dict[int, float], seen: set[int], m: int):
    """One user's two-stage order, computed with sorted lists.

    ``logits`` maps item -> ranking logit (only candidates are read).
    """
    unseen = [i for i in range(len(retrieval)) if i not in seen]
    # Retrieval order: higher score first, ties to the lower item.
    by_retrieval = sorted(unseen, key=lambda i: (-retrieval[i], i))
    candidates, rest = by_retrieval[:m], by_retrieval[m:]
    # Ranking order: higher logit first, ties keep the retrieval place.
    reranked = sorted(candidates, key=lambda i: (-logits[i], candidates.index(i)))
    return reranked + rest


# --- The order, on hand-made scores ----------------------------------------------------------


def test_rerank_order_puts_ranked_candidates_first_then_retrieval_order():
    rng = np.random.default_rng(0)
    n_items, m = 12, 4
    retrieval = rng.normal(size=(3, n_items)).astype(np.float32)
    retrieval[0, 5] = retrieval[0, 6]  # a retrieval tie: lower row first
    seen = [{0, 3}, set(), set(range(10))]  # user 2 has only 2 unseen items (< m)
    for row, items in enumerate(seen):
        retrieval[row, list(items)] = -np.inf
    table = rng.normal(size=(3, n_items)).astype(np.float32)
    table[1, :] = 0.5  # all ranking logits tied: the retrieval order stays
    got = rerank_order(
        retrieval, lambda items: np.take_along_axis(table, items, axis=1), m
    ).scores()
    for row in range(3):
        logits = {i: float(table[row, i]) for i in range(n_items)}
        want = expected_order(retrieval[row], logits, seen[row], m)
        ranked = [int(i) for i in np.argsort(-got[row], kind="stable")[: len(want)]]
        assert ranked == want
        assert np.isneginf(got[row, list(seen[row])]).all()
        assert np.isfinite(got[row, want]).all()


def test_candidates_beyond_the_catalog_rerank_every_unseen_item():
    retrieval = np.array([[3.0, -np.inf, 1.0, 2.0]], np.float32)
    logits = np.array([[0.0, 9.0, 5.0, 1.0]], np.float32)
    result = rerank_order(retrieval, lambda items: np.take_along_axis(logits, items, 1), 100)
    # Unseen items 0, 2, 3 by logit: 2 (5.0), 3 (1.0), 0 (0.0); item 1 is seen.
    assert result.order[0, :3].tolist() == [2, 3, 0]
    assert result.candidates.tolist() == [3]


def test_hard_negative_exclusions_leave_each_users_top_unseen_candidates(
    small_dataset, small_split
):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(small_dataset.n_users, small_dataset.n_items)).astype(np.float32)

    class FixedScores:
        def scorer(self):
            return lambda rows: table[rows]

    m = 9
    seen = small_split.train
    excluded = candidate_negative_exclusions(FixedScores(), small_dataset, seen, m, batch_size=64)
    users, items = small_dataset.encode(excluded)
    seen_users, seen_items = small_dataset.encode(seen)
    for row in (0, 17, 250, small_dataset.n_users - 1):
        mine = set(seen_items[seen_users == row].tolist())
        unseen = [i for i in range(small_dataset.n_items) if i not in mine]
        top = set(sorted(unseen, key=lambda i: (-table[row, i], i))[:m])
        allowed = set(range(small_dataset.n_items)) - set(items[users == row].tolist())
        assert allowed == top


# --- Tiny trained runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrieval_run(small_dir, tmp_path_factory):
    config = tiny_experiment(small_dir, model={"feature_set": "ids"}, train={"epochs": 1})
    run_dir = tmp_path_factory.mktemp("two-stage") / "retrieval"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def ranking_run(small_dir, tmp_path_factory):
    config = tiny_experiment(
        small_dir,
        model={"kind": "ranking", "feature_set": "subset", "negatives_per_user": 3},
        train={"epochs": 1},
    )
    run_dir = tmp_path_factory.mktemp("two-stage") / "ranking"
    train(config, run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def runs(retrieval_run, ranking_run):
    return load_run(retrieval_run), load_run(ranking_run)


@pytest.fixture(scope="module")
def two_stage(runs):
    return TwoStageRecommender.from_runs(*runs, candidates=M)


def _numpy_reference(runs, user_rows: np.ndarray, m: int) -> list[list[int]]:
    """Each user's order from the two models' full score matrices, with sorted lists."""
    first, second = runs
    dataset, train_pairs = first.data.dataset, first.data.split.train
    retrieval = np.asarray(first.model.scorer()(user_rows), np.float64)
    ranking = np.asarray(second.model.scorer()(user_rows), np.float64)  # every item's logit
    users, items = dataset.encode(train_pairs)
    orders = []
    for j, row in enumerate(user_rows):
        seen = set(items[users == row].tolist())
        logits = dict(enumerate(ranking[j].tolist()))
        orders.append(expected_order(retrieval[j], logits, seen, m))
    return orders


def test_two_stage_scorer_matches_an_independent_computation(runs, two_stage):
    rows = np.arange(0, 60, 3, dtype=np.int64)
    scores = two_stage.scorer()(rows)
    want = _numpy_reference(runs, rows, M)
    for j in range(len(rows)):
        got = np.argsort(-scores[j], kind="stable")[: len(want[j])].tolist()
        assert got[:M] == want[j][:M]  # the re-ranked candidates
        assert got == want[j]  # and the rest in retrieval order
        assert np.isneginf(scores[j]).sum() == scores.shape[1] - len(want[j])  # seen items


def test_candidate_logits_are_the_ranking_models_catalog_logits(runs):
    ranking = runs[1].model
    rows = np.array([0, 5, 9], np.int64)
    items = np.array([[1, 2, 3], [7, 0, 7], [4, 4, 11]], np.int64)
    full = np.asarray(ranking.scorer()(rows))
    got = ranking.candidate_scorer()(rows, items)
    np.testing.assert_allclose(got, np.take_along_axis(full, items, 1), rtol=1e-5, atol=1e-5)


def test_recall_beyond_the_candidates_is_the_retrieval_models(runs, two_stage):
    first = runs[0]
    task = EvaluationTask.from_split(first.data.dataset, first.data.split)
    alone = evaluate(first.model.scorer(), task)
    both = evaluate(two_stage.scorer(), task)
    # The first M places hold the same items, re-ordered: recall@K, K >= M, is unchanged.
    np.testing.assert_allclose(both.recall_curve[M - 1 :], alone.recall_curve[M - 1 :], atol=1e-12)
    assert both.metrics["recall@50"] == pytest.approx(alone.metrics["recall@50"], abs=1e-12)


# --- evaluate --rerank ------------------------------------------------------------------------


def test_evaluate_cli_prints_retrieval_alone_and_two_stage(
    retrieval_run, ranking_run, runs, two_stage, capsys
):
    args = ["evaluate", "--run-dir", str(retrieval_run), "--rerank", str(ranking_run)]
    assert cli.main([*args, "--candidates", str(M), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "two_stage" and report["candidates"] == M
    first = runs[0]
    task = EvaluationTask.from_split(first.data.dataset, first.data.split)
    want = evaluate(two_stage.scorer(), task).metrics
    assert report["metrics"]["ndcg@10"] == pytest.approx(want["ndcg@10"], abs=1e-9)
    assert report["retrieval_alone"]["metrics"]["recall@10"] == pytest.approx(
        evaluate(first.model.scorer(), task).metrics["recall@10"], abs=1e-9
    )
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "| two_stage |" in text and "| retrieval_ids |" in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--candidates", "0"], "--candidates must be at least 1"),
        (["--candidates", "-3"], "--candidates must be at least 1"),
    ],
)
def test_evaluate_cli_refuses_fewer_than_one_candidate(
    retrieval_run, ranking_run, capsys, extra, needle
):
    args = ["evaluate", "--run-dir", str(retrieval_run), "--rerank", str(ranking_run), *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_candidates_without_rerank_is_a_one_line_error(retrieval_run, capsys):
    assert cli.main(["evaluate", "--run-dir", str(retrieval_run), "--candidates", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--candidates goes with --rerank" in err and len(err.splitlines()) == 1


def test_stages_in_the_wrong_order_are_refused(retrieval_run, ranking_run, capsys):
    args = ["evaluate", "--run-dir", str(ranking_run), "--rerank", str(retrieval_run)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "must be a retrieval run" in err and len(err.splitlines()) == 1


def test_more_candidates_than_items_reranks_the_whole_catalog(runs):
    first, second = runs
    n_items = first.data.dataset.n_items
    model = TwoStageRecommender.from_runs(first, second, candidates=10 * n_items)
    assert model.candidates == n_items
    rows = np.array([1, 2], np.int64)
    scores = model.scorer()(rows)
    want = _numpy_reference(runs, rows, n_items)
    for j in range(len(rows)):
        assert np.argsort(-scores[j], kind="stable")[: len(want[j])].tolist() == want[j]


@pytest.fixture(scope="module")
def other_data_ranking_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("other") / "tech-products"
    write_tech_products(generate(GeneratorConfig(users=120, items=30, seed=3)), directory)
    config = tiny_experiment(
        directory,
        model={"kind": "ranking", "feature_set": "ids", "negatives_per_user": 2},
        train={"epochs": 1},
    )
    run_dir = tmp_path_factory.mktemp("other-run") / "ranking"
    train(config, run_dir, verbose=0)
    return run_dir


def test_runs_on_different_data_are_refused(retrieval_run, other_data_ranking_run, capsys):
    args = ["evaluate", "--run-dir", str(retrieval_run), "--rerank", str(other_data_ranking_run)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "trained on other data than --run-dir" in err and len(err.splitlines()) == 1
    with pytest.raises(ConfigError, match="same data and split"):
        TwoStageRecommender.from_runs(load_run(retrieval_run), load_run(other_data_ranking_run))


# --- The two-stage export ---------------------------------------------------------------------

PROBE = (
    PROBE_PRELUDE
    + r"""path, users_file = sys.argv[1:]
users = json.loads(open(users_file, encoding="utf-8").read())
model = tf.saved_model.load(path)
ids = tf.constant(users, tf.string)
out = {"signatures": sorted(model.signatures.keys())}
out["default"] = plain(model.signatures["serving_default"](user_id=ids))
out["k_large"] = plain(model.signatures["recommend_k"](user_id=ids, k=tf.constant(1000)))
print(json.dumps(out))
"""
)


@pytest.fixture(scope="module")
def exported(retrieval_run, ranking_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("two-stage-export") / "exported_models" / "two_stage"
    return export_run(
        retrieval_run, out, n=N, rerank=ranking_run, candidates=M, notice=lambda text: None
    )


def test_export_answers_as_the_python_two_stage_in_a_clean_process(
    exported, runs, two_stage, tmp_path
):
    dataset = runs[0].data.dataset
    users = [str(u) for u in dataset.table("user").ids[:6]] + ["someone-new"]
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    script = tmp_path / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(exported.path), str(users_file)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tmp_path,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["signatures"] == ["recommend_k", "serving_default"]
    reranked = two_stage.rerank(np.arange(6, dtype=np.int64))
    item_ids = dataset.table("item").ids
    train_pairs = runs[0].data.split.train
    for j, user in enumerate(users[:6]):
        count = int(reranked.candidates[j])
        want = [str(i) for i in item_ids[reranked.order[j, :count]]]
        assert answer["default"]["item_ids"]["value"][j][: min(N, count)] == want[:N]
        np.testing.assert_allclose(
            answer["default"]["scores"]["value"][j][: min(N, count)],
            reranked.logits[j, : min(N, count)],
            rtol=1e-4,
            atol=1e-4,
        )
        # recommend_k returns candidates only: k is clipped to M.
        assert answer["k_large"]["item_ids"]["value"][j][:count] == want
        seen = set(train_pairs.loc[train_pairs["user_id"] == user, "item_id"])
        assert not seen & set(answer["k_large"]["item_ids"]["value"][j])
    assert answer["k_large"]["item_ids"]["shape"] == [len(users), M]
    assert answer["default"]["known_user"]["value"] == [True] * 6 + [False]


def test_export_manifest_and_stock_ops(exported, ranking_run):
    manifest = json.loads((exported.path / "assets.extra" / "export.json").read_text())
    assert manifest["kind"] == "two_stage"
    assert manifest["two_stage"]["candidates"] == M
    assert manifest["two_stage"]["ranking_run_dir"] == str(ranking_run.resolve())
    assert exported.custom_ops == {} and exported.custom_ops_to_load == []


def test_export_refuses_more_items_than_candidates(retrieval_run, ranking_run, tmp_path, capsys):
    args = ["export", "--run-dir", str(retrieval_run), "--rerank", str(ranking_run)]
    out = tmp_path / "models" / "two"
    assert cli.main([*args, "--candidates", "3", "-n", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "-n 5 is more than the 3 candidates" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_export_refuses_runs_on_different_data(
    retrieval_run, other_data_ranking_run, tmp_path, capsys
):
    args = ["export", "--run-dir", str(retrieval_run), "--rerank", str(other_data_ranking_run)]
    assert cli.main([*args, "--out", str(tmp_path / "models" / "two")]) == 2
    err = capsys.readouterr().err.strip()
    assert "same data and split" in err and len(err.splitlines()) == 1


# --- compare ----------------------------------------------------------------------------------


def test_compare_two_stage_row_reuses_the_retrieval_run(small_dir, tmp_path, monkeypatch):
    import tfrs_recsys.training.run as run_module
    from tfrs_recsys.training.compare import compare

    trained = []
    real_train = run_module.train

    def spy(config, run_dir, **kwargs):
        trained.append(config.name)
        return real_train(config, run_dir, **kwargs)

    monkeypatch.setattr(run_module, "train", spy)
    out = tmp_path / "report"
    empty = tmp_path / "no-configs"
    empty.mkdir()
    overrides = ["train.epochs=1", "model.negatives_per_user=3"]
    report = compare(
        str(small_dir), ["retrieval_ids", "two_stage_ids"], out, config_dir=empty,
        overrides=overrides, verbose=0,
    )  # fmt: skip
    # retrieval_ids is trained once (its row: the default is a seed ensemble of three
    # runs), ranking_ids once (for the two-stage row, which reuses retrieval_ids).
    assert trained == [
        "retrieval_ids",
        "retrieval_ids-member1",
        "retrieval_ids-member2",
        "ranking_ids",
    ]
    entry = report["models"]["two_stage_ids"]
    assert entry["retrieval"].startswith("retrieval_ids (defaults from the dataset's statistics")
    assert entry["ranking"].startswith("ranking_ids (defaults from the dataset's statistics")
    first, second = load_run(out / "runs" / "retrieval_ids"), load_run(out / "runs" / "ranking_ids")
    assert entry["candidates"] == min(200, first.data.dataset.n_items)
    model = TwoStageRecommender.from_runs(first, second, candidates=200)
    want = evaluate(model.scorer(), EvaluationTask.from_split(first.data.dataset, first.data.split))
    assert entry["ndcg@10"] == pytest.approx(want.metrics["ndcg@10"], abs=1e-9)
    assert entry["recall@10"] == pytest.approx(want.metrics["recall@10"], abs=1e-9)
