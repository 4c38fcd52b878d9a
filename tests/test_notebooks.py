"""Every exploration notebook runs top to bottom in a fresh kernel, on small sizes.

The notebooks read their sizes from ``TFRS_NB_*`` environment variables
(``notebooks/notebook_params.py``); here 300 users x 60 items of generated data,
one epoch per TFRS model, one epoch of the seed notebooks' models, a tiny
random BERT pair in place of all-MiniLM-L6-v2 and a small synthetic ML-100K
directory. The four run at the same time, one kernel each, so their
start-up and single-threaded stretches overlap. Any cell error fails that
notebook's test (nbclient raises ``CellExecutionError`` with the cell's
traceback).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from test_movielens import ML100K_GENRES, write_ml100k
from test_text_encoder import write_checkpoint

from tfrs_recsys.text_encoder import convert_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    "01_subset_attributes",
    "02_all_attributes_bert",
    "03_compare_and_serve",
    "04_movielens",
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_notebooks = _load("run_notebooks", REPO_ROOT / "scripts" / "run_notebooks.py")
notebook_params = _load("notebook_params", REPO_ROOT / "notebooks" / "notebook_params.py")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    checkpoint = write_checkpoint(tmp_path_factory.mktemp("nb-bert") / "checkpoint")
    return convert_checkpoint(
        checkpoint, tmp_path_factory.mktemp("nb-bert-pair") / "tiny", seq_length=16
    ).path


@pytest.fixture(scope="session")
def small_movielens(tmp_path_factory) -> Path:
    """An ML-100K directory (u.data, u.user, u.item) of 150 users x 100 movies."""
    rng = np.random.default_rng(0)
    n_users, n_items = 150, 100
    taste = rng.normal(size=(n_users, 4)) @ rng.normal(size=(4, n_items))
    data = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=25, replace=False):
            rating = int(np.clip(np.round(3 + taste[u, i]), 1, 5))
            data.append(f"{u + 1}\t{i + 1}\t{rating}\t{880000000 + len(data)}")
    occupations = ["technician", "writer", "student", "executive"]
    users = [
        f"{u + 1}|{18 + u % 50}|{'MF'[u % 2]}|{occupations[u % 4]}|{10000 + u:05d}"
        for u in range(n_users)
    ]
    items = []
    for i in range(n_items):
        flags = ["1" if (i + g) % 7 == 0 else "0" for g in range(len(ML100K_GENRES))]
        items.append(
            f"{i + 1}|Movie {i + 1} (19{50 + i % 50})|01-Jan-19{50 + i % 50}||http://x/{i}|"
            + "|".join(flags)
        )
    return write_ml100k(
        tmp_path_factory.mktemp("nb-ml") / "ml-100k", data=data, users=users, items=items
    )


@pytest.fixture(scope="session")
def executed(tmp_path_factory, tiny_text_model, small_movielens) -> dict:
    """Every notebook executed once, all at the same time, on small sizes."""
    base = tmp_path_factory.getbasetemp()
    env = {
        "TFRS_NB_USERS": "300",
        "TFRS_NB_ITEMS": "60",
        "TFRS_NB_EPOCHS": "1",
        "TFRS_NB_SEED_EPOCHS": "1",
        "TFRS_NB_ROWS": "5000",
        "TFRS_NB_SET": "train.refit=false",
        "TFRS_NB_DATA_DIR": str(base / "nb-data"),
        "TFRS_NB_WORK_DIR": str(tmp_path_factory.mktemp("nb-work")),
        "TFRS_NB_TEXT_MODEL": str(tiny_text_model),
        "TFRS_NB_MOVIELENS": str(small_movielens),
        "TFRS_RECSYS_CACHE": str(base / "nb-cache"),
    }
    saved = {key: os.environ.get(key) for key in [*env, "PYTHONPATH"]}
    os.environ.update(env)
    try:
        # Generated once before the kernels start, so that they do not race to write it.
        notebook_params.from_env().ensure_tech_products()
        out = tmp_path_factory.mktemp("nb-out")
        jobs = {
            REPO_ROOT / "notebooks" / f"{name}.ipynb": out / f"{name}.ipynb" for name in NOTEBOOKS
        }
        outcomes = run_notebooks.execute_concurrently(jobs, timeout=600)
        return {source.stem: (outcomes[source], out_path) for source, out_path in jobs.items()}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, executed: dict) -> None:
    outcome, out = executed[name]
    if isinstance(outcome, BaseException):
        raise outcome
    # Every notebook draws its figures inline (nothing switched the backend away).
    cells = nbformat.read(out, as_version=4).cells
    images = [
        o
        for c in cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, f"{name}: no figure in the executed notebook"
    # No path of this machine's checkout or cache is left in the outputs.
    text = "".join(repr(o) for c in cells if c.cell_type == "code" for o in c.outputs)
    assert str(REPO_ROOT) not in text
    assert os.environ.get("TFRS_RECSYS_CACHE", "<unset>") not in text


def test_machine_paths_in_outputs_become_placeholders() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="source /m/repo/data/x\n"),
                nbformat.v4.new_output(
                    "execute_result",
                    data={"text/plain": "Spec('/m/repo/.cache/enc')", "image/png": "/m/repo"},
                    execution_count=1,
                ),
            ]
        ),
        nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("stream", text="kept\n")]),
    ]
    changed = run_notebooks.portable_outputs(
        nb, {"/m/repo": "<checkout>", "/m/repo/.cache": "<cache>"}
    )
    assert changed == 2
    stream, result = nb.cells[0].outputs
    assert stream["text"] == "source <checkout>/data/x\n"
    assert result["data"]["text/plain"] == "Spec('<cache>/enc')"  # the longer path first
    assert result["data"]["image/png"] == "/m/repo"  # only text outputs are rewritten
    assert nb.cells[1].outputs[0]["text"] == "kept\n"


def test_committed_notebooks_show_no_machine_paths() -> None:
    absolute = re.compile(r"(?<![\w<>.])/(?:work|home|root|tmp|Users|private)/")
    for path in sorted((REPO_ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                assert not absolute.search(repr(output)), (path.name, repr(output)[:300])


def test_every_notebook_is_tested() -> None:
    found = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert found == sorted(NOTEBOOKS)
