"""The public API of ``import tfrs_recsys as tr``: names resolve lazily, TensorFlow stays unloaded."""

from __future__ import annotations

import subprocess
import sys

import tfrs_recsys as tr


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    return result.stdout


def test_importing_the_package_loads_neither_tensorflow_nor_pandas():
    out = _run(
        "import sys, tfrs_recsys; print('tensorflow' in sys.modules, 'pandas' in sys.modules)"
    )
    assert out.split() == ["False", "False"]


def test_every_public_name_resolves_to_an_object_of_its_own_name():
    for name in tr.__all__:
        value = getattr(tr, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert getattr(value, "__name__", name) == name, name


def test_all_lists_exactly_the_lazy_names():
    assert sorted(tr.__all__) == sorted(["__version__", *tr._EXPORTS])


def test_unknown_names_raise_attribute_error():
    try:
        tr.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("tr.no_such_name did not raise AttributeError")


def test_help_lists_the_public_api():
    out = _run("import tfrs_recsys as tr; help(tr)")
    for name in (
        "load_dataset",
        "split_dataset",
        "load_config",
        "train",
        "load_run",
        "evaluate",
        "export",
        "load_exported",
        "compare",
        "Recommender",
    ):
        assert name in out, name


def test_models_and_baselines_are_recommenders(small_dataset):
    from tfrs_recsys.baselines.popularity import PopularityScorer
    from tfrs_recsys.data.splits import split_dataset

    split = split_dataset(small_dataset)
    popularity = PopularityScorer.fit(small_dataset, split.train)
    assert isinstance(popularity, tr.Recommender)
    result = tr.evaluate(popularity, small_dataset, split)
    assert 0.0 < result.metrics["recall@10"] <= 1.0
