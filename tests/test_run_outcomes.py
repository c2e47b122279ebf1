"""Every run ends with the truth: cancelled, a full disk, a kill at the very end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_catalog import make_catalog, tx
from tuiexport import service, setup

pytestmark = pytest.mark.slow


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "shared.sqlite"
    make_catalog(path, 3000)
    return path


@pytest.mark.parametrize("name", ["Cat", "Big"])
def test_cancelling_mid_run_ends_cancelled_for_every_format(catalog: Path, name: str) -> None:
    """Cancelled after the first chunk, with the writer's cursors still open (BMEcat used to
    end ``failed: OperationalError: database table is locked``)."""
    setup.prepare_database(catalog, load_sample=False)
    seen: list[int] = []
    run = service.run_export(
        name, progress=lambda done, total: seen.append(done), cancel=lambda: any(seen)
    )
    assert run.status == "cancelled", run.messages
    assert run.messages == ["Cancelled before it finished."]
    assert not list(Path(run.artifact_path or "").parent.glob(".*.part"))
    again = service.run_export(name)  # the connection is still usable
    assert again.status in ("success", "warning"), again.messages


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) to mount a tiny tmpfs")
def test_a_full_disk_during_a_bmecat_run_says_no_space(
    catalog: Path, isolated_home: Path, tmp_path: Path
) -> None:
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no permission for a private mount namespace (needs root)")
    small = tmp_path / "small"
    small.mkdir()
    # 64 KiB: the BMEcat file of 3,000 products (a few MB) fills it in the middle of the run.
    script = (
        f"mount -t tmpfs -o size=65536 tmpfs {small} && TUIEXPORT_HOME={isolated_home} "
        f"{sys.executable} -m tuiexport --db {catalog} --run Cat -o {small}/cat.xml -q; "
        f'echo "exit=$?"; ls -a {small}'
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "exit=1" in done.stdout, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr
    assert ".part" not in done.stdout
    history = json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout)
    assert [r["status"] for r in history] == ["failed"]
    assert "No space left on device" in history[0]["messages"][-1]


def _run_killed_at(home: Path, db: Path, where: str) -> subprocess.CompletedProcess[str]:
    """``--run Big`` in a process that SIGKILLs itself at ``where``: "finish" (the file is
    renamed into place, the history not yet updated) or "rename" (just before the rename)."""
    probe = (
        "import os, signal, sys\n"
        "from tuiexport import engine\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "if sys.argv[2] == 'finish':\n"
        "    engine.PreparedRun._finish = die\n"
        "else:\n"
        "    engine.os.replace = die\n"
        "from tuiexport.cli import main\n"
        "main(['--db', sys.argv[1], '--run', 'Big', '-q'])\n"
    )
    env = {**os.environ, "TUIEXPORT_HOME": str(home), "TUIEXPORT_KEEP_ARTIFACTS": "1"}
    return subprocess.run(
        [sys.executable, "-c", probe, str(db), where],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_kill_after_the_rename_is_recorded_with_the_file_it_left(
    catalog: Path, isolated_home: Path
) -> None:
    """Killed between the final rename and the history update: the file is complete, so the
    next start records the run as it would have ended (size, SHA-256), and retention counts it."""
    killed = _run_killed_at(isolated_home, catalog, "finish")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    history = json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout)
    [run] = history
    path = Path(run["artifact_path"])
    assert run["status"] == "success", run["messages"]
    assert run["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run["size"] == path.stat().st_size and run["artifact_kept"]
    assert "checked at the next start" in run["messages"][-1]
    # Retention (keep 1) removes the recovered file like any other old artifact.
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", str(catalog), "--run", "Big", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "TUIEXPORT_HOME": str(isolated_home), "TUIEXPORT_KEEP_ARTIFACTS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not path.exists()
    history = json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout)
    assert [(r["status"], r["artifact_kept"]) for r in history] == [
        ("success", True),
        ("success", False),
    ]


def test_a_kill_before_the_rename_is_interrupted_without_figures(
    catalog: Path, isolated_home: Path
) -> None:
    killed = _run_killed_at(isolated_home, catalog, "rename")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout)
    assert run["status"] == "interrupted"
    assert run["sha256"] is None and run["size"] is None and not run["artifact_kept"]
    folder = Path(run["artifact_path"]).parent
    assert not list(folder.glob(".*.part")) and not Path(run["artifact_path"]).exists()


def test_a_download_cut_by_a_server_crash_is_not_success(
    catalog: Path, isolated_home: Path
) -> None:
    first = tx(isolated_home, "--db", str(catalog), "--run", "Big", "-q")
    assert first.returncode == 0, first.stderr
    share = tx(isolated_home, "--db", str(catalog), "exports", "share-url", "Big").stdout.strip()
    path = "/" + share.split("/", 3)[3]
    server = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", str(catalog), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TUIEXPORT_HOME": str(isolated_home), "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = server.stderr.readline() if server.stderr else ""
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
            client.settimeout(30)
            client.connect(("127.0.0.1", int(match.group(1))))
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = b""
            for _ in range(100):  # bounded: the head is far shorter than 100 reads
                head += client.recv(4096)
                if b"\r\n\r\n" in head:
                    break
            log_id = re.search(rb"X-Log-Id: (\w+)", head, re.IGNORECASE)
            assert b" 200 " in head.split(b"\r\n")[0] and log_id, head
            server.kill()  # the server dies in the middle of the body
            server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    served = json.loads(
        tx(
            isolated_home, "--db", str(catalog), "history", log_id.group(1).decode(), "--json"
        ).stdout
    )
    assert served["status"] == "interrupted", served
    assert "server ended before the download finished" in served["messages"][-1]


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_a_contract_limit_below_one_is_refused(
    catalog: Path, isolated_home: Path, limit: str
) -> None:
    """0 used to give an empty feed marked success, -5 no limit at all."""
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home), "TUIEXPORT_CONTRACT_LIMIT": limit}
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", str(catalog), "--run", "Big", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"tuiexport: The contract limit (TUIEXPORT_CONTRACT_LIMIT) must be a whole number "
        f"of at least 1, not {limit}.\n"
    )
    config_file = isolated_home / "config.toml"
    config_file.write_text(f"contract_limit = {limit}\n", encoding="utf-8")
    done = tx(isolated_home, "--db", str(catalog), "--run", "Big", "-q")
    assert done.returncode == 2 and f"contract_limit in {config_file}" in done.stderr
    config_file.unlink()
    assert json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout) == []
