"""Issue 13, item 5: the cluster for real, with its artifacts in the object store. A throw-away
PostgreSQL, a radosgw on loopback (tests/s3_cluster.py), two ``tuiexport serve --no-exports``
and one ``tuiexport worker`` behind nginx (round robin), each process with a home folder of its
own: nothing is shared but the database and the bucket. One cluster for the module; the tests
stop, kill and restart its parts (the worker, PostgreSQL) and leave it running again.

Skipped with a sentence where PostgreSQL, nginx or Ceph's binaries are missing (``.ci/run``
installs them)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import (
    Process,
    Processes,
    api,
    balancer,
    make_bucket,
    processes,
    request,
    s3_env,
    trigger_and_fetch,
    wait,
)
from tests.pg_cluster import Cluster, running_cluster
from tests.shared_catalog import make_catalog
from tuiexport import config, service, setup
from tuiexport import db as dbmod
from tuiexport.engine import REEVALUATED
from tuiexport.management import apikeys
from tuiexport.models import Run

pytestmark = pytest.mark.slow

BUCKET = "tuiexport-cluster"


@dataclass
class S3Cluster:
    pg: Cluster
    client: Any
    prefix: str
    env: dict[str, str]
    procs: Processes
    root: Path
    servers: list[Process]
    front: str
    exports: dict[str, service.DefinitionView]
    key: str
    worker: Process | None = None
    worker_home: Path | None = None
    homes: list[Path] = field(default_factory=list)

    def home(self, name: str) -> str:
        """A home folder of its own for a process: no artifacts folder is shared."""
        found = self.root / f"home-{name}-{len(self.homes)}"
        found.mkdir()
        self.homes.append(found)
        return str(found)

    def start_worker(self, home: str | None = None) -> Process:
        """A worker (in a new home folder, or in ``home``: a restart on the same host)."""
        assert self.worker is None or self.worker.popen.poll() is not None
        self.worker_home = Path(home or self.home("worker"))
        self.worker = self.procs.worker(TUIEXPORT_HOME=str(self.worker_home))
        return self.worker

    def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.stop()
        self.worker = None

    def key_of(self, run: service.RunView) -> str:
        """The run's object key in the bucket."""
        prefix = f"s3://{BUCKET}/"
        assert run.artifact_path.startswith(prefix + self.prefix + "/"), run.artifact_path
        return run.artifact_path.removeprefix(prefix)

    def objects(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [o["Key"] for o in listed.get("Contents", [])]

    def uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted."""
        pending = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [u["Key"] for u in pending.get("Uploads", [])]

    def local_files(self) -> list[Path]:
        """Files of runs in any process's home folder (not the fingerprint manifests, which
        a worker keeps a local copy of beside the one in the store)."""
        return [
            p
            for h in self.homes
            for p in (h / "artifacts").rglob("*")
            if p.is_file() and p.suffix != ".fingerprints"
        ]

    def share(self, name: str) -> str:
        return self.front + service.share_path(self.exports[name])

    def runs_of(self, name: str) -> list[service.RunView]:
        """The runs of an export (not the downloads served from them), oldest first."""
        export_id = self.exports[name].export_id
        every = service.list_history(export_id=export_id)
        return [r for r in reversed(every) if not r.source_log_id]

    def ended(self, log_id: str, timeout: float = 120) -> service.RunView:
        return wait(
            f"the end of run {log_id}",
            lambda: (r := service.get_run(log_id)).status not in ("queued", "running") and r,
            timeout,
        )

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.procs.started)


@pytest.fixture(scope="module")
def s3cluster(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Cluster]:
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'tuiexport[s3]')")
    root = tmp_path_factory.mktemp("s3cluster")
    prefix = f"cluster-{uuid.uuid4().hex[:10]}"
    client = make_bucket(s3_server, BUCKET)
    env = s3_env(s3_server, f"s3://{BUCKET}/{prefix}", root)
    with pytest.MonkeyPatch.context() as mp, running_cluster() as pg:
        for name in [n for n in os.environ if n.startswith("TUIEXPORT_")]:
            mp.delenv(name)
        mp.setenv("TUIEXPORT_HOME", str(root / "home-tests"))
        for name, value in env.items():
            mp.setenv(name, value)
        config.reset_settings()
        # "Big": about 20 MB of JSON Lines, several parts of the multipart upload.
        make_catalog(pg.url, 15000)
        setup.prepare_database(pg.url, load_sample=False)
        exports = {d.name: d for d in service.list_definitions()}
        _, key = apikeys.create_key("cluster")
        dbmod.close_database()
        with processes(pg.url, root, **env) as procs:
            found = S3Cluster(pg, client, prefix, env, procs, root, [], "", exports, key)
            found.servers = [
                procs.serve("--no-exports", TUIEXPORT_HOME=found.home("serve")) for _ in range(2)
            ]
            found.start_worker()
            with balancer([s.url for s in found.servers]) as front:
                found.front = front
                yield found
        config.reset_settings()


@pytest.fixture(autouse=True)
def _this_process(s3cluster: S3Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test's own process reads the cluster's database and store as any host would; the
    cluster is left with its worker running, whatever the test did."""
    for name, value in s3cluster.env.items():
        monkeypatch.setenv(name, value)
    config.reset_settings()
    setup.prepare_database(s3cluster.pg.url, load_sample=False)
    yield
    dbmod.close_database()
    if s3cluster.worker is None or s3cluster.worker.popen.poll() is not None:
        s3cluster.worker = None
        s3cluster.start_worker()


def _pid(log_id: str) -> int:
    """The process that ran a run."""
    pid: int = Run.get(Run.log_id == log_id).pid
    return pid


def _fingerprint(log_id: str) -> str:
    """The state (definition, selection, catalog) a run is of."""
    found: str = Run.get(Run.log_id == log_id).fingerprint
    return found


def _problem(answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    status, head, body = answer
    assert head["content-type"] == "application/problem+json", (status, head, body[:300])
    problem: dict[str, Any] = json.loads(body)
    return problem


def test_fifty_downloads_from_the_store_through_the_balancer_one_etag_and_304s(
    s3cluster: S3Cluster,
) -> None:
    c = s3cluster
    downloads = [request(c.share("Small")) for _ in range(50)]
    assert {d[0] for d in downloads} == {200}, downloads[0][2][:300]
    assert len({d[2] for d in downloads}) == 1  # byte-identical
    (etag,) = {d[1]["etag"] for d in downloads}  # one ETag, whichever server answered
    (run,) = c.runs_of("Small")  # one run, by the worker, into the bucket
    assert c.key_of(run) in c.objects() and c.uploads() == []
    assert etag == f'"{run.sha256}"' == f'"{hashlib.sha256(downloads[0][2]).hexdigest()}"'
    assert c.local_files() == [], "no host keeps a copy: the file is in the bucket only"
    for target in [c.front, c.front, *(s.url for s in c.servers)]:
        status, _, body = request(
            target + service.share_path(c.exports["Small"]), headers={"If-None-Match": etag}
        )
        assert (status, body) == (304, b"")
    served = Run.select().where(Run.export_id == run.export_id, Run.source_log_id != "")
    assert {r.pid for r in served} == {s.pid for s in c.servers}  # both servers answered

    # A trigger through the balancer; its status and file through it: round robin sends the
    # requests to both servers, neither of which ran it.
    done, files = trigger_and_fetch(c.front, c.exports["Cat"].export_id, c.key)
    log_id = done["logId"]
    assert done["status"] in ("success", "warning"), done["messages"]
    assert [f[0] for f in files] == [200, 200]
    assert {hashlib.sha256(f[2]).hexdigest() for f in files} == {done["sha256"]}
    assert {f[1]["etag"] for f in files} == {f'"{done["sha256"]}"'}
    for server in c.servers:  # (the access log is written a moment late)
        wait(
            "the file request in each server's log",
            lambda s=server: f"/api/v1/runs/{log_id}/file" in s.output(),
            10,
        )
    assert c.key_of(service.get_run(log_id)) in c.objects()
    assert c.local_files() == []


def test_sixteen_triggers_make_one_queued_run_a_download_gets_503_until_a_worker_takes_it(
    s3cluster: S3Cluster,
) -> None:
    c = s3cluster
    c.stop_worker()  # no export process: the run stays queued
    big = c.exports["Big"]
    before = {r.log_id for r in c.runs_of("Big")}
    answers: list[tuple[int, dict[str, str], Any]] = []
    go = threading.Event()

    def trigger() -> None:
        go.wait()
        answers.append(api(f"{c.front}/api/v1/exports/{big.export_id}/runs", c.key, "POST"))

    threads = [threading.Thread(target=trigger) for _ in range(16)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(60)
    assert [a[0] for a in answers] == [202] * 16, answers
    (log_id,) = {a[2]["logId"] for a in answers}
    assert {a[2]["status"] for a in answers} == {"queued"}

    # A share download of it, on a server whose wait budget is short: 503 + Retry-After, and
    # the run stays queued (the next request follows it again; no second run).
    impatient = c.procs.serve(
        "--no-exports", TUIEXPORT_HOME=c.home("serve"), TUIEXPORT_QUEUE_WAIT="2"
    )
    try:
        answer = request(impatient.url + service.share_path(big))
        problem = _problem(answer)
        assert answer[0] == 503 and answer[1]["retry-after"] == "5", problem
        assert problem["type"].endswith("#queued") and problem["logId"] == log_id, problem
        assert "no export process took it within 2 seconds" in problem["detail"]
        assert service.get_run(log_id).status == "queued"
        assert api(f"{c.front}/api/v1/runs/{log_id}", c.key)[2]["status"] == "queued"
    finally:
        impatient.stop()

    # A worker appears: it claims the queued run; the next download serves that run's file.
    worker = c.start_worker()
    done = c.ended(log_id)
    assert done.status == "success", done.messages
    assert _pid(log_id) == worker.pid
    status, head, body = request(c.share("Big"))
    assert status == 200 and head["etag"] == f'"{done.sha256}"'  # that run's file
    assert hashlib.sha256(body).hexdigest() == done.sha256
    assert [r.log_id for r in c.runs_of("Big") if r.log_id not in before] == [log_id]


def test_a_queued_run_runs_the_definition_as_it_is_when_a_worker_takes_it(
    s3cluster: S3Cluster,
) -> None:
    c = s3cluster
    c.stop_worker()
    cat, other = c.exports["Cat"], c.exports["Other"]
    first = api(f"{c.front}/api/v1/exports/{cat.export_id}/runs", c.key, "POST")[2]
    second = api(f"{c.front}/api/v1/exports/{other.export_id}/runs", c.key, "POST")[2]
    assert first["status"] == second["status"] == "queued"
    asked = {r: _fingerprint(r) for r in (first["logId"], second["logId"])}

    # Both definitions change while their runs wait.
    service.update_definition("Cat", long_descriptions=True)
    service.update_definition("Other", product_limit=30, output="jsonl")
    # A request for the new state of "Other" follows its queued run (no second run), which
    # now names that state: format, file name, fingerprint.
    again = api(f"{c.front}/api/v1/exports/{other.export_id}/runs", c.key, "POST")[2]
    assert again["logId"] == second["logId"]
    queued = service.get_run(second["logId"])
    assert queued.status == "queued" and queued.output == "jsonl"
    assert queued.artifact_path.endswith(".jsonl")
    assert _fingerprint(queued.log_id) != asked[queued.log_id]
    assert REEVALUATED in queued.messages

    c.start_worker()
    for name, started in (("Cat", first), ("Other", second)):
        done = c.ended(started["logId"])
        assert done.status in ("success", "warning"), done.messages
        if name == "Other":
            assert done.product_count == 30 and done.output == "jsonl"
        assert REEVALUATED in done.messages
        assert _fingerprint(done.log_id) != asked[done.log_id]
        # Its file is current: a share download serves it, without running again.
        status, head, body = request(c.share(name))
        assert status == 200 and head["etag"] == f'"{done.sha256}"', body[:300]
        assert hashlib.sha256(body).hexdigest() == done.sha256
    assert [r.log_id for r in c.runs_of("Other")] == [second["logId"]]


def test_kill_9_of_the_worker_mid_upload_publishes_nothing_and_the_next_request_runs_again(
    s3cluster: S3Cluster,
) -> None:
    c = s3cluster
    big = c.exports["Big"]
    service.update_definition("Big", long_descriptions=True)  # a new state: a new run
    status, _, started = api(f"{c.front}/api/v1/exports/{big.export_id}/runs", c.key, "POST")
    assert status == 202, started
    killed_id = started["logId"]
    killed_key = c.key_of(service.get_run(killed_id))
    wait("the run's multipart upload", lambda: killed_key in c.uploads(), 90)
    assert c.worker is not None
    os.kill(c.worker.pid, signal.SIGKILL)
    c.worker.popen.wait(10)
    dead_home = c.worker_home
    assert dead_home is not None
    c.worker = None
    # Nobody noticed yet: the row says running, the upload is pending, nothing is published.
    assert service.get_run(killed_id).status == "running"
    assert killed_key in c.uploads() and killed_key not in c.objects()
    spool = [p for p in c.local_files() if killed_id in p.name]
    assert spool and all(p.is_relative_to(dead_home) for p in spool)  # its local spool

    c.start_worker()  # on "another host": a home of its own
    status, head, body = request(c.share("Big"))  # through the balancer
    assert status == 200, body[:300]
    killed = service.get_run(killed_id)
    assert killed.status == "interrupted", killed.messages
    assert killed.sha256 is None and not killed.artifact_kept
    assert head["x-log-id"] != killed_id
    again = service.get_run(head["x-log-id"])
    assert again.status == "success" and hashlib.sha256(body).hexdigest() == again.sha256
    # The killed run's upload was aborted; no object ever appeared at its key.
    assert killed_key not in c.uploads() and killed_key not in c.objects()
    assert c.key_of(again) in c.objects() and c.uploads() == []
    # The dead worker's spool is on its own disk, out of the others' reach, until a worker
    # starts there again.
    assert [p for p in c.local_files() if killed_id in p.name] == spool
    c.stop_worker()
    c.start_worker(str(dead_home))
    assert c.local_files() == []
    assert [r.status for r in c.runs_of("Big")][-2:] == ["interrupted", "success"]


def test_a_postgresql_restart_while_serving_is_503_then_recovers_without_restarts(
    s3cluster: S3Cluster,
) -> None:
    c = s3cluster
    small = request(c.share("Small"))
    assert small[0] == 200
    etag = small[1]["etag"]
    status_url = f"{c.front}/api/v1/runs/{small[1]['x-log-id']}"
    running = [p for p in c.procs.started if p.popen.poll() is None]
    dbmod.close_database()
    c.pg.stop()
    try:
        answers = {
            "share": request(c.share("Small")),
            "revalidation": request(c.share("Small"), headers={"If-None-Match": etag}),
            "status": request(status_url, headers={"Authorization": f"Bearer {c.key}"}),
            "trigger": request(
                f"{c.front}/api/v1/exports/{c.exports['Cat'].export_id}/runs",
                "POST",
                headers={"Authorization": f"Bearer {c.key}"},
            ),
            "health": request(c.front + "/healthz"),
        }
        for what, answer in answers.items():
            problem = _problem(answer)
            assert answer[0] == 503 and answer[1].get("retry-after") == "5", (what, problem)
            assert problem["type"].endswith("#database-unreachable"), (what, problem)
    finally:
        c.pg.start()
    assert "Traceback" not in c.logs()
    # Back: the same processes answer and run exports again.
    wait("a share download after the restart", lambda: request(c.share("Small"))[0] == 200, 60)
    setup.prepare_database(c.pg.url, load_sample=False)
    status, _, started = api(
        f"{c.front}/api/v1/exports/{c.exports['Cat'].export_id}/runs", c.key, "POST"
    )
    assert status == 202, started
    done = c.ended(started["logId"])
    assert done.status in ("success", "warning"), done.messages
    assert c.worker is not None and _pid(done.log_id) == c.worker.pid
    assert all(p.popen.poll() is None for p in running), "no process was restarted"
    assert request(c.share("Small"), headers={"If-None-Match": etag})[0] == 304
    assert "Traceback" not in c.logs()
