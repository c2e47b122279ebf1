"""Which database a command opens: a mistyped URL is refused, and only the TUI, `catalog demo`
and `catalog import` create a database — the other commands expect one (real processes)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_postgres import pg_url  # noqa: F401 - fixture


def tx(
    cwd: Path, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TUIEXPORT_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tuiexport", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "target",
    [
        "postgresql:/user@host/db",
        "postgres//user@host/db",
        "postgresql:user:s3cret@host/db",
        "::::",
        "postgresql://user:s3cret@host",
        "postgresql://host:99999/db",
        "postgresql://host:port/db",
        "mysql://user@host/db",
        "sqlite://relative.sqlite",
        "pg:host/db",
    ],
)
def test_a_mistyped_url_is_refused_and_creates_nothing(tmp_path, isolated_home, target):
    work = tmp_path / "work"
    work.mkdir()
    before = tree(tmp_path)
    done = tx(
        work, isolated_home, "--run", "Shop feed", "-o", "shop.zip", env={"TUIEXPORT_DB": target}
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "is not a database URL tuiexport can use" in lines[0], done.stderr
    assert "s3cret" not in done.stderr
    assert tree(tmp_path) == before, "nothing may be created"
    if target == "::::":  # the same through --db
        done = tx(work, isolated_home, "--db", target, "exports", "list")
        assert done.returncode == 2 and "is not a database URL" in done.stderr
        assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "command",
    [
        ["--run", "Shop feed", "-o", "shop.zip"],
        ["exports", "list"],
        ["selections", "list"],
        ["history"],
        ["catalog", "stats"],
        ["apikey", "list"],
        ["serve", "--port", "0"],
    ],
)
def test_commands_that_expect_a_catalog_never_create_one(tmp_path, isolated_home, command):
    work = tmp_path / "work"
    work.mkdir()
    before = tree(tmp_path)
    targets = ["new/folder/missing.sqlite"] if command[0] == "--run" else []
    for target in ["missing.sqlite", *targets]:
        done = tx(work, isolated_home, "--db", target, *command)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"tuiexport: There is no tuiexport database at {target}; create it with 'tuiexport "
            "init' (or by starting the TUI: both load the sample catalog) or 'tuiexport catalog "
            "import FILE'."
        ]
        assert tree(tmp_path) == before, "no file and no folder may be created"
    if command[0] in ("--run", "serve"):  # the default database (no --db) is no exception
        done = tx(work, isolated_home, *command)
        assert done.returncode == 2 and "There is no tuiexport database at" in done.stderr
        assert tree(tmp_path) == before


def test_an_existing_database_without_a_catalog_never_gets_the_sample(tmp_path, isolated_home):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    db = str(tmp_path / "own.sqlite")
    done = tx(tmp_path, isolated_home, "--db", db, "catalog", "import", str(empty))
    assert done.returncode == 0, done.stderr
    done = tx(tmp_path, isolated_home, "--db", db, "exports", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    done = tx(tmp_path, isolated_home, "--db", db, "--run", "Shop feed")
    assert done.returncode == 2 and "There is no export 'Shop feed'" in done.stderr
    stats = tx(tmp_path, isolated_home, "--db", db, "catalog", "stats", "--json")
    assert json.loads(stats.stdout)["products"] == 0


def test_import_creates_a_new_file_and_urls_and_odd_names_still_work(tmp_path, isolated_home):
    feed = tmp_path / "cat.jsonl.gz"
    feed.write_bytes(gzip.compress(b'{"kind":"supplier","id":1,"name":"Nordwind"}\n'))
    odd = tmp_path / "odd:name.sqlite"
    done = tx(tmp_path, isolated_home, "--db", "./odd:name.sqlite", "catalog", "import", str(feed))
    assert done.returncode == 0, done.stderr
    assert odd.is_file()
    done = tx(tmp_path, isolated_home, "--db", f"sqlite:///{odd}", "catalog", "stats", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["suppliers"] == 1


def test_a_fresh_postgresql_database_is_not_filled_by_run(
    pg_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    isolated_home: Path,
) -> None:
    import uuid

    import psycopg2

    name = f"fresh_{uuid.uuid4().hex[:8]}"
    con = psycopg2.connect(pg_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    con.close()
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    done = tx(tmp_path, isolated_home, "--db", url, "--run", "Shop feed", "-o", "shop.zip")
    assert done.returncode == 2, done.stderr
    assert "(it has no tuiexport tables yet)" in done.stderr and len(done.stderr.splitlines()) == 1
    con = psycopg2.connect(url)
    with con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cur.fetchone() == (0,), "no table may be created"
    con.close()
    feed = tmp_path / "cat.jsonl"
    feed.write_text('{"kind":"supplier","id":1,"name":"Nordwind"}\n')
    done = tx(tmp_path, isolated_home, "--db", url, "catalog", "import", str(feed))
    assert done.returncode == 0, done.stderr
    done = tx(tmp_path, isolated_home, "--db", url, "exports", "list", "--json")
    assert done.returncode == 0, done.stderr


def test_init_creates_the_database_with_the_sample_then_commands_work(tmp_path, isolated_home):
    work = tmp_path / "work"
    work.mkdir()
    done = tx(work, isolated_home, "--db", "new.sqlite", "init")
    assert done.returncode == 0, done.stderr
    assert "2,500 products, 5 export definitions" in done.stdout
    again = tx(work, isolated_home, "--db", "new.sqlite", "init")  # idempotent: nothing added
    assert again.returncode == 0 and again.stdout == done.stdout
    listed = tx(work, isolated_home, "--db", "new.sqlite", "exports", "list")
    assert listed.returncode == 0 and "Shop feed" in listed.stdout
    bare = tx(work, isolated_home, "--db", "bare.sqlite", "init", "--no-sample")
    assert bare.returncode == 0 and "0 products, 0 export definitions" in bare.stdout
