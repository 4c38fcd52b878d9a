"""The built wheel, installed into a fresh virtual environment outside the repository,
runs the main job's steps with the configs it ships (no checkout, no editable install).

The wheel is built from a copy of the sources with the development environment's
setuptools (no build isolation, so no network). The fresh environment sees the
development environment's third-party packages (TensorFlow, ...) through a ``.pth``
line naming that ``site-packages``; a directory added that way does not get its own
``.pth`` files processed, so the editable install's finder stays inactive and
``tfrs_recsys`` can only come from the wheel. Every command runs from a directory
outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tfrs_recsys.config import load_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from (the rest of the checkout stays behind).
SOURCES = ("pyproject.toml", "README.md", "tfrs_recsys")


def _run(argv, *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(bin_dir, work_dir, env)`` of a fresh venv with only the wheel's tfrs_recsys."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", TFRS_RECSYS_CACHE=str(root / "cache"))
    dist = root / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source],
        cwd=root,
        env=env,
    )
    (wheel,) = dist.glob("tfrs_recsys-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root, env=env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=root,
            env=env,
        ).strip()
    )
    # The development environment's packages, without processing its .pth files.
    (site / "dev_packages.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=root, env=env)

    work = root / "work"
    work.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv / "bin", work, env


def test_the_installed_package_is_the_wheel_with_its_configs(installed):
    bin_dir, work, env = installed
    probe = (
        "import json, sys, tfrs_recsys, tfrs_recsys.config as c; "
        "print(json.dumps({'file': tfrs_recsys.__file__, 'names': c.config_names(), "
        "'path': str(c.shipped_config_path('tech_subset')), "
        "'finders': [getattr(f, '__module__', '') for f in sys.meta_path]}))"
    )
    found = json.loads(_run([bin_dir / "python", "-c", probe], cwd=work, env=env))
    venv = bin_dir.parent
    assert Path(found["file"]).is_relative_to(venv), found["file"]
    assert Path(found["path"]).is_relative_to(venv), found["path"]
    # The development install's finder (module __editable___tfrs_recsys_*_finder) is inactive.
    assert not [m for m in found["finders"] if "editable" in m], found["finders"]
    shipped = sorted(p.stem for p in (REPO / "tfrs_recsys" / "configs").glob("*.toml"))
    assert found["names"] == shipped


def test_the_main_job_runs_from_the_wheel_with_a_shipped_config(installed):
    bin_dir, work, env = installed
    cli = bin_dir / "tfrs-recsys"
    assert cli.is_file()
    _run(
        [cli, "generate-data", "--out", "data", "--users", "200", "--items", "40"],
        cwd=work,
        env=env,
    )
    out = _run(
        [
            cli,
            "train",
            "--config",
            "tech_subset",
            "--set",
            'data.source="data"',
            "--set",
            "train.epochs=2",
            "--set",
            "train.refit=false",
            "--run-dir",
            "runs/r",
        ],
        cwd=work,
        env=env,
    )
    assert "shipped config tech_subset" in out
    # The run records the shipped config: its name and model settings, the overrides on top.
    recorded = tomllib.loads((work / "runs" / "r" / "config.toml").read_text(encoding="utf-8"))
    shipped = load_config("tech_subset").to_dict()
    assert recorded["name"] == "tech_subset"
    assert recorded["model"] == json.loads(json.dumps(shipped["model"]))
    assert (recorded["train"]["epochs"], recorded["data"]["source"]) == (2, "data")

    evaluated = json.loads(
        _run([cli, "evaluate", "--run-dir", "runs/r", "--json"], cwd=work, env=env)
    )
    assert 0.0 <= evaluated["metrics"]["recall@10"] <= 1.0
    _run([cli, "export", "--run-dir", "runs/r", "--out", "exported/tech_subset"], cwd=work, env=env)
    assert (work / "exported" / "tech_subset" / "1" / "saved_model.pb").is_file()
    recommended = _run(
        [cli, "recommend", "--model", "exported/tech_subset", "--representative", "-n", "3"],
        cwd=work,
        env=env,
    )
    assert recommended.strip()
