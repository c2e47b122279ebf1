"""The asyncio transport as a client sees it (issue 10): strict HTTP/1.1 (Host, absolute-form,
trickled heads), byte ranges and their digest, `curl -C -`, served-download history rows that
are batched but never lost, never empty the share cache, and say ``cancelled`` when the client
broke off; run JSON without server paths, a disguised token parameter, share URLs with
``--host 0.0.0.0``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import select
import shutil
import socket
import subprocess
import time

import pytest

from tests.server_helpers import TEST_LIMITS, served_fixture, streamed  # noqa: F401  (fixture)
from tuiexport import config, service
from tuiexport.server import primary_address, start_server


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else 0


def current_run(served, name: str):
    status, _head, body = served.request("GET", served.share(name))
    assert status == 200
    export_id = served.exports[name].export_id
    runs = [r for r in service.list_history(export_id=export_id) if r.artifact_kept]
    return runs[0], body


def test_host_header_rules_and_the_absolute_form(served):
    close = b"Connection: close\r\n"
    assert status_of(raw(served.port, b"GET /healthz HTTP/1.1\r\n" + close + b"\r\n")) == 400
    doubled = b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + close + b"\r\n"
    response = raw(served.port, doubled)
    assert status_of(response) == 400 and b"more than one Host" in response
    assert status_of(raw(served.port, b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n")) == 400
    # HTTP/1.0 needs no Host; RFC 9112 3.2.2: a server accepts the absolute form.
    assert status_of(raw(served.port, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200
    absolute = f"GET http://127.0.0.1:{served.port}/healthz HTTP/1.1\r\nHost: other\r\n".encode()
    assert status_of(raw(served.port, absolute + close + b"\r\n")) == 200
    share = f"GET http://x{served.share('standard-jsonl')} HTTP/1.1\r\nHost: x\r\n".encode()
    assert status_of(raw(served.port, share + close + b"\r\n")) == 200
    assert status_of(raw(served.port, b"GET http:///healthz HTTP/1.1\r\nHost: a\r\n\r\n")) == 400


def test_a_trickled_request_line_gets_408(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        started = time.monotonic()
        answer = b""
        for byte in b"GET /healthz HTTP/1.1":
            sock.send(bytes([byte]))
            if select.select([sock], [], [], 0.1)[0]:  # the server answered: stop sending
                break
        answer = sock.recv(4096)
        assert time.monotonic() - started < TEST_LIMITS.head_timeout + 5
    assert status_of(answer) == 408 and b"did not arrive in time" in answer


def test_byte_ranges_if_range_and_the_digest(served):
    run, body = current_run(served, "standard-xml")
    size = len(body)
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    path = served.share("standard-xml")
    status, head, whole = served.request("GET", path)
    assert status == 200 and head["accept-ranges"] == "bytes" and head["repr-digest"] == digest

    status, head, part = served.request("GET", path, {"Range": "bytes=10-19"})
    assert status == 206 and part == body[10:20]
    assert head["content-range"] == f"bytes 10-19/{size}" and head["repr-digest"] == digest
    status, head, part = served.request("GET", path, {"Range": "bytes=-7"})
    assert status == 206 and part == body[-7:]
    status, head, part = served.request("GET", path, {"Range": f"bytes={size - 3}-"})
    assert status == 206 and part == body[-3:]
    status, head, part = served.request("GET", path, {"Range": f"bytes=5-{size * 2}"})
    assert status == 206 and part == body[5:]

    status, head, _problem = served.request("GET", path, {"Range": f"bytes={size}-"})
    assert status == 416 and head["content-range"] == f"bytes */{size}"
    assert head["content-type"] == "application/problem+json"
    # Malformed or several ranges: ignored, the whole file.
    for header in ("bytes=a-b", "bytes=1-2,5-6", "lines=1-2", "bytes=9-3"):
        status, _, whole = served.request("GET", path, {"Range": header})
        assert status == 200 and whole == body, header

    etag = f'"{run.sha256}"'
    status, _, part = served.request("GET", path, {"Range": "bytes=0-4", "If-Range": etag})
    assert status == 206 and part == body[:5]
    status, _, whole = served.request("GET", path, {"Range": "bytes=0-4", "If-Range": '"old"'})
    assert status == 200 and whole == body
    # A range asks for the bytes as they are: no gzip.
    status, head, part = served.request(
        "GET", path, {"Range": "bytes=0-4", "Accept-Encoding": "gzip"}
    )
    assert status == 206 and part == body[:5] and "content-encoding" not in head


def test_gzip_answers_carry_the_digest_of_their_bytes_in_the_trailer(served):
    path = served.share("standard-jsonl")
    served.request("GET", path)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Trailer: Repr-Digest" in head and b"Transfer-Encoding: chunked" in head
    payload, trailer = b"", b""
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            trailer = rest
            break
        payload, rest = payload + rest[:n], rest[n + 2 :]
    expected = base64.b64encode(hashlib.sha256(payload).digest()).decode()
    assert f"Repr-Digest: sha-256=:{expected}:".encode() in trailer


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resumes_a_broken_download(served, tmp_path):
    _run, body = current_run(served, "bmecat12-xml")
    out = tmp_path / "part.xml"
    out.write_bytes(body[: len(body) // 3])
    result = subprocess.run(
        ["curl", "-sS", "-f", "-C", "-", "-o", str(out), served.url(served.share("bmecat12-xml"))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == body


def test_downloads_keep_the_share_cache_and_a_clean_stop_loses_no_row(empty_db, monkeypatch):
    from tests.server_helpers import Served, build_exports

    exports = build_exports()
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    served = Served(handle, [], exports, "")
    path = served.share("standard-json")
    export_id = exports["standard-json"].export_id
    assert served.request("GET", path)[0] == 200  # runs once
    while handle.app.runs.running():  # the run's end empties the cache once: let it happen
        time.sleep(0.01)
    assert served.request("GET", path)[0] == 200
    lookups = []
    original = service.get_definition
    monkeypatch.setattr(service, "get_definition", lambda ref: lookups.append(ref) or original(ref))
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    for _ in range(40):  # not flushed in between: they are queued
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read()
    conn.close()
    assert lookups == [], "recording downloads must not empty the share cache"
    handle.stop()
    runs = service.list_history(100, export_id=export_id)
    assert len(runs) == 42 and {r.status for r in runs} == {"success"}
    # Written in multi-row batches: each row still copies its source run and has its own ID.
    source, rows = runs[-1], runs[:-1]
    assert len({r.log_id for r in runs}) == 42
    assert {(r.size, r.sha256, r.artifact_path, r.trigger) for r in rows} == {
        (source.size, source.sha256, source.artifact_path, "api")
    }
    assert all(r.messages and source.log_id in r.messages[0] for r in rows)


def test_a_clean_stop_in_the_middle_of_many_downloads_loses_no_row(empty_db):
    """Four keep-alive clients download as fast as they can (small files, answered on the event
    loop, rows batched) when the server stops: every download whose answer began has its row,
    ended (success, or cancelled when the stop cut it), none left running."""
    import http.client
    import threading

    from tests.server_helpers import Served, build_exports

    exports = build_exports()
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    served = Served(handle, [], exports, "")
    path = served.share("standard-json")
    export_id = exports["standard-json"].export_id
    assert served.request("GET", path)[0] == 200  # runs once
    while handle.app.runs.running():
        time.sleep(0.01)
    began: list[str] = []  # the X-Log-Id of every download whose answer began

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
        try:
            while True:
                conn.request("GET", path)
                resp = conn.getresponse()
                began.append(resp.getheader("X-Log-Id") or "")
                resp.read()
        except (OSError, http.client.HTTPException):
            pass  # the stop closed the connection
        finally:
            conn.close()

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 30
    while len(began) < 400 and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.stop()
    for t in clients:
        t.join(10)
    rows = {r.log_id: r for r in service.list_history(100_000, export_id=export_id)}
    assert len(began) >= 400
    assert [log_id for log_id in began if log_id not in rows] == []
    assert {rows[log_id].status for log_id in began} <= {"success", "cancelled"}
    # Beyond them: the run itself, and at most one download per connection that the stop cut
    # off after the server wrote its answer but before the client read its head (the close
    # resets a connection whose next request is already in; the kernel drops what the client
    # had not read). The server cannot tell that one from a delivered one.
    beyond = [r for log_id, r in rows.items() if log_id not in set(began)]
    assert len([r for r in beyond if r.source_log_id == ""]) == 1  # the run
    assert {r.status for r in beyond if r.source_log_id} <= {"success", "cancelled"}
    assert len(beyond) <= 1 + len(clients), [(r.status, r.messages[-1]) for r in beyond]


def test_a_broken_off_download_is_recorded_as_cancelled(served):
    path = served.share("bmecat12-xml")
    run, _body = current_run(served, "bmecat12-xml")
    export_id = run.export_id
    before = len(service.list_history(1000, export_id=export_id))
    for _ in range(3):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", served.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    time.sleep(0.3)
    served.handle.flush_history()
    runs = service.list_history(1000, export_id=export_id)[
        : len(service.list_history(1000, export_id=export_id)) - before
    ]
    assert len(runs) == 3 and {r.status for r in runs} == {"cancelled"}, [r.status for r in runs]


def test_downloads_the_server_closes_are_recorded_whole(served):
    """ "Connection: close": the server closes right after the last byte, before the client's
    acknowledgement can arrive; the download is still recorded as whole (not cancelled)."""
    path = served.share("standard-csv")
    run, body = current_run(served, "standard-csv")
    before = len(service.list_history(1000, export_id=run.export_id))
    for _ in range(8):
        status, _, data = served.request("GET", path, headers={"Connection": "close"})
        assert status == 200 and data == body
    served.handle.flush_history()
    runs = service.list_history(1000, export_id=run.export_id)
    added = runs[: len(runs) - before]
    assert len(added) == 8 and {r.status for r in added} == {run.status}, [r.status for r in added]


def test_run_json_shows_no_server_paths(served):
    run, _ = current_run(served, "standard-jsonl")
    assert any(
        config.artifacts_dir().name in m or "/" in m for m in service.get_run(run.log_id).messages
    )
    status, _, doc = served.api("GET", f"/api/v1/runs/{run.log_id}")
    assert status == 200
    text = json.dumps(doc["messages"])
    assert str(config.artifacts_dir()) not in text and not re.search(r"(?<![\w.:/])/\w", text)
    status, _, listing = served.api("GET", "/api/v1/exports")
    last = [e["lastRun"] for e in listing["exports"] if e["lastRun"]]
    assert last and str(config.artifacts_dir()) not in json.dumps(last)


def test_a_percent_encoded_token_parameter_is_refused_and_never_logged(served):
    definition = service.get_definition(served.exports["standard-jsonl"].export_id)
    token = definition.share_token
    path = f"/api/v1/exports/{definition.export_id}/download?%74oken={token}"
    status, head, _problem = served.request("GET", path)
    assert status == 400 and head["content-type"] == "application/problem+json"
    deadline = time.monotonic() + 5
    while not any("%74oken" in line for line in served.log) and time.monotonic() < deadline:
        time.sleep(0.01)  # the line is written once the answer went out
    assert not any(token in line for line in served.log)
    assert any("%74oken=***" in line for line in served.log)


def test_share_urls_on_every_address_name_the_primary_address(empty_db):
    with start_server("0.0.0.0", 0, access_log=None, limits=TEST_LIMITS) as handle:
        assert handle.base_url == f"http://{primary_address()}:{handle.port}"
        assert (
            socket.gethostname() not in handle.base_url or socket.gethostname() == primary_address()
        )
    with start_server(
        "0.0.0.0", 0, access_log=None, base_url="https://dl.example.com/x/"
    ) as handle:
        assert handle.base_url == "https://dl.example.com/x"


def test_the_file_name_is_the_same_streamed_and_served(served, monkeypatch):
    from tuiexport.exporters.base import ExportJob
    from tuiexport.server import files

    monkeypatch.setattr(files, "HEADERS_AFTER", 0.2)
    original = ExportJob.check

    def slow_check(self, written):
        time.sleep(0.5)
        original(self, written)

    monkeypatch.setattr(ExportJob, "check", slow_check)
    path = streamed(served, "standard-jsonl")
    status, first, _ = served.request("GET", path, {"Accept-Encoding": "identity"})
    assert status == 200 and first.get("transfer-encoding") == "chunked"
    status, later, _ = served.request("GET", path)
    assert status == 200 and "transfer-encoding" not in later
    assert first["content-disposition"] == later["content-disposition"]


def test_many_idle_connections_do_not_lock_out_a_client(empty_db):
    import resource
    from dataclasses import replace

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    idle_count = min(600, want // 2 - 100)
    limits = replace(TEST_LIMITS, idle_timeout=30.0, max_connections=idle_count + 50)
    with start_server("127.0.0.1", 0, access_log=None, limits=limits) as handle:
        idle = [
            socket.create_connection(("127.0.0.1", handle.port), timeout=5)
            for _ in range(idle_count)
        ]
        try:
            for _ in range(20):
                assert (
                    status_of(
                        raw(
                            handle.port,
                            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                        )
                    )
                    == 200
                )
            more = [
                socket.create_connection(("127.0.0.1", handle.port), timeout=5) for _ in range(60)
            ]
            time.sleep(0.3)
            refused = raw(handle.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert status_of(refused) == 503 and b"Retry-After: 5" in refused
            for sock in more:
                sock.close()
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        assert (
            status_of(
                raw(handle.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            )
            == 200
        )


def _keepalive(port: int, head: bytes, times: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``head`` sent ``times`` times on one kept-alive connection, one answer after the other."""
    import http.client

    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(times):
            sock.sendall(head)
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            body = resp.read()
            answers.append((resp.status, {k.lower(): v for k, v in resp.getheaders()}, body))
    return answers


def test_a_repeated_head_gets_the_same_answer_until_the_state_changes(served):
    """A head the server answered on its event loop is answered again from what it kept
    (transport.Memo): the same status, headers and body, a current Date, a log line and a
    ``last_seen`` each time, a history row with its own log ID per download; and nothing kept
    outlives a change (a rotated token gets 404 at once)."""
    name = "standard-csv"
    path = served.share(name)
    run, body = current_run(served, name)
    served.handle.flush_history()
    before = len(service.list_history(1000, export_id=run.export_id))
    host = f"Host: 127.0.0.1:{served.port}\r\n"
    revalidate = f'GET {path} HTTP/1.1\r\n{host}If-None-Match: "{run.sha256}"\r\n\r\n'.encode()
    answers = _keepalive(served.port, revalidate, 6)
    assert {a[0] for a in answers} == {304}
    assert all(a[2] == b"" and a[1]["etag"] == f'"{run.sha256}"' and a[1]["date"] for a in answers)
    assert (
        len({tuple(sorted((k, v) for k, v in a[1].items() if k != "date")) for a in answers}) == 1
    )

    download = f"GET {path} HTTP/1.1\r\n{host}\r\n".encode()
    answers = _keepalive(served.port, download, 6)
    assert {a[0] for a in answers} == {200} and {a[2] for a in answers} == {body}
    log_ids = [a[1]["x-log-id"] for a in answers]
    assert len(set(log_ids)) == 6
    memos = served.handle.server.memos.values()
    assert any(m.again is not None for m in memos) and any(m.again is None for m in memos)
    same = {k: v for k, v in answers[0][1].items() if k not in ("date", "x-log-id")}
    assert all(
        {k: v for k, v in a[1].items() if k not in ("date", "x-log-id")} == same for a in answers
    )
    assert served.handle.flush_history()
    rows = {r.log_id: r for r in service.list_history(1000, export_id=run.export_id)}
    assert len(rows) == before + 6
    assert {rows[i].status for i in log_ids} == {run.status}
    assert all(rows[i].link_name and rows[i].source_log_id == run.log_id for i in log_ids)
    health = _keepalive(served.port, f"GET /healthz HTTP/1.1\r\n{host}\r\n".encode(), 4)
    assert {(a[0], a[2]) for a in health} == {(200, health[0][2])}
    assert json.loads(health[0][2])["status"] == "ok"
    time.sleep(0.1)  # the access log: lines written together, a moment late
    assert sum(f'"GET {path.split("?")[0]}' in line for line in served.log) >= 12

    definition = service.get_definition(run.export_id)
    service.rotate_link(run.export_id, definition.links[0].link_id)  # another connection
    assert _keepalive(served.port, revalidate, 1)[0][0] == 404
    assert _keepalive(served.port, download, 1)[0][0] == 404


def test_a_large_batch_of_served_rows_is_what_record_served_writes_one_by_one(empty_db):
    """The recorder's batch (history.record_served_many, runs.create_many: multi-row INSERTs of
    up to ROWS_PER_INSERT rows, the rest in smaller statements) writes each download's row as
    ``record_served`` writes it alone, in the order given, across every statement boundary."""
    from tuiexport.management import history, runs
    from tuiexport.models import Run

    source = runs.view(
        runs.create(
            log_id="SOURCE0001",
            export_id="e-1",
            export_name="batch",
            trigger="cli",
            status="warning",
            profile="standard",
            output="jsonl",
            file_format="standard JSON Lines",
            product_count=28,
            omitted_count=2,
            size=30_105,
            sha256="ab" * 32,
            artifact_path="/tmp/x.jsonl",
            artifact_kept=True,
            messages=["made"],
            supplier_shares={"A": 20, "B": 8},
        )
    )
    count = runs.ROWS_PER_INSERT + 219  # one full statement, then 128 + 64 + 16 + 8 + 2 + 1
    kinds = [
        {},
        {"complete": False, "sent": 1_000},
        {"note": "a note"},
        {"pending": True},
        {"partial": True},
    ]
    batch = [history.Served(source, f"B{n:09d}", **kinds[n % len(kinds)]) for n in range(count)]
    history.record_served_many(batch)
    for n, kind in enumerate(kinds):
        alone = {k: v for k, v in kind.items() if k != "partial"}
        history.record_served(source, log_id=f"S{n:09d}", **alone)
        if kind.get("partial"):  # record_served takes no partial: the row says it
            Run.update(partial=True).where(Run.log_id == f"S{n:09d}").execute()

    def columns(row: Run) -> dict[str, object]:
        return {
            k: v
            for k, v in row.__data__.items()
            if k not in ("id", "log_id", "started", "finished", "heartbeat")
        }

    rows = list(Run.select().where(Run.log_id.startswith("B")).order_by(Run.id))
    assert [r.log_id for r in rows] == [s.log_id for s in batch]
    alone = {r.log_id: columns(r) for r in Run.select().where(Run.log_id.startswith("S"))}
    for n, row in enumerate(rows):
        assert columns(row) == alone[f"S{n % len(kinds):09d}"], n
        assert row.started == row.finished == row.heartbeat == rows[0].started
