"""Tests of fetch-data: one real download, the rest with a fake wheel."""

from __future__ import annotations

import csv
import subprocess
import zipfile
from pathlib import Path

import pytest

from tfrs_recsys.data import fetch
from tfrs_recsys.data.fetch import FetchError, dataset_dir, fetch_dataset
from tfrs_recsys.data.movielens import load_movielens
from tfrs_recsys.errors import ConfigError, RecsysError

SPEC = fetch.KNOWN_DATASETS["movielens-100k"]

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n"
    "186\t302\t4\t891717742\n"
)
USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "196\t49\tM\twriter\t55105\n"
    "186\t39\tF\texecutive\t00000\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tKolya\t1996\tComedy\n"
    "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
)


def _fake_wheel(directory: Path) -> Path:
    """A wheel laid out like recbole's, with the .kg and .link files too."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "recbole-1.2.1-py3-none-any.whl"
    base = SPEC.member_dir
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
        archive.writestr(f"{base}/ml-100k.inter", INTER)
        archive.writestr(f"{base}/ml-100k.user", USER)
        archive.writestr(f"{base}/ml-100k.item", ITEM)
        archive.writestr(f"{base}/ml-100k.kg", "head_id:token\trelation_id:token\ttail_id:token\n")
        archive.writestr(f"{base}/ml-100k.link", "item_id:token\tentity_id:token\n")
    return wheel


@pytest.fixture
def fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the pip download by copying a fake wheel; records the calls."""
    calls: list[str] = []
    source = _fake_wheel(tmp_path / "wheelhouse")

    def download(requirement: str, destination: Path) -> Path:
        calls.append(requirement)
        copy = destination / source.name
        copy.write_bytes(source.read_bytes())
        return copy

    monkeypatch.setattr(fetch, "download_wheel", download)
    return calls


def _no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    def download(requirement: str, destination: Path) -> Path:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(fetch, "download_wheel", download)


def test_real_fetch_of_ml100k(tmp_path: Path) -> None:
    """Downloads the recbole wheel for real and checks the ML-100K figures."""
    target = fetch_dataset("movielens-100k", tmp_path / "cache")
    assert target == tmp_path / "cache" / "datasets" / "movielens-100k"
    assert sorted(p.name for p in target.iterdir()) == sorted(SPEC.files)
    assert [p.name for p in target.parent.iterdir()] == ["movielens-100k"]  # no temp dirs left

    with open(target / "ml-100k.inter", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    rating = header.index("rating:float")
    positives = sum(1 for row in body if float(row[rating]) >= 4)
    users_with = {row[0] for row in body if float(row[rating]) >= 4}

    data = load_movielens(target)
    assert data.schema.name == "movielens-100k"
    assert (data.n_users, data.n_items, data.n_raw_interactions) == (943, 1682, 100_000)
    assert len(body) == 100_000
    assert len(data.interactions) == positives
    assert data.interactions["user_id"].nunique() == len(users_with)


def test_fetch_extracts_only_the_dataset_files(tmp_path: Path, fake_pip: list[str]) -> None:
    target = fetch_dataset("movielens-100k", tmp_path)
    assert fake_pip == ["recbole==1.2.1"]
    assert sorted(p.name for p in target.iterdir()) == sorted(SPEC.files)
    assert (target / "ml-100k.inter").read_text() == INTER
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["movielens-100k"]
    data = load_movielens(target)
    assert data.n_users == 2 and len(data.interactions) == 1


def test_default_cache_is_the_package_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    monkeypatch.setenv("TFRS_RECSYS_CACHE", str(tmp_path / "env-cache"))
    assert fetch_dataset("movielens-100k") == tmp_path / "env-cache" / "datasets" / "movielens-100k"


def test_cached_dataset_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    target = fetch_dataset("movielens-100k", tmp_path)
    _no_pip(monkeypatch)
    assert fetch_dataset("movielens-100k", tmp_path) == target
    assert dataset_dir("movielens-100k", tmp_path) == target


def test_force_and_incomplete_refetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    target = fetch_dataset("movielens-100k", tmp_path)
    (target / "ml-100k.inter").write_text("changed")
    (target / "stray.txt").write_text("x")
    assert fetch_dataset("movielens-100k", tmp_path, force=True) == target
    assert (target / "ml-100k.inter").read_text() == INTER
    assert not (target / "stray.txt").exists()
    (target / "ml-100k.item").unlink()  # incomplete: dataset_dir fetches again
    assert dataset_dir("movielens-100k", tmp_path) == target
    assert (target / "ml-100k.item").read_text() == ITEM
    assert len(fake_pip) == 3
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["movielens-100k"]


def test_unknown_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_pip(monkeypatch)
    with pytest.raises(ConfigError, match="movielens-100k") as info:
        fetch_dataset("movielens-20m", tmp_path)
    assert "'movielens-20m'" in str(info.value)
    with pytest.raises(ConfigError):
        dataset_dir("nope", tmp_path)
    assert not (tmp_path / "datasets").exists()


def test_failed_extraction_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    real_extract = fetch.extract_member
    extracted: list[str] = []

    def extract_then_die(archive: zipfile.ZipFile, member: str, path: Path) -> None:
        if extracted:
            raise KeyboardInterrupt  # as if the fetch were interrupted mid-way
        real_extract(archive, member, path)
        extracted.append(member)

    monkeypatch.setattr(fetch, "extract_member", extract_then_die)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("movielens-100k", tmp_path)
    assert extracted  # one file was written before the failure
    assert list((tmp_path / "datasets").iterdir()) == []


def test_another_process_finishing_first_keeps_its_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    """Our rename fails because another process has just put a complete copy in place."""
    from tfrs_recsys import atomic

    def other_process_wins(source: Path, target: Path) -> None:
        target.mkdir()
        for name in SPEC.files:
            (target / name).write_text("theirs")
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(atomic, "replace_directory", other_process_wins)
    target = fetch_dataset("movielens-100k", tmp_path)
    assert (target / "ml-100k.inter").read_text() == "theirs"
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["movielens-100k"]


def test_failed_rename_without_a_complete_copy_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pip: list[str]
) -> None:
    from tfrs_recsys import atomic

    def rename_fails(source: Path, target: Path) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(atomic, "replace_directory", rename_fails)
    with pytest.raises(OSError, match="Permission denied"):
        fetch_dataset("movielens-100k", tmp_path)
    assert list((tmp_path / "datasets").iterdir()) == []  # no staging directory left


def test_missing_member_is_a_fetch_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "wheelhouse" / "recbole-1.2.1-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{SPEC.member_dir}/ml-100k.inter", INTER)

    def download(requirement: str, destination: Path) -> Path:
        copy = destination / wheel.name
        copy.write_bytes(wheel.read_bytes())
        return copy

    monkeypatch.setattr(fetch, "download_wheel", download)
    with pytest.raises(FetchError, match=r"ml-100k\.user"):
        fetch_dataset("movielens-100k", tmp_path / "cache")
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []


def test_pip_failure_reports_last_stderr_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        stderr = (
            "ERROR: Could not find a version that satisfies the requirement recbole==1.2.1\n"
            "ERROR: No matching distribution found for recbole==1.2.1\n\n"
        )
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(fetch.subprocess, "run", run)
    with pytest.raises(FetchError) as info:
        fetch_dataset("movielens-100k", tmp_path)
    assert isinstance(info.value, RecsysError)
    assert str(info.value).endswith("ERROR: No matching distribution found for recbole==1.2.1")
    command = seen[0]
    assert command[1:4] == ["-m", "pip", "download"]
    assert (
        "--no-deps" in command and "--only-binary=:all:" in command and "recbole==1.2.1" in command
    )
    assert list((tmp_path / "datasets").iterdir()) == []


def test_a_killed_fetchs_staging_is_removed_by_the_next_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download and the extraction are staging of the target (pid in the name)."""
    import os
    import sys

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    dead = datasets / f".movielens-100k.tmp-{int(finished.stdout)}-0123456789ab"
    live = datasets / f".movielens-100k.tmp-{os.getpid()}-ba9876543210"
    for staging in (dead, live):
        staging.mkdir()
        (staging / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"PK\x03")  # half downloaded
    seen = []

    def download(requirement: str, destination: Path) -> Path:
        seen.append(destination)
        return _fake_wheel(destination)

    monkeypatch.setattr(fetch, "download_wheel", download)
    target = fetch_dataset("movielens-100k", tmp_path)
    assert sorted(p.name for p in datasets.iterdir()) == sorted(["movielens-100k", live.name])
    assert sorted(p.name for p in target.iterdir()) == sorted(SPEC.files)
    assert seen[0].parent == datasets
    assert seen[0].name.startswith(f".movielens-100k.tmp-{os.getpid()}-")
