"""Notifications against real receivers on loopback: an HTTP server that checks the HMAC
signature, one that fails twice first, an address nobody listens on, and an SMTP server
(aiosmtpd). Runs are started the way users start them: ``tuiexport --run`` in a child process
(which exits right after the run), or the engine through the service."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import io
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from tests.server_helpers import served_fixture  # noqa: F401 - the served fixture
from tests.shared_catalog import make_catalog, tx
from tuiexport import config, service
from tuiexport import db as dbmod

SECRET = "s3cret-for-tests-only"

pytestmark = pytest.mark.slow


class Receiver:
    """A webhook receiver on loopback: answers each POST with the next scripted status (200
    once the script is used up) and checks the signature the way docs/guide/notifications.md
    tells receivers to."""

    def __init__(self, statuses: list[int] | None = None, secret: str = SECRET) -> None:
        self.statuses = list(statuses or [])
        self.secret = secret
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Tuiexport-Timestamp"]
                expected = hmac.new(
                    outer.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                signed = self.headers.get("X-Tuiexport-Signature", "")
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(body),
                        "valid": hmac.compare_digest(signed, "sha256=" + expected),
                    }
                )
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tuiexport?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notify")
    with pytest.MonkeyPatch.context() as patch:  # before isolated_home: a home of its own
        patch.setenv("TUIEXPORT_HOME", str(folder / "home"))
        patch.delenv("TUIEXPORT_CONFIG", raising=False)
        config.reset_settings()
        make_catalog(folder / "catalog.sqlite", 300)
    config.reset_settings()
    return folder / "catalog.sqlite"


@pytest.fixture
def catalog(catalog_file, tmp_path) -> Path:
    """A copy of the catalog of its own per test (every test writes history)."""
    copy = tmp_path / "catalog.sqlite"
    copy.write_bytes(catalog_file.read_bytes())
    return copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(home: Path, **settings: object) -> None:
    lines = []
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(home: Path, catalog: Path, export: str) -> subprocess.CompletedProcess[str]:
    return tx(home, "--db", str(catalog), "--run", export, "-q")


def history(home: Path, catalog: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tx(home, "--db", str(catalog), "history", *args)


def last_run(home: Path, catalog: Path) -> dict:
    runs = json.loads(history(home, catalog, "--json", "--limit", "1").stdout)
    shown = history(home, catalog, runs[0]["log_id"], "--json")
    return json.loads(shown.stdout)


def test_a_warning_run_posts_a_signed_event_that_the_receiver_verifies(
    isolated_home, catalog, receiver, monkeypatch
):
    hook = receiver()
    write_config(isolated_home, webhook_url=hook.url, base_url="https://feeds.example.com")
    monkeypatch.setenv("TUIEXPORT_WEBHOOK_SECRET", SECRET)  # the secret from the environment
    done = run(isolated_home, catalog, "Small")
    assert done.returncode == 0, done.stderr  # a warning: more products than the limit of 50
    assert "warning" in done.stderr
    # The process waited at its exit for the delivery: it is there once the process is gone.
    assert len(hook.requests) == 1
    sent = hook.requests[0]
    assert sent["valid"], "the HMAC-SHA256 signature over '<timestamp>.<body>' must verify"
    assert sent["path"] == "/hooks/tuiexport?token=abc"
    headers = sent["headers"]
    assert headers["X-Tuiexport-Event"] == "run.ended"
    assert headers["Content-Type"].startswith("application/json")
    event = sent["body"]
    assert headers["X-Tuiexport-Delivery"] == event["id"]
    shown = last_run(isolated_home, catalog)
    assert event["logId"] == shown["log_id"]
    assert event["status"] == "warning" and event["exportName"] == "Small"
    assert event["exportId"] == shown["export_id"]
    assert event["productCount"] == 50 and event["omittedCount"] == shown["omitted_count"] > 0
    assert event["messages"] == shown["messages"]
    run_url = f"https://feeds.example.com/api/v1/runs/{shown['log_id']}"
    assert event["links"] == {"run": run_url, "file": run_url + "/file"}
    # Every attempt is in the run's details; the stored target has no query (it may be a token).
    [note] = shown["notifications"]
    assert note["channel"] == "webhook" and note["state"] == "delivered"
    assert note["target"] == hook.url.split("?")[0]
    assert [(t["attempt"], t["ok"], t["http_status"]) for t in note["tries"]] == [(1, True, 200)]
    text = history(isolated_home, catalog, shown["log_id"]).stdout
    assert f"webhook {hook.url.split('?')[0]}: delivered (1 attempts)" in text
    assert "#1 " in text and "delivered, HTTP 200" in text
    # The secret is never stored.
    assert SECRET.encode() not in catalog.read_bytes()


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    isolated_home, catalog, receiver
):
    hook = receiver([500, 503])
    write_config(isolated_home, webhook_url=hook.url, webhook_secret=SECRET, notify_backoff=0.05)
    done = run(isolated_home, catalog, "Small")
    assert done.returncode == 0, done.stderr
    assert len(hook.requests) == 3
    assert all(r["valid"] for r in hook.requests)  # each attempt signed anew
    assert len({r["headers"]["X-Tuiexport-Delivery"] for r in hook.requests}) == 1
    [note] = last_run(isolated_home, catalog)["notifications"]
    assert note["state"] == "delivered" and note["attempts"] == 3
    assert [(t["attempt"], t["ok"], t["http_status"]) for t in note["tries"]] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    assert note["tries"][0]["error"].startswith("HTTP 500")


def test_an_unreachable_receiver_never_fails_the_run_and_every_attempt_is_recorded(
    isolated_home, catalog
):
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    write_config(
        isolated_home,
        webhook_url=nobody,
        webhook_secret=SECRET,
        notify_backoff=0.05,
        notify_attempts=3,
    )
    done = run(isolated_home, catalog, "Small")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(".json")  # the run's file, as without notifications
    shown = last_run(isolated_home, catalog)
    assert shown["status"] == "warning"
    [note] = shown["notifications"]
    assert note["state"] == "failed" and note["attempts"] == 3
    assert [t["ok"] for t in note["tries"]] == [False, False, False]
    assert all("refused" in t["error"].lower() for t in note["tries"]), note["tries"]
    text = history(isolated_home, catalog, shown["log_id"]).stdout
    assert "failed, gave up (3 attempts)" in text


def test_what_an_exiting_process_leaves_is_sent_by_notify_retry(isolated_home, catalog, receiver):
    port = free_port()
    write_config(
        isolated_home,
        webhook_url=f"http://127.0.0.1:{port}/hook",
        webhook_secret=SECRET,
        notify_backoff=600,  # the second attempt is far beyond the exit wait
        notify_exit_wait=1,
    )
    done = run(isolated_home, catalog, "Small")
    assert done.returncode == 0, done.stderr
    [note] = last_run(isolated_home, catalog)["notifications"]
    assert note["state"] == "pending" and note["attempts"] == 1 and note["next_attempt"]
    # Nothing listens yet: retry fails, says so in one sentence, exit 1; still pending.
    again = tx(isolated_home, "--db", str(catalog), "notify", "retry")
    assert again.returncode == 1
    assert again.stderr.startswith("tuiexport: 1 of 1 notifications could not be delivered")
    # A receiver on the configured port now.
    hook = ReceiverOnPort(port)
    try:
        again = tx(isolated_home, "--db", str(catalog), "notify", "retry")
        assert again.returncode == 0, again.stderr
        assert "delivered" in again.stdout
        assert len(hook.requests) == 1 and hook.requests[0]["valid"]
    finally:
        hook.close()
    [note] = last_run(isolated_home, catalog)["notifications"]
    assert note["state"] == "delivered"
    assert [t["ok"] for t in note["tries"]] == [False, False, True]
    quiet = tx(isolated_home, "--db", str(catalog), "notify", "retry")
    assert quiet.returncode == 0 and "Nothing to resend" in quiet.stdout


class ReceiverOnPort(Receiver):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.close()
        handler = self.server.RequestHandlerClass
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


def test_a_failed_run_through_the_service_notifies_and_a_success_does_not(
    isolated_home, catalog, receiver, tmp_path
):
    hook = receiver()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    settings = config.Settings(
        webhook_url=hook.url, webhook_secret=SECRET, artifacts_dir=str(blocked / "artifacts")
    )
    config.reset_settings(settings)
    service.prepare_database(catalog, load_sample=False, create=False)
    failed = service.run_export("Other", trigger="cli")
    assert failed.status == "failed"  # the artifacts folder cannot be made under a file
    assert service.flush_notifications(10)
    [note] = service.run_notifications(failed.log_id)
    assert note.state == "delivered" and note.tries[0].ok
    assert hook.requests[-1]["body"]["status"] == "failed"
    assert hook.requests[-1]["body"]["links"] == {}  # no base_url configured: no links
    assert "Could not write" in hook.requests[-1]["body"]["messages"][-1]

    config.reset_settings(config.Settings(webhook_url=hook.url, artifacts_dir=str(tmp_path / "ok")))
    fine = service.run_export("Other", trigger="cli")
    assert fine.status == "success"
    assert service.flush_notifications(10)
    assert service.run_notifications(fine.log_id) == []  # success is not in notify_on
    assert len(hook.requests) == 1
    dbmod.close_database()


def test_the_email_goes_through_a_real_smtp_server(isolated_home, catalog, monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received: list[dict] = []
    logins: list[tuple[bytes, bytes]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(
                {"from": envelope.mail_from, "to": envelope.rcpt_tos, "data": envelope.content}
            )
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"feeds" and auth_data.password == b"mail-pass"
        return AuthResult(success=ok)

    port = free_port()
    smtp = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    smtp.start()
    try:
        write_config(
            isolated_home,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_user="feeds",
            mail_from="feeds@example.com",
            mail_to=["ops@example.com", "shop@example.com"],
            notify_backoff=0.05,
        )
        monkeypatch.setenv("TUIEXPORT_SMTP_PASSWORD", "mail-pass")
        done = run(isolated_home, catalog, "Small")
        assert done.returncode == 0, done.stderr
    finally:
        smtp.stop()
    assert logins == [(b"feeds", b"mail-pass")]
    [mail] = received
    assert mail["from"] == "feeds@example.com"
    assert mail["to"] == ["ops@example.com", "shop@example.com"]
    message = email.message_from_bytes(mail["data"], policy=email.policy.default)
    shown = last_run(isolated_home, catalog)
    assert message["Subject"] == f"tuiexport: Small warning (log ID {shown['log_id']})"
    body = message.get_body(("plain",)).get_content()
    assert "The export 'Small'" in body and "ended warning" in body
    assert shown["messages"][-1] in body
    [attachment] = list(message.iter_attachments())
    assert json.loads(attachment.get_content())["logId"] == shown["log_id"]
    [note] = shown["notifications"]
    assert note["channel"] == "email" and note["state"] == "delivered"
    assert note["target"] == "ops@example.com, shop@example.com"
    assert b"mail-pass" not in catalog.read_bytes()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_is_verified_against_the_trusted_certificates(
    isolated_home, catalog, tmp_path, monkeypatch, security
):
    from aiosmtpd.controller import Controller

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    if security == "starttls":
        smtp = Controller(
            Handler(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    else:  # TLS from the first byte (port 465 style)
        smtp = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=context)
    smtp.start()
    try:
        write_config(
            isolated_home,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security=security,
            mail_to=["ops@example.com"],
            notify_attempts=1,
        )
        # Not trusted: the attempt fails on the certificate (and the run does not).
        done = run(isolated_home, catalog, "Small")
        assert done.returncode == 0, done.stderr
        [note] = last_run(isolated_home, catalog)["notifications"]
        assert note["state"] == "failed" and "certificate" in note["tries"][0]["error"].lower()
        # Trusted (SSL_CERT_FILE names the trusted certificates): delivered over STARTTLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        done = run(isolated_home, catalog, "Small")
        assert done.returncode == 0, done.stderr
    finally:
        smtp.stop()
    assert len(received) == 1
    [note] = last_run(isolated_home, catalog)["notifications"]
    assert note["state"] == "delivered"


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("notify_on", '["failed", "broken"]', "notify_on"),
        ("webhook_url", '"ftp://example.com/x"', "must start with http:// or https://"),
        ("smtp_security", '"tls"', "smtp_security"),
    ],
)
def test_bad_notification_settings_are_one_sentence(isolated_home, catalog, setting, value, error):
    (isolated_home / "config.toml").write_text(f"{setting} = {value}\n", encoding="utf-8")
    done = run(isolated_home, catalog, "Small")
    assert done.returncode == 2
    assert done.stderr.startswith("tuiexport: The ") and error in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_notify_on_from_the_environment_is_comma_separated(monkeypatch):
    monkeypatch.setenv("TUIEXPORT_NOTIFY_ON", "failed, held")
    monkeypatch.setenv("TUIEXPORT_MAIL_TO", "a@example.com,b@example.com")
    loaded = config.load_settings()
    assert loaded.notify_on == ["failed", "held"]
    assert loaded.mail_to == ["a@example.com", "b@example.com"]
    assert config.Settings().notify_on == ["failed", "held", "warning"]  # held is in the default


def test_the_api_run_shows_its_notifications(served, receiver, monkeypatch):
    import time

    hook = receiver([500])
    monkeypatch.setenv("TUIEXPORT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("TUIEXPORT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TUIEXPORT_NOTIFY_BACKOFF", "0.05")
    config.reset_settings()
    selection = service.get_definition("standard-json").selection_id
    small = service.create_definition(
        "Small API", selection_id=selection, profile="standard", output="json", product_limit=5
    )
    status, _, started = served.api("POST", f"/api/v1/exports/{small.export_id}/runs")
    assert status == 202
    for _ in range(200):  # the run goes on in the server's thread
        status, _, shown = served.api("GET", f"/api/v1/runs/{started['logId']}")
        if shown["status"] != "running":
            break
        time.sleep(0.05)
    assert shown["status"] == "warning"
    assert service.flush_notifications(10)
    status, _, shown = served.api("GET", f"/api/v1/runs/{started['logId']}")
    assert status == 200
    [note] = shown["notifications"]
    assert note["channel"] == "webhook" and note["state"] == "delivered"
    assert note["target"] == hook.url.split("?")[0] and note["nextAttempt"] is None
    assert [(a["attempt"], a["ok"], a["httpStatus"]) for a in note["attempts"]] == [
        (1, False, 500),
        (2, True, 200),
    ]
    assert note["attempts"][0]["error"].startswith("HTTP 500")
    assert [r["body"]["logId"] for r in hook.requests] == [started["logId"]] * 2


def test_the_tui_run_details_show_every_attempt(isolated_home, catalog, receiver):
    import asyncio

    from textual.widgets import Static

    from tuiexport.app import ExportApp
    from tuiexport.screens.run_details import RunDetailsScreen

    hook = receiver([502])
    config.reset_settings(
        config.Settings(webhook_url=hook.url, webhook_secret=SECRET, notify_backoff=0.05)
    )
    service.prepare_database(catalog, load_sample=False, create=False)
    ran = service.run_export("Small", trigger="tui")
    assert ran.status == "warning" and service.flush_notifications(10)

    async def look() -> str:
        app = ExportApp(server_url="http://127.0.0.1:9")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.2)
            app.push_screen(RunDetailsScreen(service.get_run(ran.log_id)))
            await pilot.pause(0.2)
            shown = app.screen.query_one("#run-details", Static).content
            console = Console(width=100, record=True, file=io.StringIO())
            console.print(shown)
            return console.export_text()

    text = asyncio.run(look())
    assert "Notifications" in text
    assert f"webhook {hook.url.split('?')[0]}  delivered" in text
    assert "#1 " in text and "failed: HTTP 502" in text
    assert "#2 " in text and "delivered, HTTP 200" in text
    dbmod.close_database()


def test_the_receiver_in_the_docs_verifies_a_real_event_and_refuses_a_forgery(
    isolated_home, catalog, monkeypatch
):
    """The Python receiver of docs/guide/notifications.md, run as it is printed there."""
    import re
    import urllib.error
    import urllib.request

    page = (Path(__file__).parent.parent / "docs/guide/notifications.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "verified" in b)
    code, serve = code.rsplit("\n\n", 1)  # the last line starts it on a fixed port
    assert serve.startswith("HTTPServer(")
    monkeypatch.setenv("TUIEXPORT_WEBHOOK_SECRET", SECRET)
    example: dict = {}
    exec(compile(code, "notifications.md", "exec"), example)
    server = example["HTTPServer"](("127.0.0.1", 0), example["Hook"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        write_config(isolated_home, webhook_url=url, notify_attempts=1)
        assert run(isolated_home, catalog, "Small").returncode == 0
        [note] = last_run(isolated_home, catalog)["notifications"]
        assert note["state"] == "delivered" and note["tries"][0]["http_status"] == 204
        assert len(example["seen"]) == 1
        # The same body with a wrong signature, and a replay from an hour ago: both 401.
        body = b'{"id": "forged"}'
        for timestamp, signed in (
            (str(int(time.time())), "sha256=" + "0" * 64),
            (str(int(time.time()) - 3600), signature_for(str(int(time.time()) - 3600), body)),
        ):
            forged = urllib.request.Request(
                url,
                data=body,
                headers={"X-Tuiexport-Timestamp": timestamp, "X-Tuiexport-Signature": signed},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(forged, timeout=10)
            assert refused.value.code == 401
    finally:
        server.shutdown()
        server.server_close()


def signature_for(timestamp: str, body: bytes) -> str:
    return service.notification_signature(SECRET, timestamp, body)


def test_the_next_process_that_ends_a_run_sends_what_the_last_one_left(isolated_home, catalog):
    port = free_port()
    write_config(
        isolated_home,
        webhook_url=f"http://127.0.0.1:{port}/hook",
        notify_backoff=0.5,
        notify_exit_wait=0,  # exits at once: the notification stays pending
    )
    assert run(isolated_home, catalog, "Small").returncode == 0
    first = last_run(isolated_home, catalog)
    [note] = first["notifications"]
    assert note["state"] == "pending"  # attempted once (refused) or not at all yet
    hook = ReceiverOnPort(port)
    try:
        time.sleep(0.6)  # its next attempt is due now
        write_config(isolated_home, webhook_url=f"http://127.0.0.1:{port}/hook")
        assert run(isolated_home, catalog, "Small").returncode == 0
    finally:
        hook.close()
    second = last_run(isolated_home, catalog)
    assert second["log_id"] != first["log_id"]
    assert sorted(r["body"]["logId"] for r in hook.requests) == sorted(
        [first["log_id"], second["log_id"]]
    )
    shown = json.loads(history(isolated_home, catalog, first["log_id"], "--json").stdout)
    assert shown["notifications"][0]["state"] == "delivered"


def test_notifications_on_postgresql(isolated_home, receiver):
    from tests.pg_cluster import running_cluster

    hook = receiver([500])
    with running_cluster() as cluster:
        make_catalog(cluster.url, 200)
        write_config(
            isolated_home, webhook_url=hook.url, webhook_secret=SECRET, notify_backoff=0.05
        )
        done = tx(isolated_home, "--db", cluster.url, "--run", "Small", "-q")
        assert done.returncode == 0, done.stderr
        runs = json.loads(tx(isolated_home, "--db", cluster.url, "history", "--json").stdout)
        shown = json.loads(
            tx(isolated_home, "--db", cluster.url, "history", runs[0]["log_id"], "--json").stdout
        )
    [note] = shown["notifications"]
    assert note["state"] == "delivered"
    assert [(t["ok"], t["http_status"]) for t in note["tries"]] == [(False, 500), (True, 200)]
    assert all(r["valid"] for r in hook.requests) and len(hook.requests) == 2
