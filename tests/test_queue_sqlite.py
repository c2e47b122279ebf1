"""Runs as a queue on one SQLite file (issue 13): a server that runs no exports queues them,
and a ``tuiexport worker`` on the same machine claims and runs them (no notifications on
SQLite: it looks once a second)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.cluster import processes, request
from tests.shared_catalog import make_catalog
from tuiexport import db as dbmod
from tuiexport import service, setup
from tuiexport.models import Run

pytestmark = pytest.mark.slow


def test_a_server_without_exports_queues_and_a_worker_runs_them(
    tmp_path: Path, isolated_home: Path
) -> None:
    path = tmp_path / "queue.sqlite"
    make_catalog(path, 200)
    setup.prepare_database(path, load_sample=False)
    small = service.get_definition("Small")
    dbmod.close_database()
    with processes(str(path), isolated_home) as cluster:
        server = cluster.serve("--no-exports")
        worker = cluster.worker("--jobs", "1")
        status, head, body = request(server.url + service.share_path(small))
        assert status == 200, body[:300]
    setup.prepare_database(path, load_sample=False)
    run = Run.get(Run.log_id == head["x-log-id"])
    assert run.status == "warning" and run.pid == worker.pid  # warning: 50 of 200 (its limit)
    assert run.sha256 == hashlib.sha256(body).hexdigest()
