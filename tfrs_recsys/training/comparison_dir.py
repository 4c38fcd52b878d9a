"""The output directory of ``compare``: what it records so a comparison survives a crash.

Layout of ``OUT``:

- ``settings.json``: what the figures depend on (the data and its split, the
  config directory, the ``--set`` overrides); written before the first model
  trains. ``--resume`` refuses an ``OUT`` whose settings differ.
- ``models/<model>.json``: one finished model's report entry (and, for a TFRS
  model, the exact config it was trained with), written as soon as the model
  is evaluated. A model with such a file is not trained again by ``--resume``.
- ``runs/<model>/``: the run directory of a TFRS model
  (:func:`tfrs_recsys.training.run.train`).
- ``comparison.json``, ``comparison.md``, ``recall_at_k.png``: the report of
  the models finished so far, rewritten after each one; while models are still
  to run, ``comparison.json`` lists them under ``"pending"`` and
  ``comparison.md`` says so.

Every file is written atomically (:mod:`tfrs_recsys.atomic`), so a kill leaves
each one either absent or complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tfrs_recsys.atomic import write_json_atomic, write_text_atomic
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.splits import Split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.reporting import comparison_markdown, save_recall_curves

SETTINGS_FILE = "settings.json"
MODELS_DIR = "models"
RUNS_DIR = "runs"
REPORT_JSON = "comparison.json"
REPORT_MARKDOWN = "comparison.md"
RECALL_PLOT = "recall_at_k.png"

# Settings named in a refusal, in the words of the command line.
SETTING_FLAGS = {
    "data": "--data",
    "dataset": "dataset",
    "split": "split",
    "split_digest": "the data's train/holdout pairs",
    "config_dir": "--config-dir",
    "overrides": "--set",
}


def comparison_settings(
    source: str,
    dataset: RecDataset,
    split: Split,
    config_dir: Path | None,
    overrides: Sequence[str],
) -> dict[str, Any]:
    """What a comparison's figures depend on, as recorded in ``settings.json``.

    The data is identified by its path (or dataset name) and by a digest of the
    split's (user, item) pairs, so edited data is noticed too.
    """
    path = Path(source)
    return {
        "data": str(path.resolve()) if path.exists() else str(source),
        "dataset": dataset.schema.name,
        "split": split.name,
        "split_digest": _split_digest(split),
        "config_dir": None if config_dir is None else str(Path(config_dir).resolve()),
        "overrides": list(overrides),
    }


def _split_digest(split: Split) -> str:
    digest = hashlib.sha256()
    for frame in (split.train, split.holdout):
        hashes = pd.util.hash_pandas_object(frame[[USER_ID, ITEM_ID]], index=False)
        digest.update(hashes.to_numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


class ComparisonDir:
    """Reads and writes one ``compare`` output directory (see the module docstring).

    Args:
        out: The directory (it may not exist yet).
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.models_dir = self.out / MODELS_DIR
        self.runs_dir = self.out / RUNS_DIR

    # --- State --------------------------------------------------------------------------------

    def holds_comparison(self) -> bool:
        """Whether ``out`` holds (part of) a comparison already."""
        if (self.out / SETTINGS_FILE).exists() or (self.out / REPORT_JSON).exists():
            return True
        return any(_non_empty(d) for d in (self.models_dir, self.runs_dir))

    def check_new(self) -> None:
        """Fails unless ``out`` can take a new comparison (no ``--resume``)."""
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out}: --out exists and is not a directory")
        if self.holds_comparison():
            raise ConfigError(
                f"{self.out}: already holds a comparison (pass --resume to continue it, "
                "or choose a new --out)"
            )

    def recorded_settings(self) -> dict[str, Any] | None:
        """The settings of the comparison in ``out``, or None if none was recorded."""
        path = self.out / SETTINGS_FILE
        if not path.exists():
            return None
        return _read_json(path)

    def check_resume(self, settings: Mapping[str, Any]) -> None:
        """Fails if ``out`` holds a comparison with other settings than ``settings``.

        The message names every setting that differs, with both values.
        """
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out}: --out exists and is not a directory")
        recorded = self.recorded_settings()
        if recorded is None:
            if self.holds_comparison():
                raise ConfigError(
                    f"{self.out}: holds model results but no {SETTINGS_FILE}, so it cannot be "
                    "resumed safely; choose a new --out"
                )
            return
        differences = [
            f"{SETTING_FLAGS.get(key, key)} was {recorded.get(key)!r}, now {settings.get(key)!r}"
            for key in sorted(set(recorded) | set(settings), key=_setting_order)
            if recorded.get(key) != settings.get(key)
        ]
        if differences:
            raise ConfigError(
                f"{self.out}: cannot --resume a comparison made with other settings "
                f"({'; '.join(differences)}); resume with the same settings or choose a new --out"
            )

    def write_settings(self, settings: Mapping[str, Any]) -> None:
        """Records ``settings`` (creating ``out``) unless they are recorded already."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        if not (self.out / SETTINGS_FILE).exists():
            write_json_atomic(self.out / SETTINGS_FILE, dict(settings))

    # --- Per-model results --------------------------------------------------------------------

    def model_path(self, name: str) -> Path:
        return self.models_dir / f"{name}.json"

    def finished(self, name: str) -> dict[str, Any] | None:
        """The recorded result of model ``name`` (``{"model", "config_toml", "entry"}``)."""
        path = self.model_path(name)
        if not path.exists():
            return None
        record = _read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("entry"), dict):
            raise ConfigError(
                f"{path}: not a model result written by compare; remove it to train {name} again"
            )
        return record

    def write_model(self, name: str, entry: Mapping[str, Any], config_toml: str | None) -> Path:
        """Records model ``name``'s report entry (and the config it was trained with)."""
        record = {"model": name, "config_toml": config_toml, "entry": dict(entry)}
        return write_json_atomic(self.model_path(name), record)

    # --- The report ---------------------------------------------------------------------------

    def write_report(self, report: Mapping[str, Any]) -> None:
        """Writes ``comparison.json``, ``comparison.md`` and ``recall_at_k.png`` of ``report``."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / REPORT_JSON, dict(report))
        write_text_atomic(self.out / REPORT_MARKDOWN, comparison_markdown(report) + "\n")
        save_recall_curves(
            report["models"],
            self.out / RECALL_PLOT,
            title=f"{report['dataset']}, {report['split']}",
        )


def _setting_order(key: str) -> int:
    order = list(SETTING_FLAGS)
    return order.index(key) if key in order else len(order)


def _non_empty(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); choose a new --out") from None
