"""Shared fixtures of the data-layer tests.

- ``small_*``: a 500 users x 120 items generated tech-products dataset (seed 42),
  generated, written and loaded once per session (well under a second).
- ``default_*``: the default 10,000 x 1,000 dataset (seed 42), only for the
  generator statistics and the split-equality test (about 5 s to generate and
  write, 1.5 s to load); every fixture is lazy and built at most once.
- ``write_csv``: writes a small hand-made text file under ``tmp_path``.
- ``tiny_tables`` / ``make_tech_dir``: a hand-made valid 3 x 3 tech-products
  directory that tests corrupt one file at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# The first tfrs_recsys import routes tf.keras to tf_keras (tfrs_recsys/_backend.py);
# conftest is imported before any test module, so before anything imports TensorFlow.
from tfrs_recsys.data.generator import GeneratedData, GeneratorConfig, generate
from tfrs_recsys.data.techproducts import (
    ITEMS_FILE,
    MATRIX_FILE,
    USERS_FILE,
    load_tech_products,
    write_tech_products,
)

SMALL_CONFIG = GeneratorConfig(users=500, items=120, seed=42)
DEFAULT_CONFIG = GeneratorConfig(users=10_000, items=1_000, seed=42)


# --- Small generated dataset -----------------------------------------------------


@pytest.fixture(scope="session")
def small_generated() -> GeneratedData:
    return generate(SMALL_CONFIG)


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory, small_generated) -> Path:
    """The small dataset written in the wide layout (the notebooks' CSV trio)."""
    out = tmp_path_factory.mktemp("small") / "tech-products"
    write_tech_products(small_generated, out, layout="wide")
    return out


@pytest.fixture(scope="session")
def small_dataset(small_dir):
    return load_tech_products(small_dir)


@pytest.fixture(scope="session")
def small_matrix(small_generated) -> np.ndarray:
    """The small dataset's 0/1 matrix [users, items] (uint8), rows in user order."""
    return small_generated.matrix()


# --- Default-size generated dataset (use sparingly) -----------------------------


@pytest.fixture(scope="session")
def default_generated() -> GeneratedData:
    return generate(DEFAULT_CONFIG)


@pytest.fixture(scope="session")
def default_matrix(default_generated) -> np.ndarray:
    return default_generated.matrix()


@pytest.fixture(scope="session")
def default_dir(tmp_path_factory, default_generated) -> Path:
    out = tmp_path_factory.mktemp("default") / "tech-products"
    write_tech_products(default_generated, out, layout="wide")
    return out


@pytest.fixture(scope="session")
def default_dataset(default_dir):
    return load_tech_products(default_dir)


# --- Hand-made files --------------------------------------------------------------


@pytest.fixture
def write_csv(tmp_path):
    """``write_csv(name, text, directory=None) -> Path``: writes ``text`` verbatim."""

    def _write(name: str, text: str, directory: Path | None = None) -> Path:
        path = Path(directory or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


# The tiny valid files; the comments give each row's 1-based file line.
TINY_USERS = (
    "user_id,age,profession,personality\n"  # line 1
    "tec_0001,30,engineering,Tech Enthusiast\n"  # line 2
    "bud_0001,25,education,Budget Conscious\n"  # line 3
    "cre_0001,41,arts,Creative Explorer\n"  # line 4
)
TINY_ITEMS = (
    "item_id,product_type,description,price,features\n"  # line 1
    'item_0001,laptop,For gamers.,999.99,"Touchscreen, Fast charging"\n'  # line 2
    'item_0002,mouse,For students.,35.50,"Wireless, Silent clicks"\n'  # line 3
    'item_0003,monitor,For designers.,150.00,"4K display, Adjustable stand"\n'  # line 4
)
# Positives, melted column by column: (tec,1) (bud,2) (bud,3) (cre,3).
TINY_MATRIX = (
    "user_id,item_0001,item_0002,item_0003\n"  # line 1
    "tec_0001,1,0,0\n"  # line 2
    "bud_0001,0,1,1\n"  # line 3
    "cre_0001,0,0,1\n"  # line 4
)


@pytest.fixture
def tiny_tables() -> dict[str, str]:
    """The valid hand-made file texts (see the line numbers in the comments above)."""
    return {"users": TINY_USERS, "items": TINY_ITEMS, "matrix": TINY_MATRIX}


@pytest.fixture
def make_tech_dir(tmp_path, write_csv):
    """``make_tech_dir(users=..., items=..., matrix=...) -> Path``.

    Writes a tech-products directory from the tiny valid texts, with any of the
    three files replaced by the given text; ``omit=("users",)`` leaves files out.
    """
    counter = {"n": 0}

    def _make(
        *,
        users: str = TINY_USERS,
        items: str = TINY_ITEMS,
        matrix: str = TINY_MATRIX,
        omit: tuple[str, ...] = (),
    ) -> Path:
        counter["n"] += 1
        directory = tmp_path / f"tech-{counter['n']}"
        directory.mkdir()
        for key, name, text in (
            ("users", USERS_FILE, users),
            ("items", ITEMS_FILE, items),
            ("matrix", MATRIX_FILE, matrix),
        ):
            if key not in omit:
                write_csv(name, text, directory)
        return directory

    return _make
