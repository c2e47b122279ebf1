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


def test_a_queued_run_is_re_evaluated_when_its_definition_changes(
    tmp_path: Path, isolated_home: Path
) -> None:
    from tuiexport import engine

    path = tmp_path / "queue.sqlite"
    make_catalog(path, 100)
    setup.prepare_database(path, load_sample=False)
    other = service.get_definition("Other")
    first = service.admit_run(other.export_id, limit=4, claim=False)
    assert first.prepared is not None and first.created
    log_id = first.prepared.log_id
    asked = Run.get(Run.log_id == log_id).fingerprint
    service.update_definition("Other", output="jsonl", product_limit=20)
    # A request of the new state follows the queued run, which now names that state.
    again = service.admit_run(other.export_id, limit=4, claim=False)
    assert again.prepared is not None and not again.created
    assert again.prepared.log_id == log_id
    row = Run.get(Run.log_id == log_id)
    assert (row.status, row.output) == ("queued", "jsonl") and row.fingerprint != asked
    assert row.artifact_path.endswith(".jsonl") and engine.REEVALUATED in row.messages
    # Changed once more without a new request: the claim re-evaluates it.
    service.update_definition("Other", product_limit=10)
    prepared = engine.claim_next()
    assert prepared is not None and prepared.log_id == log_id
    done = prepared.execute()
    assert done.status in ("success", "warning") and done.product_count == 10
    assert engine.REEVALUATED in done.messages and done.output == "jsonl"
    assert service.reusable_artifact("Other") is not None  # its file is current: no new run
    assert len([r for r in service.list_history() if not r.source_log_id]) == 1


def test_a_worker_start_removes_part_files_of_runs_that_are_over(
    tmp_path: Path, isolated_home: Path
) -> None:
    from tuiexport import config

    path = tmp_path / "parts.sqlite"
    make_catalog(path, 50)
    setup.prepare_database(path, load_sample=False)
    done = service.run_export("Small")
    folder = config.artifacts_dir() / done.export_id
    over = folder / f".Small_20261202-120000_{done.log_id}.json.{done.log_id}.part"
    manifest_part = folder / f"{done.log_id}.new.0.part"
    unknown = folder / ".something.ZZZZZZZZZZ.part"
    for p in (over, manifest_part, unknown):
        p.write_bytes(b"left by a killed process")
    assert service.remove_orphan_parts() == 2
    assert not over.exists() and not manifest_part.exists()
    assert unknown.exists()  # names no run: not ours to remove
