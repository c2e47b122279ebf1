"""Runs whose files live in an S3-compatible object store (issue 13, part 1), against the real
radosgw of tests/s3_cluster.py: a run streams into the store and is published by its history
row; the share server serves the object (ETag, 304, ranges, digest) from any host, with an empty
artifacts folder; retention deletes objects; a cancelled or invalid run leaves no object and no
pending upload. Skipped with a sentence where Ceph's binaries are missing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.server_helpers import TEST_LIMITS, Served
from tests.shared_catalog import make_catalog
from tests.test_storage import BUCKET, aws_env, s3_client  # noqa: F401 (fixtures)
from tuiexport import config, service, setup
from tuiexport import db as dbmod
from tuiexport.exporters import validate
from tuiexport.management import apikeys
from tuiexport.models import Run
from tuiexport.server import start_server


@dataclass
class Bucket:
    client: Any
    prefix: str

    def objects(self, manifests: bool = False) -> dict[str, bytes]:
        """The files of runs under the test's prefix (or their fingerprint manifests), by key
        below it."""
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        return {
            o["Key"].removeprefix(self.prefix + "/"): self.client.get_object(
                Bucket=BUCKET, Key=o["Key"]
            )["Body"].read()
            for o in listed.get("Contents", [])
            if o["Key"].endswith(".fingerprints") == manifests
        }

    def uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted."""
        pending = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [u["Key"] for u in pending.get("Uploads", [])]

    def url_of(self, key: str) -> str:
        return f"s3://{BUCKET}/{self.prefix}/{key}"


@pytest.fixture
def bucket(aws_env, s3_client, monkeypatch):  # noqa: F811 (fixtures imported above)
    """``artifacts_url`` set to a prefix of this test's own in the radosgw's bucket."""
    prefix = f"runs-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TUIEXPORT_ARTIFACTS_URL", f"s3://{BUCKET}/{prefix}")
    config.reset_settings()
    return Bucket(s3_client, prefix)


@pytest.fixture
def catalog(bucket, tmp_path):
    """A demo catalog of 6,000 products (its "Big" JSON Lines export: about 8 MB)."""
    path = tmp_path / "catalog.sqlite"
    make_catalog(path, 6000)
    setup.prepare_database(path, load_sample=False)
    yield path
    dbmod.close_database()


@pytest.fixture
def served(catalog):
    exports = {d.name: d for d in service.list_definitions()}
    _, key = apikeys.create_key("tests")
    handle = start_server("127.0.0.1", 0, access_log=lambda line: None, limits=TEST_LIMITS)
    try:
        yield Served(handle, [], exports, key)
    finally:
        handle.stop(grace=0.5)


def _files_in(folder: Path) -> list[str]:
    """The files of a run in an artifacts folder (fingerprint manifests are kept there)."""
    if not folder.exists():
        return []
    return [
        p.name for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".fingerprints")
    ]


def _newest(name: str) -> service.RunView:
    export_id = service.get_definition(name).export_id
    return next(r for r in service.list_history(export_id=export_id) if r.artifact_kept)


def _digest(data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data)
    return f'"{sha.hexdigest()}"', f"sha-256=:{base64.b64encode(sha.digest()).decode()}:"


def test_share_downloads_are_served_from_the_object_store(bucket, served):
    status, head, body = served.request("GET", served.share("Big"))
    assert status == 200, body
    assert len(body) > 4 << 20  # above one read; streamed through
    run = _newest("Big")
    key = run.artifact_path.removeprefix(f"s3://{BUCKET}/{bucket.prefix}/")
    assert run.artifact_path == bucket.url_of(key)
    assert bucket.objects() == {key: body}, "the store holds the file, byte for byte"
    assert bucket.uploads() == []
    assert _files_in(config.artifacts_dir()) == [], "no copy of it on this host's disk"
    etag, digest = _digest(body)
    assert head["etag"] == etag and head["repr-digest"] == digest
    assert head["content-length"] == str(len(body))

    # The next request serves the published object (no second run), the same way.
    status, again, second = served.request("GET", served.share("Big"))
    assert status == 200 and second == body and again["etag"] == etag
    assert len([r for r in service.list_history() if not r.source_log_id]) == 1
    status, _, nothing = served.request("GET", served.share("Big"), {"If-None-Match": etag})
    assert status == 304 and nothing == b""
    status, part_head, part = served.request("GET", served.share("Big"), {"Range": "bytes=1000-"})
    assert status == 206 and part == body[1000:]
    assert part_head["content-range"] == f"bytes 1000-{len(body) - 1}/{len(body)}"
    status, _, middle = served.request(
        "GET", served.share("Big"), {"Range": "bytes=5000000-5000099", "If-Range": etag}
    )
    assert status == 206 and middle == body[5_000_000:5_000_100]
    stale = {"Range": "bytes=0-9", "If-Range": '"another-file"'}
    status, _, whole = served.request("GET", served.share("Big"), stale)
    assert status == 200 and whole == body
    status, head416, _ = served.request(
        "GET", served.share("Big"), {"Range": f"bytes={len(body)}-"}
    )
    assert status == 416 and head416["content-range"] == f"bytes */{len(body)}"
    status, head_only, empty = served.request("HEAD", served.share("Big"))
    assert status == 200 and empty == b"" and head_only["content-length"] == str(len(body))

    # A small file (read whole from the store, kept with the share cache) likewise.
    selection = service.list_selections()[0]
    service.create_definition("Tiny", selection_id=selection.id, output="csv", product_limit=50)
    served.exports["Tiny"] = service.get_definition("Tiny")
    status, small_head, small = served.request("GET", served.share("Tiny"))
    assert status == 200 and 0 < len(small) < 256 << 10
    assert small_head["etag"] == _digest(small)[0]
    tiny = _newest("Tiny")
    assert bucket.objects()[tiny.artifact_path.removeprefix(bucket.url_of(""))] == small
    status, again_head, small_again = served.request("GET", served.share("Tiny"))
    assert status == 200 and small_again == small and again_head["x-log-id"] != tiny.log_id


def test_an_api_run_and_its_file_from_the_object_store(bucket, served):
    export_id = served.exports["Other"].export_id
    status, _, started = served.api("POST", f"/api/v1/exports/{export_id}/runs")
    assert status == 202
    log_id = started["logId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, run = served.api("GET", f"/api/v1/runs/{log_id}")
        if run["status"] != "running":
            break
        time.sleep(0.1)
    assert run["status"] == "success"
    # The history names the object; the API shows its file name, never the bucket or key.
    assert any("s3://" in m for m in service.get_run(log_id).messages)
    assert run["messages"] and "s3://" not in json.dumps(run["messages"])
    assert bucket.prefix not in json.dumps(run["messages"])
    status, head, body = served.api("GET", f"/api/v1/runs/{log_id}/file")
    assert status == 200
    assert list(bucket.objects().values()) == [body]
    assert head["etag"] == f'"{run["sha256"]}"' == _digest(body)[0]
    again = {"If-None-Match": head["etag"]}
    status, _, _ = served.api("GET", f"/api/v1/runs/{log_id}/file", headers=again)
    assert status == 304
    status, _, tail = served.api(
        "GET", f"/api/v1/runs/{log_id}/file", headers={"Range": "bytes=-100"}
    )
    assert status == 206 and tail == body[-100:]
    assert _files_in(config.artifacts_dir()) == []


def test_a_server_with_an_empty_folder_serves_what_another_process_wrote(
    bucket, catalog, tmp_path, monkeypatch
):
    """Another host (here: a process with its own artifacts folder) ran the export into the
    store; this server has never seen the file and serves it, by share URL and by log ID."""
    other_home = tmp_path / "other-host"
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", str(catalog), "--run", "Big", "-q"],
        env={**os.environ, "TUIEXPORT_HOME": str(other_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [(key, data)] = bucket.objects().items()
    assert done.stdout.strip() == bucket.url_of(key)  # what --run prints: where the file is
    assert _files_in(other_home / "artifacts") == []

    dbmod.close_database()
    setup.prepare_database(catalog, load_sample=False)
    assert not config.artifacts_dir().exists() or _files_in(config.artifacts_dir()) == []
    [run] = [r for r in service.list_history() if not r.source_log_id]
    exports = {d.name: d for d in service.list_definitions()}
    _, api_key = apikeys.create_key("tests")
    handle = start_server("127.0.0.1", 0, access_log=lambda line: None, limits=TEST_LIMITS)
    try:
        served = Served(handle, [], exports, api_key)
        status, head, body = served.api("GET", f"/api/v1/runs/{run.log_id}/file")
        assert status == 200 and body == data and head["etag"] == f'"{run.sha256}"'
        status, head, shared = served.request("GET", served.share("Big"))
        assert status == 200 and shared == data and head["etag"] == f'"{run.sha256}"'
        assert len([r for r in service.list_history() if not r.source_log_id]) == 1, "no second run"
        # Its fingerprint manifest is beside it in the store: a delta from it is answered here.
        assert list(bucket.objects(manifests=True)) == [
            f"{run.export_id}/{run.log_id}.fingerprints"
        ]
        status, head, delta = served.request("GET", served.share("Big") + f"&since={run.log_id}")
        assert status == 200, delta
        assert head["x-log-id"] != run.log_id and delta.count(b"\n") <= 2  # nothing changed
        # The same run with its file in another host's folder: not "removed", but elsewhere.
        Run.update(artifact_path=str(other_home / "artifacts" / key), host="other-host").where(
            Run.log_id == run.log_id
        ).execute()
        status, _, problem = served.api("GET", f"/api/v1/runs/{run.log_id}/file")
        assert status == 503, problem
        assert "made on the host other-host" in problem["detail"]
        assert "removed" not in problem["detail"]
    finally:
        handle.stop(grace=0.5)


def test_retention_deletes_old_objects(bucket, served, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_KEEP_ARTIFACTS", "2")
    config.reset_settings()
    made = [service.run_export("Other") for _ in range(4)]
    assert all(r.status == "success" for r in made)
    keys = {r.log_id: r.artifact_path.removeprefix(bucket.url_of("")) for r in made}
    assert sorted(bucket.objects()) == sorted(keys[r.log_id] for r in made[2:])
    export_id = made[0].export_id
    assert sorted(bucket.objects(manifests=True)) == sorted(
        f"{export_id}/{r.log_id}.fingerprints" for r in made[2:]
    ), "the manifests of removed runs go with them"
    status, _, problem = served.api("GET", f"/api/v1/runs/{made[0].log_id}/file")
    assert status == 410
    assert problem["detail"] == (
        f"The file of run {made[0].log_id} was removed (only the newest 2 per export are "
        "kept); start a new run."
    )
    status, _, body = served.api("GET", f"/api/v1/runs/{made[-1].log_id}/file")
    assert status == 200 and body == bucket.objects()[keys[made[-1].log_id]]


def test_a_cancelled_run_leaves_no_object_and_no_pending_upload(bucket, tmp_path):
    path = tmp_path / "big.sqlite"
    make_catalog(path, 15000)  # "Big": about 20 MB, several parts of 8 MiB
    setup.prepare_database(path, load_sample=False)
    seen_upload = []
    last_look = [0.0]

    def cancel() -> bool:
        # Cancel once a multipart upload is under way in the store (looked at every 50 ms).
        if not seen_upload and time.monotonic() - last_look[0] > 0.05:
            last_look[0] = time.monotonic()
            seen_upload.extend(bucket.uploads())
        return bool(seen_upload)

    run = service.run_export("Big", cancel=cancel)
    assert seen_upload, "the run never began a multipart upload"
    assert run.status == "cancelled"
    assert bucket.objects() == {} and bucket.uploads() == []
    assert _files_in(config.artifacts_dir()) == []


def test_a_run_that_fails_validation_leaves_no_object(bucket, catalog, monkeypatch):
    """The upload is complete when the spool is validated: a failure deletes the object (it
    was never published: only the run's row could have)."""

    def damage(spool: Path) -> None:
        with open(spool, "r+b") as f:
            f.truncate(f.seek(0, os.SEEK_END) // 2)

    monkeypatch.setattr(validate, "before_validate", damage)
    run = service.run_export("Other")
    assert run.status == "failed"
    assert bucket.objects() == {} and bucket.uploads() == []
    assert _files_in(config.artifacts_dir()) == []


def test_a_redirect_to_a_presigned_url_where_allowed(bucket, served, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_ARTIFACTS_REDIRECT", "60")
    config.reset_settings()
    run = service.run_export("Other")
    status, head, body = served.request("GET", served.share("Other"))
    assert status == 307 and body == b""
    assert head["location"].startswith(os.environ["AWS_ENDPOINT_URL"])
    with urllib.request.urlopen(head["location"], timeout=10) as answer:
        fetched = answer.read()
        assert "attachment" in answer.headers["Content-Disposition"]
    assert fetched == bucket.objects()[run.artifact_path.removeprefix(bucket.url_of(""))]
    status, _, _ = served.request("GET", served.share("Other"), {"If-None-Match": head["etag"]})
    assert status == 304  # conditional requests are still answered by the server
    status, _, part = served.request("GET", served.share("Other"), {"Range": "bytes=0-9"})
    assert status == 206 and part == fetched[:10]  # ranges too: streamed


def test_a_killed_run_leaves_no_pending_upload_after_the_next_start(bucket, tmp_path):
    """kill -9 in the middle of the upload: the next start marks the run interrupted and aborts
    the multipart upload it left (the bucket's lifecycle rule is only the safety net)."""
    path = tmp_path / "big.sqlite"
    make_catalog(path, 15000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", str(path), "--run", "Big", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not bucket.uploads() and proc.poll() is None:
            time.sleep(0.05)
        assert bucket.uploads(), "the run never began a multipart upload"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    setup.prepare_database(path, load_sample=False)
    assert service.mark_interrupted() == 1  # what the next start (CLI, server, TUI) does first
    [run] = service.list_history()
    assert run.status == "interrupted"
    assert bucket.uploads() == [] and bucket.objects() == {}


def test_a_held_run_waits_in_the_store_until_approved_or_discarded(bucket, tmp_path):
    from tests.test_gate import shrink_catalog

    path = tmp_path / "gate.sqlite"
    make_catalog(path, 200)
    setup.prepare_database(path, load_sample=False)
    first = service.run_export("Big")
    shrink_catalog()
    held = service.run_export("Big")
    assert held.status == "held", held.messages
    key = held.artifact_path.removeprefix(bucket.url_of(""))
    assert held.artifact_path == bucket.url_of(key) and key in bucket.objects()
    assert service.reusable_artifact("Big").log_id == first.log_id  # the previous file serves
    approved = service.approve_run(held.log_id, by="tests")
    assert approved.status == "success" and approved.artifact_path == held.artifact_path
    assert service.reusable_artifact("Big").log_id == held.log_id

    shrink_catalog()
    again = service.run_export("Big")
    assert again.status == "held"
    service.discard_run(again.log_id, by="tests")
    assert again.artifact_path.removeprefix(bucket.url_of("")) not in bucket.objects()
    assert service.reusable_artifact("Big").log_id == held.log_id


def test_run_to_stdout_reads_the_file_back_from_the_store(bucket, catalog):
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", str(catalog), "--run", "Other", "-o", "-"],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(bucket.objects().values()) == [done.stdout]
