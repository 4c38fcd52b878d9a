"""Sizes and paths of the notebooks in this directory, read from environment variables.

Each notebook imports it (``from notebook_params import from_env``); the
kernel's working directory is this one.

The notebooks in ``notebooks/`` run at full size by default (the default
10,000 x 1,000 tech-products data, each config's own epoch budget); the test
suite runs them on a few hundred users by setting these variables:

| variable | default | meaning |
|---|---|---|
| ``TFRS_NB_USERS`` | 10000 | users of the generated tech-products data |
| ``TFRS_NB_ITEMS`` | 1000 | items of the generated tech-products data |
| ``TFRS_NB_DATA_DIR`` | ``data/tech-products`` (default size) or ``data/tech-products-<U>x<I>`` | where the data is generated (once) and read |
| ``TFRS_NB_EPOCHS`` | the config's ``train.epochs`` | epoch budget of the TFRS models (early stopping still applies) |
| ``TFRS_NB_SEED_EPOCHS`` | the notebooks' own (5 for the first, 10 for the second) | epochs of the seed notebooks' models |
| ``TFRS_NB_ROWS`` | 200000 | training rows of the second notebook's model (its own cut) |
| ``TFRS_NB_TEXT_MODEL`` | ``minilm`` | TF Hub BERT pair for text features (a ``build-text-encoder`` directory works) |
| ``TFRS_NB_WORK_DIR`` | ``runs/notebooks`` | runs, reports and exports (a fresh subdirectory per execution) |
| ``TFRS_NB_MOVIELENS`` | ``movielens-100k`` | the real dataset of notebook 04 (a name or a directory) |
| ``TFRS_NB_SET`` | (none) | extra ``--set`` overrides of every TFRS config, separated by ``;`` (e.g. ``train.refit=false``) |

Relative paths are relative to the repository root (the directory above
``notebooks/``), so a notebook finds the same files whatever its working directory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from tfrs_recsys.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_USERS = 10_000
DEFAULT_ITEMS = 1_000


def _int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"${name}: expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"${name}: expected a positive number, got {value}")
    return value


def _path(name: str, default: Path) -> Path:
    text = os.environ.get(name, "").strip()
    path = Path(text) if text else default
    return path if path.is_absolute() else REPO_ROOT / path


@dataclasses.dataclass(frozen=True)
class NotebookParams:
    """What one notebook execution runs on (see the module docstring)."""

    users: int
    items: int
    data_dir: Path
    epochs: int | None
    seed_epochs: int | None
    rows: int
    text_model: str
    work_dir: Path
    movielens: str
    extra_overrides: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> NotebookParams:
        users = _int("TFRS_NB_USERS", DEFAULT_USERS)
        items = _int("TFRS_NB_ITEMS", DEFAULT_ITEMS)
        default_data = Path("data") / (
            "tech-products"
            if (users, items) == (DEFAULT_USERS, DEFAULT_ITEMS)
            else f"tech-products-{users}x{items}"
        )
        text_model = os.environ.get("TFRS_NB_TEXT_MODEL", "").strip() or "minilm"
        movielens = os.environ.get("TFRS_NB_MOVIELENS", "").strip() or "movielens-100k"
        return cls(
            users=users,
            items=items,
            data_dir=_path("TFRS_NB_DATA_DIR", default_data),
            epochs=_int("TFRS_NB_EPOCHS", None),
            seed_epochs=_int("TFRS_NB_SEED_EPOCHS", None),
            rows=_int("TFRS_NB_ROWS", 200_000),
            text_model=text_model,
            work_dir=_path("TFRS_NB_WORK_DIR", Path("runs") / "notebooks"),
            movielens=movielens,
            extra_overrides=tuple(
                part.strip()
                for part in os.environ.get("TFRS_NB_SET", "").split(";")
                if part.strip()
            ),
        )

    @property
    def full_size(self) -> bool:
        """True for the default data and every model's own epoch budget."""
        return (
            (self.users, self.items) == (DEFAULT_USERS, DEFAULT_ITEMS)
            and self.epochs is None
            and self.seed_epochs is None
            and not self.extra_overrides
        )

    def overrides(self, *extra: str) -> list[str]:
        """``--set``-style config overrides for the TFRS models (epochs, text model)."""
        out = [f'model.text_model="{self.text_model}"']
        if self.epochs is not None:
            out.append(f"train.epochs={self.epochs}")
        return [*out, *self.extra_overrides, *extra]

    def fresh_dir(self, name: str) -> Path:
        """A new, empty directory ``WORK_DIR/<name>-<time>`` for this execution."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.work_dir / f"{name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = self.work_dir / f"{name}-{stamp}-{suffix}"
        path.mkdir(parents=True)
        return path

    def ensure_tech_products(self) -> Path:
        """Generates the tech-products data into ``data_dir`` unless it is there."""
        import tfrs_recsys as tr
        from tfrs_recsys.data.techproducts import MANIFEST_FILE

        if not (self.data_dir / MANIFEST_FILE).is_file():
            tr.generate_dataset(self.data_dir, users=self.users, items=self.items)
        return self.data_dir


def from_env() -> NotebookParams:
    """The :class:`NotebookParams` of the ``TFRS_NB_*`` environment variables."""
    return NotebookParams.from_env()
