"""A PostgreSQL server that restarts in the middle of a run: the run ends with the truth, the CLI
says so in one sentence, and the share server's /healthz says the database is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg_cluster import Cluster, running_cluster
from tests.shared_catalog import make_catalog, tx
from tuiexport import engine, service, setup
from tuiexport.management import liveness
from tuiexport.server import start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A throw-away cluster of our own (it is stopped and started by the tests)."""
    with running_cluster() as found:
        yield found


def test_a_restart_mid_run_fails_the_run_in_one_sentence_and_records_it(
    cluster: Cluster, isolated_home: Path
) -> None:
    make_catalog(cluster.url, 3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", cluster.url, "--run", "Big", "-q"],
        env={**os.environ, "TUIEXPORT_HOME": str(isolated_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(isolated_home.glob("artifacts/*/.*.part")):
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGSTOP)  # mid-run, its cursors open
        assert list(isolated_home.glob("artifacts/*/.*.part")), "the run never started writing"
        cluster.stop()
        cluster.start()
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "The connection to the database was lost during the run" in lines[0], err
    history = json.loads(tx(isolated_home, "--db", cluster.url, "history", "--json").stdout)
    assert [r["status"] for r in history] == ["failed"]
    assert "connection to the database was lost" in history[0]["messages"][-1]
    assert not list(isolated_home.glob("artifacts/*/.*.part"))


def test_healthz_says_503_while_the_database_is_down_and_200_when_back(
    cluster: Cluster, isolated_home: Path
) -> None:
    make_catalog(cluster.url, 100)
    setup.prepare_database(cluster.url, load_sample=False)
    handle = start_server("127.0.0.1", 0, access_log=None)

    def health() -> tuple[int, str, dict[str, object]]:
        try:
            with urllib.request.urlopen(handle.url + "/healthz", timeout=30) as resp:
                return resp.status, resp.headers["content-type"], json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["content-type"], json.loads(exc.read())

    share = handle.url + service.share_path(service.get_definition("Big"))
    try:
        assert health()[0] == 200
        cluster.stop()
        status, kind, body = health()
        assert (status, kind) == (503, "application/problem+json"), body
        assert "does not answer" in str(body["detail"]), body
        cluster.start()
        assert health()[0] == 200  # the server recovers on its own
        with urllib.request.urlopen(share, timeout=120) as resp:  # and runs exports again
            assert resp.status == 200 and resp.read().count(b'{"product":') == 100
    finally:
        handle.stop(grace=0.5)


def _held_selection(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Runs wait, their reading connection open, until ``go`` is set; ``waiting`` says one is."""
    waiting, go = threading.Event(), threading.Event()
    original = engine.prepare_selection

    def held(*args: Any, **kwargs: Any) -> tuple[int, int]:
        waiting.set()
        go.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare_selection", held)
    return waiting, go


def test_a_server_run_across_a_restart_ends_failed_with_the_reason(
    cluster: Cluster, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_catalog(cluster.url, 100)
    setup.prepare_database(cluster.url, load_sample=False)
    definition = service.get_definition("Big")
    waiting, go = _held_selection(monkeypatch)
    handle = start_server("127.0.0.1", 0, access_log=None)
    try:
        active = handle.app.runs.start(definition)
        assert waiting.wait(60)
        cluster.stop()
        cluster.start()
        go.set()
        active.thread.join(timeout=120)
        assert active.result is not None
        assert active.result.status == "failed", active.result.messages
        assert "connection to the database was lost" in active.result.messages[-1]
    finally:
        go.set()
        handle.stop(grace=0.5)


def test_a_database_that_stays_away_is_one_sentence_and_exit_1(
    cluster: Cluster,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tuiexport.cli import main

    make_catalog(cluster.url, 100)
    monkeypatch.setattr(liveness, "RECONNECT_FOR", 2.0)
    waiting, go = _held_selection(monkeypatch)
    stopper = threading.Thread(target=lambda: (waiting.wait(60), cluster.stop(), go.set()))
    stopper.start()
    try:
        code = main(["--db", cluster.url, "--run", "Big", "-q"])
    finally:
        go.set()
        stopper.join(timeout=120)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "did not come back within 2 seconds" in err, err
    cluster.start()
    [run] = json.loads(tx(isolated_home, "--db", cluster.url, "history", "--json").stdout)
    assert run["status"] in ("running", "interrupted")  # alive until this process ends
