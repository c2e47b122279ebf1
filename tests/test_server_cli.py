"""`tuiexport serve` as a real process: listens, logs redacted lines, stops on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.server_helpers import build_exports
from tuiexport import db as dbmod
from tuiexport import service, setup


def start(db_path, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", str(db_path), "serve", "--port", "0", *extra],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stderr.readline()
    match = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
    assert match, line
    return proc, match.group(1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_in_the_foreground_and_stop_on_signal(tmp_path, signum):
    db_path = tmp_path / "serve.sqlite"
    setup.prepare_database(db_path, load_sample=False)
    export = build_exports()["standard-jsonl"]
    dbmod.close_database()
    proc, url = start(db_path, "--base-url", "https://feeds.example.com/")
    try:
        assert urllib.request.urlopen(url + "/healthz", timeout=10).status == 200
        body = urllib.request.urlopen(url + service.share_path(export), timeout=30).read()
        assert body.count(b"\n") == 20
        # Another process rotates the token: the running server refuses the old URL at once.
        cli = [sys.executable, "-m", "tuiexport", "--db", str(db_path), "exports"]
        subprocess.run(
            [*cli, "rotate-token", export.export_id], check=True, capture_output=True, timeout=30
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + service.share_path(export), timeout=30)
        assert refused.value.code == 404
        new_url = subprocess.run(
            [*cli, "share-url", export.export_id],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        path = new_url[new_url.index("/api/v1/") :]
        assert urllib.request.urlopen(url + path, timeout=30).read() == body
    finally:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped." in err and export.share_token not in err
    assert re.search(r'"GET /api/v1/exports/[0-9a-f-]+/download\?token=\*\*\* HTTP/1.1" 200', err)


def test_serve_refuses_a_taken_port_in_one_sentence(tmp_path):
    import socket

    setup.prepare_database(tmp_path / "x.sqlite", load_sample=False)
    dbmod.close_database()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tuiexport",
                "--db",
                str(tmp_path / "x.sqlite"),
                "serve",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"tuiexport: Port {port} is in use; stop the program using it or choose another port "
        "(--port, or server_port in config.toml)."
    )


def test_the_server_never_imports_textual():
    code = (
        "import sys, tuiexport.server, tuiexport.server_cli, tuiexport.management.apikeys; "
        "sys.exit('textual' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=30, check=False).returncode == 0
