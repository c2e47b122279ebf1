"""The share server over real HTTP on loopback: downloads, caching, API, security, stop."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.server_helpers import path_of, served_fixture, streamed  # noqa: F401  (fixture)
from tuiexport import config, engine, service
from tuiexport.errors import UserError
from tuiexport.exporters.base import ExportJob
from tuiexport.management import apikeys
from tuiexport.models import Run
from tuiexport.server import files, start_server

FORMATS = ["standard-jsonl", "standard-csv", "standard-xml", "standard-json", "bmecat12-xml"]


def artifact_of(log_id: str) -> bytes:
    run = service.get_run(log_id)
    return Path(run.artifact_path).read_bytes()


def history_of(export_id: str):
    return service.list_history(export_id=export_id)


@pytest.mark.parametrize("name", FORMATS)
def test_share_url_serves_the_artifact_byte_for_byte(served, name):
    status, head, body = served.request("GET", served.share(name))
    assert status == 200, body
    runs = history_of(served.exports[name].export_id)
    assert len(runs) == 1 and runs[0].trigger == "api" and runs[0].api_version == "1.0"
    # BMEcat leaves out products without a price (the tiny catalog has two): a warning.
    assert runs[0].status == ("warning" if name == "bmecat12-xml" else "success"), runs[0].messages
    assert body == artifact_of(runs[0].log_id)
    assert hashlib.sha256(body).hexdigest() == runs[0].sha256
    assert head["x-log-id"] == runs[0].log_id
    assert head["content-disposition"].startswith(f'attachment; filename="{name}_')
    ext = {"jsonl": "jsonl", "csv": "zip", "xml": "xml", "json": "json"}[name.split("-")[1]]
    assert head["content-disposition"].endswith(f'.{ext}"')
    assert head["server"] == "tuiexport/1.0"

    # Unchanged definition and catalog: the same file again, no new run, one more history entry.
    status, head, again = served.request("GET", served.share(name))
    assert status == 200 and again == body
    assert head["content-length"] == str(len(body)) and head["etag"] == f'"{runs[0].sha256}"'
    runs = history_of(served.exports[name].export_id)
    assert (
        len(runs) == 2 and runs[0].log_id == head["x-log-id"] and runs[0].sha256 == runs[1].sha256
    )
    assert "nothing was run again" in runs[0].messages[0] and not runs[0].artifact_kept


def test_etag_304_last_modified_and_head(served):
    path = served.share("standard-jsonl")
    _, head, body = served.request("GET", path)
    _, head, body = served.request("GET", path)  # cached now: ETag and length known
    etag, modified = head["etag"], head["last-modified"]
    entries = len(history_of(served.exports["standard-jsonl"].export_id))

    status, h304, empty = served.request("GET", path, {"If-None-Match": etag})
    assert status == 304 and empty == b"" and h304["etag"] == etag
    status, _, _ = served.request("GET", path, {"If-None-Match": '"other", W/' + etag})
    assert status == 304
    status, _, _ = served.request("GET", path, {"If-Modified-Since": modified})
    assert status == 304
    status, _, again = served.request("GET", path, {"If-None-Match": '"something-else"'})
    assert status == 200 and again == body

    status, hhead, nothing = served.request("HEAD", path)
    assert status == 200 and nothing == b"" and hhead["content-length"] == str(len(body))
    assert hhead["etag"] == etag
    # 304 and HEAD serve no file, so they are no history entries; the one 200 above is.
    assert len(history_of(served.exports["standard-jsonl"].export_id)) == entries + 1


def test_head_on_a_stale_export_does_not_run_it(served):
    status, head, body = served.request("HEAD", served.share("standard-json"))
    assert status == 200 and body == b"" and head["content-type"] == "application/json"
    assert history_of(served.exports["standard-json"].export_id) == []


def test_gzip_when_accepted_but_never_for_zip(served):
    path = served.share("standard-xml")
    status, head, plain = served.request("GET", path)
    status, head, packed = served.request("GET", path, {"Accept-Encoding": "gzip"})
    assert status == 200 and head["content-encoding"] == "gzip" and head["etag"].endswith('-gz"')
    assert gzip.decompress(packed) == plain
    status, _, _ = served.request(
        "GET", path, {"If-None-Match": head["etag"], "Accept-Encoding": "gzip"}
    )
    assert status == 304
    status, head, same = served.request("GET", path, {"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in head and same == plain

    status, head, zipped = served.request(
        "GET", served.share("standard-csv"), {"Accept-Encoding": "gzip"}
    )
    assert status == 200 and "content-encoding" not in head and zipped[:2] == b"PK"


def test_a_running_export_streams_chunked_to_every_follower(served, monkeypatch):
    """While a run is in progress its part file is followed; all followers get the same bytes."""
    original = ExportJob.check
    monkeypatch.setattr(files, "HEADERS_AFTER", 0.3)

    def slow_check(self, written):
        time.sleep(files.HEADERS_AFTER + 0.4)  # longer than the server waits before it answers
        original(self, written)

    monkeypatch.setattr(ExportJob, "check", slow_check)
    path = streamed(served, "standard-jsonl")

    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: served.request("GET", path, {"Accept-Encoding": "identity"}), range(4)
            )
        )
    bodies = {r[2] for r in results}
    assert all(r[0] == 200 for r in results) and len(bodies) == 1
    assert any(r[1].get("transfer-encoding") == "chunked" for r in results)
    runs = history_of(served.exports["standard-jsonl"].export_id)
    produced = [r for r in runs if r.artifact_kept]
    assert len(produced) == 1, "one run serves every concurrent request"
    assert len(runs) == 4 and {r.sha256 for r in runs} == {produced[0].sha256}
    assert bodies.pop() == artifact_of(produced[0].log_id)


def test_32_parallel_downloads_of_one_export_and_8_of_different_ones(served, monkeypatch):
    path = served.share("standard-json")
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: served.request("GET", path), range(32)))
    assert [r[0] for r in results] == [200] * 32
    assert len({r[2] for r in results}) == 1
    runs = history_of(served.exports["standard-json"].export_id)
    assert len(runs) == 32 and len({r.log_id for r in runs}) == 32
    assert sum(r.artifact_kept for r in runs) == 1 and {r.status for r in runs} == {"success"}
    assert {r.sha256 for r in runs} == {hashlib.sha256(results[0][2]).hexdigest()}

    # Eight different exports (four formats, twice each: half run, half follow or reuse).
    names = FORMATS[:4] * 2
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: (n, served.request("GET", served.share(n))), names))
    for name, (status, head, body) in results:
        assert status == 200, body
        run = service.get_run(head["x-log-id"])
        assert run.export_name == name and run.status == "success"
        assert hashlib.sha256(body).hexdigest() == run.sha256
        assert body == Path(run.artifact_path).read_bytes()
    assert Run.select().where(Run.status == "running").count() == 0


def test_curl_is_an_independent_client(served, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    url = served.url(served.share("standard-xml"))
    out = tmp_path / "feed.xml"
    subprocess.run([curl, "-fsS", url, "-o", str(out)], check=True, timeout=30)
    run = history_of(served.exports["standard-xml"].export_id)[0]
    assert out.read_bytes() == artifact_of(run.log_id)
    packed = subprocess.run(
        [curl, "-fsS", "--compressed", url], check=True, capture_output=True, timeout=30
    )
    assert packed.stdout == out.read_bytes()
    head = subprocess.run(
        [curl, "-fsSI", url], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    assert "content-length:" in head.lower() and "etag:" in head.lower()
    bad = subprocess.run(
        [curl, "-fsS", url.replace("token=", "token=x")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 22  # HTTP error, as a cron job would see it
    post = subprocess.run(
        [
            curl,
            "-fsS",
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {served.key}",
            served.url(f"/api/v1/exports/{served.exports['standard-jsonl'].export_id}/runs"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert post.returncode == 0 and '"logId"' in post.stdout


def test_api_trigger_status_and_file(served):
    export_id = served.exports["standard-jsonl"].export_id
    status, head, data = served.api("POST", f"/api/v1/exports/{export_id}/runs")
    assert status == 202 and data["status"] == "running"
    assert head["location"] == data["statusUrl"] == served.url(f"/api/v1/runs/{data['logId']}")
    deadline = time.monotonic() + 20
    while True:
        status, _, run = served.api("GET", path_of(data["statusUrl"]))
        assert status == 200
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "success" and run["trigger"] == "api" and run["apiVersion"] == "1.0"
    assert run["productCount"] == 20 and run["finished"].endswith("Z")
    assert "artifactPath" not in run  # the server's file system stays private
    status, head, body = served.api("GET", path_of(run["fileUrl"]))
    assert status == 200 and hashlib.sha256(body).hexdigest() == run["sha256"]
    status, _, _ = served.api(
        "GET", path_of(run["fileUrl"]), headers={"If-None-Match": head["etag"]}
    )
    assert status == 304

    status, _, listing = served.api("GET", "/api/v1/exports")
    assert status == 200 and listing["apiVersion"] == "1.0"
    by_name = {e["name"]: e for e in listing["exports"]}
    assert by_name["standard-jsonl"]["valid"] and by_name["standard-jsonl"]["lastRun"]["logId"]
    assert not by_name["draft"]["valid"] and by_name["draft"]["reasons"]
    assert by_name["standard-jsonl"]["shareUrl"].startswith(served.handle.url + "/api/v1/exports/")


def test_errors_are_problem_json(served):
    draft = served.exports["draft"]
    cases = [
        ("GET", "/nowhere", None, 404),
        ("GET", f"/api/v1/exports/{draft.export_id}/download?token={draft.share_token}", None, 409),
        ("POST", f"/api/v1/exports/{draft.export_id}/runs", "key", 409),
        ("DELETE", "/api/v1/exports", None, 405),
        ("POST", "/healthz", None, 405),
        ("GET", "/api/v1/exports", None, 401),
        ("GET", "/api/v1/runs/NOSUCHRUN1", "key", 404),
        ("POST", "/api/v1/exports/00000000-0000-4000-8000-000000000000/runs", "key", 404),
    ]
    for method, path, key, expected in cases:
        headers = {"Authorization": f"Bearer {served.key}"} if key else {}
        status, head, body = served.request(method, path, headers)
        assert status == expected, (method, path, body)
        assert head["content-type"] == "application/problem+json"
        import json

        problem = json.loads(body)
        assert problem["status"] == expected and problem["title"] and problem["type"]
        assert problem["detail"].endswith((".", ")")) and "Traceback" not in problem["detail"]
        if expected == 405:
            assert "GET" in head["allow"] or "POST" in head["allow"]
        if expected == 409:
            assert problem["reasons"] == ["No product selection is assigned."]
        if expected == 401:
            assert head["www-authenticate"].startswith("Bearer")
    status, head, body = served.request(
        "POST", "/api/v1/exports/x/runs", {"Content-Length": "999999"}
    )
    assert status == 413 and head["content-type"] == "application/problem+json"


def test_too_many_runs_answer_503_with_retry_after(served, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_MAX_CONCURRENT_RUNS", "1")
    config.reset_settings()
    gate = threading.Event()
    original = engine.prepare_selection

    def held(*args, **kwargs):
        gate.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare_selection", held)
    first = served.api("POST", f"/api/v1/exports/{served.exports['standard-jsonl'].export_id}/runs")
    assert first[0] == 202
    status, head, problem = served.api(
        "POST", f"/api/v1/exports/{served.exports['standard-xml'].export_id}/runs"
    )
    assert status == 503 and head["retry-after"] == "5" and "running" in problem["detail"]
    status, head, _ = served.request("GET", served.share("standard-json"))
    assert status == 503 and head["retry-after"]
    gate.set()


def test_stop_cancels_running_exports_and_leaves_no_partial_file(served, monkeypatch):
    gate = threading.Event()
    original = engine.prepare_selection

    def held(*args, **kwargs):
        gate.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare_selection", held)
    export_id = served.exports["standard-xml"].export_id
    status, _, data = served.api("POST", f"/api/v1/exports/{export_id}/runs")
    assert status == 202
    threading.Timer(0.3, gate.set).start()
    served.handle.stop(grace=0.5)
    run = service.get_run(data["logId"])
    assert run.status == "cancelled", run.messages
    folder = config.artifacts_dir() / export_id
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not served.handle.running


def test_tokens_keys_and_the_access_log(served):
    jsonl, xml = served.exports["standard-jsonl"], served.exports["standard-xml"]
    assert served.request("GET", served.share("standard-jsonl"))[0] == 200
    # A token opens only its own export; a wrong token looks exactly like an unknown export.
    crossed = f"/api/v1/exports/{xml.export_id}/download?token={jsonl.share_token}"
    unknown = (
        f"/api/v1/exports/00000000-0000-4000-8000-000000000000/download?token={jsonl.share_token}"
    )
    a, b = served.request("GET", crossed), served.request("GET", unknown)
    assert a[0] == b[0] == 404 and a[2] == b[2]
    assert served.request("GET", f"/api/v1/exports/{jsonl.export_id}/download")[0] == 404
    # Rotation: the old URL stops working at once, the new one works.
    old = served.share("standard-jsonl")
    service.rotate_share_token(jsonl.export_id)
    assert served.request("GET", old)[0] == 404
    assert served.request("GET", served.share("standard-jsonl"))[0] == 200
    # Keys: a revoked key is refused, so is a made-up one.
    _, other = apikeys.create_key("to revoke")
    assert served.api("GET", "/api/v1/exports", key=other)[0] == 200
    apikeys.revoke_key("to revoke")
    assert served.api("GET", "/api/v1/exports", key=other)[0] == 401
    assert served.api("GET", "/api/v1/exports", key="tuix_madeup")[0] == 401
    assert served.api("GET", "/api/v1/exports", headers={"X": "y"}, key=None)[0] == 401

    secrets_seen = [
        jsonl.share_token,
        service.get_definition(jsonl.export_id).share_token,
        served.key,
        other,
    ]
    text = "\n".join(served.log)
    assert len(served.log) >= 9 and "token=***" in text
    for secret in secrets_seen:
        assert secret not in text


def test_port_in_use_is_one_sentence(served):
    with pytest.raises(UserError, match=rf"Port {served.port} is in use; "):
        start_server("127.0.0.1", served.port, access_log=None)


def test_tls(empty_db, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    import ssl
    import urllib.request

    from tests.server_helpers import build_exports

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    exports = build_exports()
    with start_server(
        "127.0.0.1", 0, tls_cert=str(cert), tls_key=str(key), access_log=None
    ) as handle:
        assert handle.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        url = handle.url + service.share_path(exports["standard-jsonl"])
        body = urllib.request.urlopen(url, context=context, timeout=10).read()
        run = service.list_history()[0]
        assert hashlib.sha256(body).hexdigest() == run.sha256
        # Plain HTTP and a silent client on the TLS port cost a handshake timeout at most.
        import socket

        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            # The TLS handshake fails; the server may drop the connection.
            with contextlib.suppress(ConnectionResetError):
                assert b"200" not in plain.recv(1000)
        health = urllib.request.urlopen(handle.url + "/healthz", context=context, timeout=10)
        assert health.status == 200
    with pytest.raises(UserError, match="both --tls-cert and --tls-key"):
        start_server("127.0.0.1", 0, tls_cert=str(cert))


def test_a_changed_catalog_definition_or_token_is_seen_on_a_kept_alive_connection(served):
    """The share lookup is cached per database change; every change must reach the next request."""
    import http.client

    from tuiexport.schema import bump_catalog_version

    export_id = served.exports["standard-jsonl"].export_id
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)

    def get(path):
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("X-Log-Id"), resp.read()

    def produced():
        return sum(r.artifact_kept for r in history_of(export_id))

    path = served.share("standard-jsonl")
    assert get(path)[0] == 200 and get(path)[0] == 200 and produced() == 1
    bump_catalog_version()  # e.g. a catalog import in another process
    assert get(path)[0] == 200 and produced() == 2
    assert get(path)[0] == 200 and produced() == 2
    service.update_definition(export_id, language="en")
    assert get(path)[0] == 200 and produced() == 3
    service.rotate_share_token(export_id)
    assert get(path)[0] == 404
    assert get(served.share("standard-jsonl"))[0] == 200
    service.update_definition(export_id, selection_id=None)
    assert get(served.share("standard-jsonl"))[0] == 409
    conn.close()


def test_stop_closes_idle_kept_alive_connections_at_once(served):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read()
    started = time.monotonic()
    served.handle.stop(grace=3.0)
    assert time.monotonic() - started < 1.5
    assert not served.handle.running
    conn.close()


def test_a_run_that_fails_while_streaming_never_looks_complete(served, monkeypatch):
    import http.client

    monkeypatch.setattr(files, "HEADERS_AFTER", 0.3)
    delay = [files.HEADERS_AFTER + 0.3]  # first: fail once the head is out

    def failing_check(self, written):
        time.sleep(delay[0])
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ExportJob, "check", failing_check)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", streamed(served, "standard-jsonl"))
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        resp.read()
    conn.close()
    run = service.get_run(resp.getheader("X-Log-Id"))
    assert run.status == "failed" and "disk on fire" in " ".join(run.messages)
    folder = config.artifacts_dir() / run.export_id
    assert not folder.exists() or list(folder.iterdir()) == []
    from tuiexport import engine

    def failing_selection(*args):  # fails before the writer wrote any byte
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "prepare_selection", failing_selection)
    status, _, problem = served.request("GET", served.share("standard-jsonl"))
    assert status == 500 and b"disk on fire" in problem  # a run that fails before any byte: 500


def test_download_names_keep_umlauts_with_an_ascii_fallback():
    from datetime import datetime

    when = datetime(2026, 3, 2, 9, 30, 5)
    assert engine.download_name("Händler [Büro] feed", when, "zip") == (
        "Händler-Büro-feed_20260302-093005.zip"
    )
    header = files.disposition("Händler [Büro] feed", when, "zip")
    assert header == (
        'attachment; filename="Haendler-Buero-feed_20260302-093005.zip"; '
        "filename*=UTF-8''H%C3%A4ndler-B%C3%BCro-feed_20260302-093005.zip"
    )
    header.encode("latin-1")  # a header value http.server can send
    assert files.disposition("Shop feed", when, "zip") == (
        'attachment; filename="Shop-feed_20260302-093005.zip"'
    )
