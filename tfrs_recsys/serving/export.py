"""SavedModel exports for TF Serving: raw user ids in, top-N item ids out.

(Over 450 lines: one export from the run to the published version, whose steps,
staging, verification, manifest and publishing, share the staged state; split
apart they would pass it all between modules.)

:func:`export` (``tfrs-recsys export``) turns a trained run into
``<out>/<version>/`` (the layout TF Serving watches) and rewrites
``<out>/../models.config``. The SavedModel stands on TensorFlow ops alone: no
Python, no tensorflow_recommenders and no tfrs_recsys are needed to serve it.
By default it holds stock TensorFlow ops only (any TF Serving loads it), also
for runs with ``model.text_encoder = "bert"``: their text columns are looked up
in precomputed tables, and a string outside them (a new user's profession, a
new item's description) gets the zero vector.

The steps, one module each:

1. the model's :class:`~tfrs_recsys.models.serving_parts.ServingParts`
   (``model.serving_parts(dataset)``) and the train pairs give the
   :class:`~tfrs_recsys.serving.tables.ServingTables`;
2. :func:`~tfrs_recsys.serving.module.build_module` builds the
   :class:`~tfrs_recsys.serving.module.RecommenderModule` and its signatures
   (``serving_default``, ``recommend_k``, ``recommend_from_features``,
   ``score_items``, ``score``; see that module) over a
   :mod:`~tfrs_recsys.serving.index` top-k index;
3. it is saved into a hidden staging directory, its ops inspected
   (:mod:`~tfrs_recsys.serving.ops`), reloaded and checked against the model
   (:mod:`~tfrs_recsys.serving.verify`), then renamed to the next integer
   version under a lock.

A streamed run (``data.stream = true``) exports the same way: its vectors
from the towers in batches, the mask and the popularity from one pass over the
cached split's train parts (:func:`~tfrs_recsys.serving.tables.tables_from_parts`),
never a frame of all interactions; ``export.json`` gets a ``stream`` entry.
With ``--index scann`` the ScaNN settings are tuned on the model's vectors
(:mod:`~tfrs_recsys.serving.scann_tuning`; ``scann`` in ``export.json``), and
``seconds`` records the time of each step.

``--rerank RANKING_RUN --candidates M`` (``rerank=``): a two-stage export, the
retrieval run's top ``M`` unseen items re-ordered by the ranking run's head in
one SavedModel (:mod:`~tfrs_recsys.serving.two_stage`), checked against the
in-process :class:`~tfrs_recsys.models.two_stage.TwoStageRecommender`.

``--cold-start-text`` (``cold_start_text=True``, runs with precomputed BERT
text features only): ``recommend_from_features`` and ``score_items`` are
traced with each text lookup falling back to the run's TF Hub encoder
(:class:`~tfrs_recsys.text_encoder.HubTextEncoder`, the same handles, pooling,
sequence length and normalisation the tables were computed with) for the
strings outside its table; known strings still come from the table, so they
get the same vectors as without the flag. The encoder's variables, tables and
assets are saved with the export. These two signatures then hold TF Text ops,
and as all signatures share one function library the whole SavedModel needs TF
Text to load, whichever signature is used: TF Serving >= 2.20 (which bundles
TF Text 2.20), or ``import tensorflow_text`` before ``tf.saved_model.load``.
``serving_default`` and ``recommend_k`` still contain no such op.

``assets.extra/`` also holds the item table (``items.json``, for
``tfrs-recsys recommend`` and :func:`~tfrs_recsys.serving.exported.load_exported`),
a few users per segment (``representative_users.json``), the export manifest
(``export.json``: among others ``custom_ops``, the ops outside stock
TensorFlow per signature, ``custom_ops_to_load``, those of the whole
SavedModel, ``cold_start_text``, ``needs_tf_text_to_load`` and, for BERT text
runs, ``text_encoder``) and, if ``tensorflow-serving-api`` is installed,
``tf_serving_warmup_requests``.

Longer than 500 lines: the export's one pipeline (checks, build, save, verify,
publish) and its manifest, for one model or two stages, read in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.atomic import file_lock, replace_directory
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.serving_parts import ServingParts
from tfrs_recsys.models.two_stage import DEFAULT_CANDIDATES, TwoStageRecommender
from tfrs_recsys.serving import tf_serving
from tfrs_recsys.serving.exported import ITEMS_FILE, MANIFEST_FILE, REPRESENTATIVE_FILE
from tfrs_recsys.serving.index import INDEXES, import_scann
from tfrs_recsys.serving.module import build_module, track_model_resources
from tfrs_recsys.serving.ops import non_core_ops, saved_model_non_core_ops, signature_summary
from tfrs_recsys.serving.scann_tuning import (
    DEFAULT_TARGET_RECALL,
    check_target_recall,
    tune_scann,
)
from tfrs_recsys.serving.tables import tables_from_pairs, tables_from_parts
from tfrs_recsys.serving.text import (
    check_cold_start_config,
    cold_start_encoders,
    install_finetuned_lookups,
    text_encoder_manifest,
    text_encoder_spec,
    track_text_encoder,
)
from tfrs_recsys.serving.tf_serving import DEFAULT_SERVING_ROOT, WARMUP_FILE
from tfrs_recsys.serving.two_stage import (
    build_two_stage_module,
    check_two_stage_options,
    two_stage_manifest,
    verify_two_stage,
)
from tfrs_recsys.serving.verify import (
    ExportError,
    verify_cold_start,
    verify_export,
    verify_scann_recall,
    verify_text_encoder,
)

logger = logging.getLogger(__name__)

__all__ = ["ExportError", "ExportResult", "export", "export_run"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        model_name: The model directory's name (TF Serving's model name).
        version: The new integer version.
        path: ``<out>/<version>``, the SavedModel.
        models_config: The rewritten ``models.config``.
        signatures: ``{name: {"inputs": ..., "outputs": ...}}`` dtypes and shapes.
        warmup_requests: Warm-up requests written (0 without tensorflow-serving-api).
        custom_ops: Ops outside stock TensorFlow, per signature that has any.
        seconds: Wall time of the export.
        cold_start_text: Whether the TF Hub text encoder is in graph.
        custom_ops_to_load: Ops outside stock TensorFlow anywhere in the
            SavedModel (loading it needs them).
        scann: With ``index = "scann"``: the tuning's manifest entry (the
            chosen settings, the measured recall, the sample, the grid).
        streamed: Whether the run was a streamed one (``data.stream = true``).
    """

    model_name: str
    version: int
    path: Path
    models_config: Path
    signatures: dict[str, Any]
    warmup_requests: int
    custom_ops: dict[str, list[str]]
    seconds: float
    cold_start_text: bool = False
    custom_ops_to_load: list[str] = dataclasses.field(default_factory=list)
    scann: dict[str, Any] | None = None
    streamed: bool = False


def _log_notice(text: str) -> None:
    logger.warning(text)


def check_out_dir(out: Path) -> None:
    """ConfigError if ``out`` (or a parent) is a file, or ``out`` names no directory."""
    out = Path(out)
    for path in [out, *out.parents]:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} exists and is not a directory")
    if not out.name or out.name in (".", ".."):
        raise ConfigError(f"--out {out}: name the model directory, e.g. exported_models/tech_ids")


def export(
    run_or_run_dir: Any,
    out: str | os.PathLike,
    *,
    n: int = 10,
    exclude: bool = True,
    index: str = "brute_force",
    serving_root: str = DEFAULT_SERVING_ROOT,
    warmup: bool = True,
    cold_start_text: bool = False,
    notice: Callable[[str], None] | None = None,
    rerank: str | os.PathLike | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    scann_recall: float | None = None,
) -> ExportResult:
    """Exports a trained run as the next TF Serving version under ``out``.

    Example:
        >>> run = tr.train(tr.load_config("tech_subset"), "runs/tech_subset")
        >>> result = tr.export(run, "exported_models/tech_subset", n=10)
        >>> tr.load_exported(result.path.parent).recommend(["tec_0001"], k=5)

    Args:
        run_or_run_dir: A trained run (anything with a ``run_dir``, such as
            the ``TrainedRun`` of ``train``/``load_run``) or its directory.
        out: The model directory (``exported_models/<model_name>``).
        n, exclude, index, serving_root, warmup, cold_start_text, rerank,
            candidates, scann_recall: As :func:`export_run`.
        notice: Receives notices (warm-up skipped, TF Text needed); default
            the ``logging`` warning of this module.

    Returns:
        The :class:`ExportResult`.
    """
    run_dir = getattr(run_or_run_dir, "run_dir", run_or_run_dir)
    return export_run(
        Path(run_dir),
        Path(out),
        n=n,
        exclude=exclude,
        index=index,
        serving_root=serving_root,
        warmup=warmup,
        cold_start_text=cold_start_text,
        notice=notice,
        rerank=None if rerank is None else Path(getattr(rerank, "run_dir", rerank)),
        candidates=candidates,
        scann_recall=scann_recall,
    )


def export_run(
    run_dir: Path,
    out: Path,
    *,
    n: int = 10,
    exclude: bool = True,
    index: str = "brute_force",
    serving_root: str = DEFAULT_SERVING_ROOT,
    warmup: bool = True,
    cold_start_text: bool = False,
    notice: Callable[[str], None] | None = None,
    rerank: Path | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    scann_recall: float | None = None,
) -> ExportResult:
    """Exports the best weights of ``run_dir`` as the next version under ``out``.

    Args:
        run_dir: A finished training run.
        out: The model directory (``exported_models/<model_name>``); versions
            go below it, ``models.config`` beside it.
        n: Items per user of ``serving_default``.
        exclude: Mask each known user's train positives.
        index: ``brute_force`` (exact, stock TF Serving) or ``scann``
            (approximate; needs a TF Serving build with the ScaNN ops; its
            settings are tuned on the model's vectors,
            :mod:`~tfrs_recsys.serving.scann_tuning`).
        serving_root: Where the server sees ``out``'s parent (``base_path`` of
            ``models.config`` is ``<serving_root>/<model_name>``).
        warmup: Write warm-up requests (needs ``tensorflow-serving-api``).
        cold_start_text: Put the run's TF Hub text encoder in graph behind its
            precomputed text tables, for ``recommend_from_features`` and
            ``score_items`` (runs with ``model.text_encoder = "bert"`` only).
            The SavedModel then needs TF Text to load (any signature).
        notice: Receives notices (e.g. warm-up skipped, TF Text needed);
            default the ``logging`` warning of this module.
        rerank: A ranking run trained on the same data and split: the export
            is then two-stage (:mod:`~tfrs_recsys.serving.two_stage`): the
            retrieval run's top ``candidates`` unseen items, re-ordered by the
            ranking model, in one SavedModel.
        candidates: ``M`` of a two-stage export (``n`` must not exceed it).
        scann_recall: With ``index = "scann"``: the recall@10 against the
            exact top 10 the tuned settings must reach on a sample of the
            known users (default 0.95), in ``(0, 1]``.

    Raises:
        ConfigError: Bad arguments, not a finished run, ScaNN missing, no
            ScaNN setting reaching ``scann_recall``, a two-stage export of a
            streamed run,
            ``cold_start_text`` for a run without BERT text features; with
            ``rerank``: runs of different data or kinds, ``candidates < 1``.
        ExportError: The reloaded SavedModel does not answer as the model does.

    A run with ``model.text_trainable`` exports like a frozen BERT run: each
    fine-tuned text encoder becomes a table of its fine-tuned vectors of the
    feature table's strings (stock TF ops); with ``cold_start_text``, unknown
    strings go through the fine-tuned encoder, saved with the export.
    """
    with contextlib.ExitStack() as stack:
        return _export_run(
            Path(run_dir),
            Path(out),
            n=n,
            exclude=exclude,
            index=index,
            serving_root=serving_root,
            warmup=warmup,
            cold_start_text=cold_start_text,
            notice=notice or _log_notice,
            stack=stack,
            rerank=None if rerank is None else Path(rerank),
            candidates=candidates,
            scann_recall=scann_recall,
        )


def _export_run(
    run_dir: Path,
    out: Path,
    *,
    n: int,
    exclude: bool,
    index: str,
    serving_root: str,
    warmup: bool,
    cold_start_text: bool,
    notice: Callable[[str], None],
    stack: contextlib.ExitStack,
    rerank: Path | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    scann_recall: float | None = None,
) -> ExportResult:
    from tfrs_recsys.training.run import load_run
    from tfrs_recsys.training.streamed import StreamedData, check_streamed_export

    start = time.perf_counter()
    stages: dict[str, float] = {}
    mark = [start]

    def stage(name: str) -> None:
        now = time.perf_counter()
        stages[name] = round(now - mark[0], 2)
        mark[0] = now

    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    if index not in INDEXES:
        raise ConfigError(f"--index must be one of {', '.join(INDEXES)}, got {index!r}")
    if scann_recall is not None:
        scann_recall = check_target_recall(scann_recall)
        if index != "scann":
            raise ConfigError(f"--scann-recall applies to --index scann, not --index {index}")
    check_out_dir(out)
    if not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: no such directory")
    if rerank is not None:
        check_two_stage_options(
            n=n, candidates=candidates, index=index, cold_start_text=cold_start_text
        )
        if not rerank.is_dir():
            raise ConfigError(f"--rerank {rerank}: no such directory")
    if index == "scann":
        import_scann()
    if cold_start_text:
        check_cold_start_config(run_dir)
    check_streamed_export(run_dir, rerank=rerank)
    logger.info("export: loading the run %s", run_dir)
    run = load_run(run_dir)
    config, data, model = run.config, run.data, run.model
    streamed = isinstance(data, StreamedData)
    second = ranking_run = None
    if rerank is not None:
        logger.info("export: loading the ranking run %s", rerank)
        ranking_run = load_run(rerank)
        second = TwoStageRecommender.from_runs(run, ranking_run, candidates=candidates)
        check_two_stage_options(
            n=n, candidates=candidates, index=index, cold_start_text=False,
            n_items=data.dataset.n_items,
        )  # fmt: skip
    tuning = popularity = None
    train_rows = None
    finetuned = install_finetuned_lookups(model, data.dataset, stack)
    if second is not None:
        finetuned += install_finetuned_lookups(second.ranking, data.dataset, stack)
    stage("load_run")
    logger.info(
        "export: vectors of %d users and %d items", data.dataset.n_users, data.dataset.n_items
    )
    parts: ServingParts = model.serving_parts(data.dataset)
    stage("vectors")
    spec = text_encoder_spec(config, parts.text_lookups)
    encoders = []
    if cold_start_text:
        encoders = cold_start_encoders(parts, spec, finetuned, run_dir)
        verify_text_encoder(parts, encoders[0])
    if second is not None:
        module, signatures = build_two_stage_module(
            data.dataset,
            parts,
            second.ranking.serving_parts(data.dataset),
            second.ranking.head,
            exclude_pairs=data.split.train if exclude else None,
            popularity_pairs=data.split.train,
            n=n,
            candidates=candidates,
            exclude=exclude,
        )
        track_model_resources(module, [model, second.ranking], signatures)
    else:
        if streamed:
            logger.info("export: the mask and popularity from the train parts (one pass)")
            tables, train_rows = tables_from_parts(
                data.dataset, parts, data.parts.train_files, exclude=exclude
            )
            popularity = tables.popularity
        else:
            tables = tables_from_pairs(
                data.dataset, parts, data.split.train if exclude else None, data.split.train
            )
        stage("mask_and_popularity")
        if index == "scann":
            logger.info("export: tuning ScaNN on the model's vectors")
            tuning = tune_scann(
                tables,
                exclude=exclude,
                target=DEFAULT_TARGET_RECALL if scann_recall is None else scann_recall,
                progress=logger.info,
            )
            logger.info(tuning.line())
            stage("scann_tuning")
        module, signatures = build_module(
            tables,
            parts,
            n=n,
            exclude=exclude,
            index=index,
            cold_start_text=encoders[0] if encoders else None,
            scann_options=tuning.settings if tuning is not None else None,
            scann_searcher=tuning.searcher if tuning is not None else None,
        )
        track_model_resources(module, model, signatures)
    # The fine-tuned lookups are not model layers: their tables are tracked here.
    module.finetuned_text_tables = [lookup.table for lookup in finetuned]
    if encoders:
        track_text_encoder(module, encoders)

    custom = {name: non_core_ops(fn) for name, fn in signatures.items()}
    if (
        custom["serving_default"] and index == "brute_force"
    ):  # pragma: no cover - a bug if it happens
        raise ExportError(
            f"serving_default uses ops outside stock TensorFlow: {custom['serving_default']}"
        )
    manifest = _manifest(
        out.name, run_dir, config, data, parts, signatures, custom,
        n=n, exclude=exclude, index=index, cold_start_text=cold_start_text, spec=spec,
    )  # fmt: skip
    if ranking_run is not None:
        manifest.update(two_stage_manifest(ranking_run, candidates, data.dataset.n_items))
    if streamed:
        manifest["stream"] = {
            "split": data.parts.name,
            "split_directory": str(data.parts.directory),
            "train_rows": train_rows,
            "masked_pairs": int(len(tables.exclude_items)) if exclude else 0,
            "most_masked_for_one_user": tables.max_excluded if exclude else 0,
        }
    if tuning is not None:
        manifest["scann"] = tuning.manifest()
    check_user = _check_user(data)

    out.mkdir(parents=True, exist_ok=True)
    tf_serving.remove_stale_staging(out)
    staging = out / tf_serving.staging_name()
    try:
        stage("build_module")
        logger.info("export: saving into %s", staging)
        tf.saved_model.save(module, str(staging), signatures=signatures)
        stage("save")
        manifest["custom_ops_to_load"] = saved_model_non_core_ops(staging)
        if manifest["custom_ops_to_load"] and not cold_start_text and index == "brute_force":
            # A bug if it happens: the default export is stock TensorFlow.
            raise ExportError(
                f"the SavedModel uses ops outside stock TensorFlow: {manifest['custom_ops_to_load']}"
            )
        if cold_start_text:
            notice(
                "notice: --cold-start-text puts TF Text ops in the SavedModel (in "
                f"{', '.join(name for name, ops in custom.items() if ops) or 'no signature'}); "
                "loading it, whichever signature is used, needs TF Text: TF Serving >= 2.20, or "
                "`import tensorflow_text` before tf.saved_model.load"
            )
        extra = staging / tf_serving.ASSETS_EXTRA
        extra.mkdir()
        _write_assets(extra, data.dataset, manifest)
        warmup_count = 0
        if warmup:
            if tf_serving.serving_api_available():
                warmup_count = tf_serving.write_warmup_requests(
                    extra / WARMUP_FILE, manifest["model_name"], _warmup_inputs(check_user, n)
                )
            else:
                notice(
                    "warm-up requests skipped: tensorflow-serving-api is not installed "
                    "(pip install 'tfrs-recsys[serving]')"
                )
        stage("assets")
        logger.info("export: reloading and checking against the model")
        loaded = tf.saved_model.load(str(staging))
        if second is not None:
            verify_two_stage(loaded, second, data, check_user, n=n)
        else:
            verify_export(
                staging,
                model,
                data,
                check_user,
                n=n,
                exclude=exclude,
                exact=index == "brute_force",
                loaded=loaded,
                popularity=popularity,
            )
            if tuning is not None:
                manifest["scann"]["saved_model_recall_at_k"] = verify_scann_recall(
                    loaded, tables, tuning
                )
        if encoders:
            verify_cold_start(loaded, signatures, parts, data, check_user)
        del loaded
        stage("reload_and_verify")
        manifest["seconds"] = stages
        (extra / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        version = _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    config_path = tf_serving.write_models_config(out.parent, serving_root)
    return ExportResult(
        model_name=manifest["model_name"],
        version=version,
        path=out / str(version),
        models_config=config_path,
        signatures=manifest["signatures"],
        warmup_requests=warmup_count,
        custom_ops=manifest["custom_ops"],
        seconds=time.perf_counter() - start,
        cold_start_text=bool(cold_start_text),
        custom_ops_to_load=manifest["custom_ops_to_load"],
        scann=manifest.get("scann"),
        streamed=streamed,
    )


def _manifest(
    model_name,
    run_dir,
    config,
    data,
    parts,
    signatures,
    custom,
    *,
    n,
    exclude,
    index,
    cold_start_text,
    spec,
) -> dict[str, Any]:
    dataset = data.dataset
    return {
        "format": 1,
        "model_name": model_name,
        "run_dir": str(run_dir.resolve()),
        "config_name": config.name,
        "kind": parts.kind,
        "feature_set": config.model.feature_set,
        "dataset": dataset.schema.name,
        "n": n,
        "exclude_train": exclude,
        "index": index,
        "users": int(dataset.n_users),
        "items": int(dataset.n_items),
        "user_segment": dataset.schema.user_segment,
        "item_id_column": dataset.schema.id_column("item"),
        "signatures": {name: signature_summary(fn) for name, fn in signatures.items()},
        "custom_ops": {name: ops for name, ops in custom.items() if ops},
        "cold_start_text": bool(cold_start_text),
        # All signatures share one function library: TF Text ops in one of them
        # make the whole SavedModel need TF Text to load.
        "needs_tf_text_to_load": bool(cold_start_text),
        "text_encoder": text_encoder_manifest(config, spec, parts.text_lookups),
        "score_items_unknown_user": (
            "zero query vector (item bias only, when the model has one)"
            if "score_items" in signatures
            else None
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _publish(staging: Path, out: Path) -> int:
    """Renames the staged directory to the next free integer version, under a lock."""
    with file_lock(out / ".export.lock"):
        version = tf_serving.next_version(out)
        replace_directory(staging, out / str(version))  # a new version: a plain rename
    return version


def _check_user(data) -> str:
    """A known user with train positives (the first one of the train split)."""
    return str(data.split.train["user_id"].iloc[0])


def _warmup_inputs(user: str, n: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    batch = np.array([user.encode()] * 8 + [b"", b"unknown-user"], dtype=object)
    return [
        ("serving_default", {"user_id": np.array([user.encode()], dtype=object)}),
        ("serving_default", {"user_id": batch}),
        ("recommend_k", {"user_id": batch, "k": np.array(n, np.int32)}),
    ]


def _write_assets(extra: Path, dataset, manifest: dict[str, Any]) -> None:
    """``items.json``, ``representative_users.json``, ``export.json`` (inside the staged version)."""
    from tfrs_recsys.serving.recommend import representative_users

    items = dataset.items.reset_index(drop=True)
    (extra / ITEMS_FILE).write_text(
        items.to_json(orient="records", force_ascii=False) + "\n", encoding="utf-8"
    )
    users = dataset.users.set_index(dataset.schema.id_column("user"))
    groups = {
        segment: [{"user_id": u, **{k: _plain(v) for k, v in users.loc[u].items()}} for u in ids]
        for segment, ids in representative_users(dataset, per_segment=3).items()
    }
    text = json.dumps(
        {"segment": dataset.schema.user_segment, "groups": groups}, indent=2, ensure_ascii=False
    )
    (extra / REPRESENTATIVE_FILE).write_text(text + "\n", encoding="utf-8")
    (extra / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
