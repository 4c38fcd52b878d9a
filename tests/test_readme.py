"""The README's Python blocks run, so the quickstart cannot rot.

Every fenced ```python block of README.md is executed as a script in a fresh
subprocess, with a temporary directory as its working directory (so it writes
nothing into the repository) and ``TFRS_RECSYS_CACHE`` pointing at another
temporary directory. A block whose first line is ``# readme-test: skip``
(e.g. one that needs a running TF Serving) is not run; the quickstart block (the
one that calls ``tr.train``) must never be skipped.

The quickstart's printed recall is checked to be a number in [0, 1], and its
recommendations to be 5 distinct catalog items, none of them a train positive
of the user (recomputed here from the dataset and the holdout-80-20 split).
It is also run a second time in the same directory, as a user would.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SKIP_MARKER = "# readme-test: skip"
TIMEOUT_S = 600

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_RECALL = re.compile(r"recall@10:\s*(\S+)")
_ITEM_ID = re.compile(r"\bitem_\d+\b")


@dataclasses.dataclass(frozen=True)
class Block:
    """One ```python block of the README."""

    line: int  # line of the opening fence, 1-based
    code: str

    @property
    def skipped(self) -> bool:
        return self.code.lstrip().startswith(SKIP_MARKER)

    @property
    def is_quickstart(self) -> bool:
        return "tr.train(" in self.code


def python_blocks(text: str) -> list[Block]:
    return [
        Block(line=text.count("\n", 0, match.start()) + 1, code=match.group(1))
        for match in _FENCE.finditer(text)
    ]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [block for block in BLOCKS if not block.skipped]


def run_block(block: Block, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """Runs ``block`` as a script in a new Python process inside ``cwd``."""
    script = cwd / f"readme_block_line{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {**os.environ, "TFRS_RECSYS_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, script.name],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _failure(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


@dataclasses.dataclass(frozen=True)
class BlockRun:
    block: Block
    cwd: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def block_runs(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[int, BlockRun]:
    """Every runnable block, run once, each in its own fresh directory (keyed by line)."""
    runs = {}
    for block in RUNNABLE:
        cwd = tmp_path_factory.mktemp(f"readme_line{block.line}")
        runs[block.line] = BlockRun(block, cwd, run_block(block, cwd, cache_dir))
    return runs


@pytest.fixture(scope="module")
def quickstart(block_runs: dict[int, BlockRun]) -> BlockRun:
    run = next(run for run in block_runs.values() if run.block.is_quickstart)
    assert run.result.returncode == 0, _failure(run.result)
    return run


def test_readme_has_a_runnable_quickstart():
    quickstarts = [block for block in BLOCKS if block.is_quickstart]
    assert len(quickstarts) == 1, "expected exactly one README block calling tr.train("
    assert not quickstarts[0].skipped, "the quickstart block must not carry the skip marker"
    assert "import tfrs_recsys as tr" in quickstarts[0].code


@pytest.mark.parametrize("line", [block.line for block in RUNNABLE], ids=lambda line: f"line{line}")
def test_python_block_exits_0(block_runs: dict[int, BlockRun], line: int):
    result = block_runs[line].result
    assert result.returncode == 0, _failure(result)


def test_quickstart_prints_recall_in_unit_interval(quickstart: BlockRun):
    found = _RECALL.findall(quickstart.result.stdout)
    assert len(found) == 1, quickstart.result.stdout
    recall = float(found[0])
    assert 0.0 <= recall <= 1.0


def test_quickstart_recommends_five_catalog_items_not_in_train(quickstart: BlockRun):
    import tfrs_recsys as tr

    # The recommendations of tec_0001 are printed after the recall line.
    after_recall = quickstart.result.stdout.split("recall@10:", 1)[1]
    recommended = _ITEM_ID.findall(after_recall)
    dataset = tr.load_dataset(quickstart.cwd / "data" / "quickstart")
    catalog = set(dataset.items["item_id"].astype(str))
    train = tr.split_dataset(dataset).train
    seen = set(train.loc[train["user_id"] == "tec_0001", "item_id"].astype(str))
    assert len(recommended) == 5, after_recall
    assert len(set(recommended)) == 5, after_recall
    assert set(recommended) <= catalog
    assert not set(recommended) & seen, f"train items recommended: {set(recommended) & seen}"


def test_quickstart_writes_run_and_export_under_its_working_directory(quickstart: BlockRun):
    runs = sorted((quickstart.cwd / "runs").glob("quickstart-*"))
    assert len(runs) == 1
    assert (runs[0] / "config.toml").is_file()
    assert (quickstart.cwd / "exported_models" / "quickstart" / "1" / "saved_model.pb").is_file()


def test_quickstart_runs_again_in_the_same_directory(quickstart: BlockRun, cache_dir: Path):
    again = run_block(quickstart.block, quickstart.cwd, cache_dir)
    assert again.returncode == 0, _failure(again)
    assert len(list((quickstart.cwd / "runs").glob("quickstart-*"))) == 2
    assert (quickstart.cwd / "exported_models" / "quickstart" / "2" / "saved_model.pb").is_file()


_LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
WRITTEN_BY_THE_PACKAGE = {"comparison.md"}  # compare's report, named in the docs
_PARENT_PATH = re.compile(r"(?<![\w.])((?:\.\./)+[\w./-]*)")
_MD_NAME = re.compile(r"(?<![\w./-])([\w./-]*\w\.md)\b")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
DOC_FILES = [
    README,
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "notebooks" / "README.md",
    REPO / "exported_models" / "README.md",
]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> '-'."""
    without_code = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in _HEADING.findall(without_code)
    }


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc: Path):
    text = doc.read_text(encoding="utf-8")
    for target, anchor in _LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name}: link to missing {target}"
        assert REPO in path.parents, f"{doc.name}: link outside the repository: {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text(encoding="utf-8")), (
                f"{doc.name}: no heading #{anchor} in {target or doc.name}"
            )


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_cite_no_file_outside_the_repository(doc: Path):
    """Every ``../`` path stays inside the repository; every ``*.md`` named exists in it."""
    text = doc.read_text(encoding="utf-8")
    for path in _PARENT_PATH.findall(text):
        assert REPO in (doc.parent / path).resolve().parents, f"{doc.name}: {path} leaves the repo"
    for name in set(_MD_NAME.findall(text)) - WRITTEN_BY_THE_PACKAGE:
        candidates = [doc.parent / name, REPO / name]
        assert any(c.is_file() for c in candidates), f"{doc.name}: names {name}, not in the repo"
