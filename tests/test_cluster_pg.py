"""Several tuiexport processes on one PostgreSQL database (issue 13): runs are a queue that
workers claim, the rules hold across processes, the share cache hears other processes'
changes. Real servers and workers as subprocesses, a real throw-away PostgreSQL cluster."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import api, balancer, processes, request, trigger_and_fetch, wait
from tests.pg_cluster import Cluster, running_cluster
from tests.shared_catalog import make_catalog, tx
from tuiexport import db as dbmod
from tuiexport import service, setup
from tuiexport.management import apikeys
from tuiexport.models import Run
from tuiexport.server import start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as found:
        yield found


@pytest.fixture
def pg(cluster: Cluster) -> Iterator[str]:
    """A fresh database on the cluster with the demo exports, and an API key."""
    import psycopg2

    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    admin = psycopg2.connect(cluster.url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = cluster.url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        dbmod.close_database()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def _catalog(url: str, products: int = 300) -> tuple[dict[str, service.DefinitionView], str]:
    make_catalog(url, products)
    setup.prepare_database(url, load_sample=False)
    exports = {d.name: d for d in service.list_definitions()}
    _, key = apikeys.create_key("cluster")
    return exports, key


def _server_runs(export_id: str) -> list[service.RunView]:
    """The runs of an export (not the downloads served from them), oldest first."""
    return [r for r in reversed(service.list_history(export_id=export_id)) if not r.source_log_id]


def test_sixteen_triggers_from_two_servers_make_one_run_that_a_worker_claims(
    pg: str, isolated_home: Path
) -> None:
    exports, key = _catalog(pg)
    big = exports["Big"]
    with processes(pg, isolated_home) as cluster:
        servers = [cluster.serve("--no-exports"), cluster.serve("--no-exports")]
        answers: list[tuple[int, dict[str, str], object]] = []
        go = threading.Event()

        def trigger(index: int) -> None:
            go.wait()
            server = servers[index % 2]
            answers.append(api(f"{server.url}/api/v1/exports/{big.export_id}/runs", key, "POST"))

        threads = [threading.Thread(target=trigger, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join(60)
        assert [a[0] for a in answers] == [202] * 16, answers
        log_ids = {a[2]["logId"] for a in answers}  # type: ignore[index]
        assert len(log_ids) == 1, answers
        (log_id,) = log_ids
        assert {a[2]["status"] for a in answers} == {"queued"}  # type: ignore[index]
        worker = cluster.worker()  # only now: nothing ran while the triggers came
        done = wait(
            "the run's end",
            lambda: (r := service.get_run(log_id)).status not in ("queued", "running") and r,
        )
        assert done.status == "success", done.messages
        assert Run.get(Run.log_id == log_id).pid == worker.pid  # the worker ran it, no server
        for server in servers:  # the file through either server
            status, _, body = request(
                f"{server.url}/api/v1/runs/{log_id}/file",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert status == 200 and hashlib.sha256(body).hexdigest() == done.sha256
    runs = _server_runs(big.export_id)
    assert [r.log_id for r in runs] == [log_id]


def test_max_concurrent_runs_is_counted_across_servers(pg: str, isolated_home: Path) -> None:
    exports, key = _catalog(pg)
    # No worker: a queued run stays queued (its server keeps it alive) and counts.
    with processes(pg, isolated_home, TUIEXPORT_MAX_CONCURRENT_RUNS="1") as cluster:
        first, second = cluster.serve("--no-exports"), cluster.serve("--no-exports")
        status, _, body = api(
            f"{first.url}/api/v1/exports/{exports['Big'].export_id}/runs", key, "POST"
        )
        assert status == 202 and body["status"] == "queued"
        status, head, problem = api(
            f"{second.url}/api/v1/exports/{exports['Cat'].export_id}/runs", key, "POST"
        )
        assert status == 503 and head["retry-after"] == "5", problem
        assert "1 exports are running or queued" in problem["detail"]
        # The same export on the other server follows the queued run instead.
        status, _, again = api(
            f"{second.url}/api/v1/exports/{exports['Big'].export_id}/runs", key, "POST"
        )
        assert status == 202 and again["logId"] == body["logId"]
        # Once a worker ran it, the slot is free again.
        cluster.worker()
        wait("the run's end", lambda: service.get_run(body["logId"]).status == "success")
        status, _, _ = api(
            f"{second.url}/api/v1/exports/{exports['Cat'].export_id}/runs", key, "POST"
        )
        assert status == 202


def test_a_killed_workers_run_becomes_interrupted_and_the_next_request_runs_again(
    pg: str, isolated_home: Path
) -> None:
    exports, key = _catalog(pg, 3000)
    big = exports["Big"]
    share = service.share_path(big)
    with processes(pg, isolated_home) as cluster:
        server = cluster.serve("--no-exports")
        worker = cluster.worker()
        status, _, body = api(f"{server.url}/api/v1/exports/{big.export_id}/runs", key, "POST")
        assert status == 202
        first = body["logId"]
        wait("the part file", lambda: list(isolated_home.glob("artifacts/*/.*.part")), 60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.popen.wait(10)
        assert service.get_run(first).status == "running"  # nobody noticed yet
        cluster.worker()
        # A share request: the dead run is not followed; it is marked and a new one runs.
        status, head, data = request(server.url + share)
        assert status == 200, data[:300]
        killed = service.get_run(first)
        assert killed.status == "interrupted", killed.messages
        assert head["x-log-id"] != first
        assert not list(isolated_home.glob("artifacts/*/.*.part"))
    runs = _server_runs(big.export_id)
    assert [r.status for r in runs] == ["interrupted", "success"]


def test_the_share_cache_on_postgresql_sees_a_change_made_by_another_process_at_once(
    pg: str, isolated_home: Path
) -> None:
    exports, _ = _catalog(pg)
    small = exports["Small"]
    handle = start_server("127.0.0.1", 0, access_log=None)
    try:
        url = f"http://127.0.0.1:{handle.port}"
        status, head, _ = request(url + service.share_path(small))
        assert status == 200
        status, _, _ = request(
            url + service.share_path(small), headers={"If-None-Match": head["etag"]}
        )
        assert status == 304
        # Cached: the lookups of this export give the state the first one built (one query
        # of the change counter each, not the handful of the state).
        cached = handle.app.shares.resolve(small.export_id)
        assert cached is not None and handle.app.shares.resolve(small.export_id) is cached
        # Another process rotates the token: the very next request sees it.
        rotated = tx(isolated_home, "--db", pg, "links", "rotate", small.export_id, "Default")
        assert rotated.returncode == 0, rotated.stderr
        assert request(url + service.share_path(small))[0] == 404
        assert handle.app.shares.resolve(small.export_id) is not cached
        # A heartbeat or a served download changes nothing a share URL serves: still cached.
        fresh = handle.app.shares.resolve(small.export_id)
        assert fresh is not None
        (link,) = fresh.definition.links
        assert request(url + service.link_path(link))[0] == 200
        handle.flush_history()
        assert handle.app.shares.resolve(small.export_id) is fresh
    finally:
        handle.stop(grace=0.5)


def test_behind_a_balancer_two_servers_and_a_worker_answer_as_one(
    pg: str, isolated_home: Path
) -> None:
    exports, key = _catalog(pg)
    small, cat = exports["Small"], exports["Cat"]
    share = service.share_path(small)
    with processes(pg, isolated_home) as cluster:
        servers = [cluster.serve("--no-exports"), cluster.serve("--no-exports")]
        cluster.worker()
        with balancer([s.url for s in servers]) as front:
            downloads = [request(front + share) for _ in range(50)]
            assert {d[0] for d in downloads} == {200}
            assert len({d[2] for d in downloads}) == 1  # byte-identical
            (etag,) = {d[1]["etag"] for d in downloads}  # one ETag, whichever server answered
            for target in [front, front, *(s.url for s in servers)]:
                status, _, body = request(target + share, headers={"If-None-Match": etag})
                assert (status, body) == (304, b"")
            # A trigger through the balancer; its status and file through it (round robin: the
            # requests alternate between the servers).
            done, files = trigger_and_fetch(front, cat.export_id, key)
            log_id = done["logId"]
            assert done["status"] in ("success", "warning"), done["messages"]
            assert [f[0] for f in files] == [200, 200]
            assert {hashlib.sha256(f[2]).hexdigest() for f in files} == {done["sha256"]}
    # Both servers answered downloads and the run's file.
    served = Run.select().where(Run.export_id == small.export_id, Run.source_log_id != "")
    assert {r.pid for r in served} == {s.pid for s in servers}
    for server in servers:
        assert f"/api/v1/runs/{log_id}/file" in server.output()
    assert [r.log_id for r in _server_runs(cat.export_id)] == [log_id]


def test_a_server_that_runs_exports_claims_the_runs_another_server_queued(
    pg: str, isolated_home: Path
) -> None:
    exports, key = _catalog(pg)
    with processes(pg, isolated_home) as cluster:
        queuing, running = cluster.serve("--no-exports"), cluster.serve()
        status, _, body = api(
            f"{queuing.url}/api/v1/exports/{exports['Big'].export_id}/runs", key, "POST"
        )
        assert status == 202
        done = wait(
            "the run's end",
            lambda: (r := service.get_run(body["logId"])).status not in ("queued", "running") and r,
        )
        assert done.status == "success", done.messages
        assert Run.get(Run.log_id == body["logId"]).pid == running.pid
