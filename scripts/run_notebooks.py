"""Executes the exploration notebooks top to bottom in a fresh kernel each.

    python scripts/run_notebooks.py [--out DIR] [NAME ...]

Without ``--out`` each notebook is executed in place: its outputs are written
into ``notebooks/NAME.ipynb`` (what ``make notebooks`` does, at the sizes of
the ``TFRS_NB_*`` environment variables: full size when none is set). A cell
error stops with a non-zero exit status and leaves the file untouched.

Paths of this machine in the outputs are written as ``<checkout>/...`` (this
checkout) and ``<cache>/...`` (``tfrs_recsys.paths.cache_dir()``), so the
committed notebooks do not show where they were executed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"


def machine_paths() -> dict[str, str]:
    """This machine's checkout and cache directories -> their placeholders."""
    from tfrs_recsys.paths import cache_dir

    return {str(REPO_ROOT): "<checkout>", str(cache_dir().resolve()): "<cache>"}


def portable_outputs(nb, replacements: dict[str, str]) -> int:
    """Writes each path of ``replacements`` in ``nb``'s text outputs as its placeholder.

    Longer paths go first (a cache inside the checkout stays ``<cache>``).
    Returns the number of outputs changed.
    """
    ordered = sorted(replacements.items(), key=lambda kv: -len(kv[0]))

    def swap(text):
        if isinstance(text, list):
            return [swap(t) for t in text]
        for old, new in ordered:
            text = text.replace(old, new)
        return text

    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            before = repr(output)
            if "text" in output:
                output["text"] = swap(output["text"])
            for key, value in output.get("data", {}).items():
                if key.startswith("text/"):
                    output["data"][key] = swap(value)
            changed += repr(output) != before
    return changed


def _client(path: Path, timeout: int | None) -> NotebookClient:
    nb = nbformat.read(path, as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys(
            filter(None, [str(REPO_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)])
        )
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA or grappler noise in cell outputs
    return NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )


def execute_concurrently(
    jobs: dict[Path, Path | None], *, timeout: int | None = None
) -> dict[Path, BaseException | float]:
    """Runs several notebooks at once, one kernel each (their waits overlap).

    Returns, per source path, the seconds it took or the exception it raised.
    """
    import asyncio

    async def one(path: Path, out: Path | None) -> float:
        client = _client(path, timeout)
        started = time.perf_counter()
        await client.async_execute()
        if out is not None:
            portable_outputs(client.nb, machine_paths())
            nbformat.write(client.nb, out)
        return time.perf_counter() - started

    async def all_jobs():
        return await asyncio.gather(*(one(p, o) for p, o in jobs.items()), return_exceptions=True)

    return dict(zip(jobs, asyncio.run(all_jobs())))


def execute(path: Path, out: Path | None = None, *, timeout: int | None = None) -> float:
    """Runs ``path`` in a fresh ``python3`` kernel; writes the result to ``out``.

    The kernel runs in ``notebooks/`` with this checkout first on ``PYTHONPATH``,
    so it imports the ``tfrs_recsys`` beside the notebook. Returns the seconds.
    """
    started = time.perf_counter()
    client = _client(path, timeout)
    client.execute()
    seconds = time.perf_counter() - started
    if out is not None:
        portable_outputs(client.nb, machine_paths())
        nbformat.write(client.nb, out)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write executed copies here instead")
    args = parser.parse_args(argv)
    paths = [NOTEBOOKS / f"{n.removesuffix('.ipynb')}.ipynb" for n in args.names] or sorted(
        NOTEBOOKS.glob("[0-9]*.ipynb")
    )
    for path in paths:
        target = path if args.out is None else args.out / path.name
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        print(f"executing {path.name} ...", flush=True)
        seconds = execute(path, target)
        print(f"  {path.name}: {seconds:.0f} s -> {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
