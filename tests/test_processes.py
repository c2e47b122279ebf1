"""Real processes: headless runs never import Textual, SIGKILL mid-export, concurrent writers,
a full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.shared_catalog import tx
from tuiexport import db as dbmod
from tuiexport import service, setup
from tuiexport.selection import Criteria

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_db(tmp_path):
    """A demo catalog of 3,000 products with one JSON Lines and one XML export."""
    from tuiexport.catalog.demo import generate_demo

    path = tmp_path / "demo.sqlite"
    setup.prepare_database(path, load_sample=False)
    generate_demo(3000, seed=7)
    everything = service.create_selection(Criteria(suppliers="all"), name="All")
    service.create_definition(
        "Lines", selection_id=everything.id, profile="developer", output="jsonl"
    )
    service.create_definition("Tree", selection_id=everything.id, profile="standard", output="xml")
    dbmod.close_database()
    return str(path)


def test_headless_paths_never_import_textual(demo_db, isolated_home):
    probe = (
        "import sys\n"
        "from tuiexport.cli import main\n"
        f"code = main(['--db', {demo_db!r}, '--run', 'Lines', '-q'])\n"
        "import tuiexport.service, tuiexport.engine, tuiexport.catalog.importer, tuiexport.catalog.demo\n"
        "try:\n"
        "    import tuiexport.server, tuiexport.server_cli\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_sigkill_mid_export_leaves_no_partial_and_is_interrupted_next_start(
    demo_db, isolated_home, tmp_path
):
    target = tmp_path / "feed.xml"
    first = tx(isolated_home, "--db", demo_db, "--run", "Tree", "-o", str(target), "-q")
    assert first.returncode == 0, first.stderr
    before = target.read_bytes()
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuiexport",
            "--db",
            demo_db,
            "--run",
            "Tree",
            "-o",
            str(target),
            "-q",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".feed.xml.*.part")):
        time.sleep(0.002)
    assert list(tmp_path.glob(".feed.xml.*.part")), "the run never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == before, "the previous artifact must stay untouched"
    history = json.loads(tx(isolated_home, "--db", demo_db, "history", "--json").stdout)
    assert [r["status"] for r in history] == ["interrupted", "success"]
    assert not list(tmp_path.glob(".feed.xml.*.part")), "the next start removes the partial file"


def test_two_exporters_and_an_importer_share_one_sqlite_file(demo_db, isolated_home, tmp_path):
    from tuiexport.catalog.demo import generate_demo
    from tuiexport.catalog.dump import export_jsonl

    # A second catalog to import: 5,000 products, the first 3,000 puids shared with the demo.
    other = tmp_path / "other.sqlite"
    setup.prepare_database(other, load_sample=False)
    generate_demo(5000, seed=8)
    feed = tmp_path / "import.jsonl"
    export_jsonl(feed)
    dbmod.close_database()
    import sqlite3

    with sqlite3.connect(demo_db) as con:
        before = {p for (p,) in con.execute("SELECT puid FROM product")}
    imported = {
        json.loads(line)["puid"]
        for line in feed.read_text().splitlines()
        if '"kind":"product"' in line
    }
    assert len(imported) == 5000 and imported - before, "the import must add new products too"

    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}
    runner = (
        "import sys\nfrom tuiexport.cli import main\n"
        "codes = [main(['--db', sys.argv[1], '--run', sys.argv[2], '-q']) for _ in range(3)]\n"
        "sys.exit(max(codes))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", runner, demo_db, name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("Lines", "Tree")
    ]
    importer = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", demo_db, "catalog", "import", str(feed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = [(p.wait(timeout=300), p.stderr.read()) for p in [*procs, importer]]
    for code, err in results:
        assert code == 0, err
        assert "locked" not in err
    history = json.loads(tx(isolated_home, "--db", demo_db, "history", "--json").stdout)
    assert sorted(r["status"] for r in history) == ["success"] * 6
    stats = json.loads(tx(isolated_home, "--db", demo_db, "catalog", "stats", "--json").stdout)
    assert stats["products"] == len(before | imported)  # nothing lost, nothing duplicated


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) to mount a tiny tmpfs")
def test_full_disk_fails_cleanly_and_keeps_the_earlier_artifact(demo_db, isolated_home, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no permission for a private mount namespace (needs root)")
    # The first artifact fits; the second run needs room for its temporary file beside it: full.
    sized = tx(
        isolated_home, "--db", demo_db, "--run", "Lines", "-o", str(tmp_path / "probe.jsonl"), "-q"
    )
    assert sized.returncode == 0, sized.stderr
    room = (tmp_path / "probe.jsonl").stat().st_size * 3 // 2 // 4096 * 4096 + 8192
    script = f"""
set -u
mount -t tmpfs -o size={room} tmpfs {small}
export TUIEXPORT_HOME={isolated_home}
{sys.executable} -m tuiexport --db {demo_db} --run Lines -o {small}/feed.jsonl -q >/dev/null || exit 90
cp {small}/feed.jsonl {tmp_path}/before.jsonl
{sys.executable} -m tuiexport --db {demo_db} --run Lines -o {small}/feed.jsonl -q
echo "exit=$?"
cmp -s {small}/feed.jsonl {tmp_path}/before.jsonl && echo unchanged
ls -a {small}
"""
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "exit=1" in done.stdout, done.stdout + done.stderr
    err_lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1 and "No space left on device" in err_lines[0], done.stderr
    assert "unchanged" in done.stdout, "the earlier artifact must stay intact"
    assert ".part" not in done.stdout, "no partial file may remain"
    history = json.loads(tx(isolated_home, "--db", demo_db, "history", "--json").stdout)
    assert [r["status"] for r in history] == ["failed", "success", "success"]
    assert "No space left on device" in history[0]["messages"][-1]


def test_unwritable_output_folder_is_refused_before_the_run(demo_db, isolated_home, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
        done = tx(isolated_home, "--db", demo_db, "--run", "Lines", "-o", str(locked / "x.jsonl"))
    else:  # root writes anywhere: make the folder a read-only mount instead
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("root without a private mount namespace")
        script = (
            f"mount -t tmpfs -o ro tmpfs {locked} && TUIEXPORT_HOME={isolated_home} "
            f"{sys.executable} -m tuiexport --db {demo_db} --run Lines -o {locked}/x.jsonl"
        )
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"tuiexport: The folder {locked} is not writable.\n"
    assert json.loads(tx(isolated_home, "--db", demo_db, "history", "--json").stdout) == []
