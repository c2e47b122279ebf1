"""``tuiexport --run`` imports what an export needs and nothing else (cron jobs and scripts pay
every import on every call): not the TUI, not the PostgreSQL driver, not the share server, not
the catalog importer or another command's module. PostgreSQL still gets its driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.shared_catalog import make_catalog

NOT_FOR_RUN = [
    "textual",
    "rich",
    "psycopg2",
    "playhouse.db_url",
    "tuiexport.server",
    "tuiexport.server_cli",
    "tuiexport.web",
    "tuiexport.tui",
    "tuiexport.catalog.cli",
    "tuiexport.catalog.importer",
    "tuiexport.catalog.demo",
    # Only a run that queues a notification delivers it (management.notify imports these then).
    "smtplib",
    "ssl",
    "urllib.request",
    "email.message",
    # The generator's version is tuiexport.__version__, not the installed metadata's.
    "importlib.metadata",
    # Only a fresh database loads the bundled sample (setup.sample_catalog).
    "importlib.resources",
    "zipfile",
    # Only an export big enough for worker processes (or threads) starts them.
    "multiprocessing",
    "subprocess",
    "concurrent.futures",
    "pickle",
    # TUIEXPORT_HOME is set and there is no configuration file to read.
    "platformdirs",
    "tomllib",
    # Only new definitions, tokens and keys need these; only link health the median.
    "getpass",
    "secrets",
    "statistics",
]

#: Runs the CLI in a fresh interpreter and prints the modules it imported (one JSON line).
CHILD = (
    "import json, sys\n"
    "from tuiexport.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n"
)


def modules_after(home: Path, *args: str) -> tuple[int, list[str], str]:
    env = {**os.environ, "TUIEXPORT_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    code, modules = json.loads(proc.stderr.strip().splitlines()[-1])
    return code, modules, proc.stdout


def loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_run_imports_none_of_the_other_front_ends(tmp_path):
    db = tmp_path / "catalog.sqlite"
    make_catalog(db, 10)
    out = tmp_path / "small.json"
    code, modules, _ = modules_after(
        tmp_path, "--db", str(db), "--run", "Small", "-o", str(out), "-q"
    )
    assert code == 0 and out.stat().st_size > 0
    assert "tuiexport.engine" in modules  # it did run the export in this process
    assert [name for name in NOT_FOR_RUN if loaded(modules, name)] == []


def test_a_command_imports_its_own_module_only(tmp_path):
    db = tmp_path / "catalog.sqlite"
    make_catalog(db, 10)
    code, modules, stdout = modules_after(tmp_path, "--db", str(db), "exports", "list")
    assert code == 0 and "Small" in stdout
    assert "tuiexport.management.cli" in modules
    for name in ("tuiexport.catalog.cli", "tuiexport.server_cli", "tuiexport.web", "psycopg2"):
        assert not loaded(modules, name), name


def test_help_and_a_mistyped_command_still_list_every_command(tmp_path):
    env = {**os.environ, "TUIEXPORT_HOME": str(tmp_path)}
    run = [sys.executable, "-m", "tuiexport"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0
    for command in ("catalog", "init", "exports", "selections", "history", "serve", "web"):
        assert command in helped.stdout
    wrong = subprocess.run([*run, "exprots", "list"], capture_output=True, text=True, env=env)
    assert wrong.returncode == 2 and "invalid choice: 'exprots'" in wrong.stderr
    assert "Traceback" not in wrong.stderr and "exports" in wrong.stderr


def test_peewee_gets_psycopg2_when_a_postgresql_target_is_opened():
    """tuiexport/__init__.py keeps peewee from importing psycopg2; db.postgres_driver hands it
    over (tests/test_postgres*.py then connect through it)."""
    check = (
        "import sys, tuiexport, peewee\n"
        "assert peewee.psycopg2 is None and 'psycopg2' not in sys.modules\n"
        "from tuiexport import db\n"
        "database = db.make_database('postgresql://nobody@127.0.0.1:1/none')\n"
        "assert peewee.psycopg2 is not None, 'no driver'\n"
        "database._adapter.check_driver()\n"
        "print(type(database).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "PostgresqlDatabase"


def test_the_documents_generator_names_the_installed_version():
    """summary.generator() reads tuiexport.__version__ (pyproject.toml's version comes from it):
    the installed metadata says the same, without a --run importing importlib.metadata."""
    from importlib.metadata import version

    import tuiexport
    from tuiexport.exporters.summary import generator

    assert tuiexport.__version__ == version("tuiexport")
    assert generator() == f"tuiexport {version('tuiexport')}"
