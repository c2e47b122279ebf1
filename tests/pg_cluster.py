"""A throw-away PostgreSQL cluster on a loopback port, from the machine's server binaries.

One implementation for every PostgreSQL test (same files as SQLite, restarts mid-run, fresh
databases); skipped with the reason where psycopg2 or the server binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class Cluster:
    url: str
    ctl: list[str]

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.ctl, *args], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self.pg_ctl("-w", "start")


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Start a cluster with a database ``tuiexport``; stop and remove it afterwards."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    # Not under pytest's tmp folder: that one is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="tuiexport-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    found = Cluster(f"postgresql://postgres@127.0.0.1:{port}/tuiexport", [*ctl, "-o", options])
    found.start()
    try:
        subprocess.run(
            [
                *as_user,
                str(bindir / "createdb"),
                *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tuiexport"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield found
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
