"""The product as a user installs it: a wheel in a fresh virtual environment, far from the checkout.

Every other test runs from the editable checkout, where files beside the package hide what a wheel
lacks. Here the wheel is built from a copy of the sources, installed into a new venv in tmp_path and
driven through its own ``tuiexport`` script from a folder that has no source code in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from lxml import etree

REPO = Path(__file__).resolve().parent.parent
# What a source distribution would not hold either: caches, local venvs, build output, data.
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "out",
    "site",
    "*.sqlite*",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies come from this test environment
    (a .pth line) so the test needs no package index and cannot see the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    dist = work / "dist"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("-w", str(dist), str(src)),
        ],
        check=True,
        timeout=240,
    )
    (wheel,) = dist.glob("tuiexport-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=120,
    )
    target_site = Path(
        subprocess.check_output(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # Appended after the venv's own site-packages: the wheel's tuiexport always wins, and the
    # editable install's finder (.pth files) in the test environment is never processed.
    (target_site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def tuiexport(venv: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUIEXPORT_")}
    env.pop("PYTHONPATH", None)
    env["TUIEXPORT_HOME"] = str(home)
    return subprocess.run(
        [str(venv / "bin" / "tuiexport"), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_wheel_installs_the_sample_catalog_and_runs_bmecat(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import tuiexport; print(tuiexport.__file__)"],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed), f"tuiexport imported from {where}"

    # Before anything exists, a command that expects a catalog says how to make one.
    missing = tuiexport(installed, home, "catalog", "stats")
    assert missing.returncode == 2 and "tuiexport init" in missing.stderr, missing.stderr
    init = tuiexport(installed, home, "init")
    assert init.returncode == 0, init.stderr
    assert "2,500 products, 5 export definitions" in init.stdout

    stats = tuiexport(installed, home, "catalog", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["products"] == 2500

    exports = tuiexport(installed, home, "exports", "list", "--json")
    assert exports.returncode == 0, exports.stderr
    names = {d["name"] for d in json.loads(exports.stdout)}
    assert {"Shop feed", "Marketplace BMEcat", "Developer dump"} <= names

    out = home / "bmecat.xml"
    run = tuiexport(installed, home, "--run", "Marketplace BMEcat", "-o", str(out))
    assert run.returncode == 0, run.stderr
    # The schema copy inside the installed package, read the way the product reads it.
    xsd = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "from tuiexport.formats import bmecat12_dir, BMECAT12_XSD\n"
            "with bmecat12_dir() as d: print(d / BMECAT12_XSD)",
        ],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(xsd).is_relative_to(installed)
    schema = etree.XMLSchema(etree.parse(xsd))
    doc = etree.parse(str(out))
    assert schema.validate(doc), schema.error_log
    articles = doc.getroot().findall(".//{*}ARTICLE")
    assert articles, "the BMEcat example exported no article"


def test_missing_sample_is_an_error_not_an_empty_catalog(installed: Path, tmp_path: Path) -> None:
    site = Path(
        subprocess.check_output(
            [
                str(installed / "bin" / "python"),
                "-c",
                "import tuiexport, os; print(os.path.dirname(tuiexport.__file__))",
            ],
            cwd=tmp_path,
            text=True,
        ).strip()
    )
    sample = site / "data" / "sample-catalog.jsonl.gz"
    hidden = sample.with_name("hidden.gz")
    sample.rename(hidden)
    try:
        home = tmp_path / "user"
        home.mkdir()
        result = tuiexport(installed, home, "init")
    finally:
        hidden.rename(sample)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "sample catalog" in result.stderr and "reinstall" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
