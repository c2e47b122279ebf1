"""Runs of dead processes end ``interrupted``: in another PID namespace (a container restarted as
PID 1 with the same host name), seen by a server that keeps running, or crashed in a live one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.shared_catalog import make_catalog
from tuiexport import db as dbmod
from tuiexport import engine, service, setup
from tuiexport.management import history, liveness
from tuiexport.models import Run
from tuiexport.server import start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "shared.sqlite"
    make_catalog(path, 3000)
    return path


def _start_stopped_run(home: Path, db: Path, *prefix: str) -> subprocess.Popen[bytes]:
    """``--run Big`` in its own session; stopped (SIGSTOP) as soon as its part file exists, so
    that it dies in the middle of the run when killed."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "tuiexport", "--db", str(db), "--run", "Big", "-q"],
        env={**os.environ, "TUIEXPORT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    folder = home / "artifacts"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(folder.glob("*/.*.part")):
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGSTOP)
    assert list(folder.glob("*/.*.part")), "the run never started writing"
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _age(db: Path, by: timedelta) -> None:
    """Let time pass for a dead run: its last heartbeat and part-file write move into the past
    (a dead process writes neither)."""
    setup.prepare_database(db, load_sample=False)
    try:
        for row in Run.select().where(Run.status == "running"):
            Run.update(heartbeat=row.heartbeat - by).where(Run.id == row.id).execute()
            part = liveness.part_path(Path(row.artifact_path), row.log_id)
            if part.exists():
                past = part.stat().st_mtime - by.total_seconds()
                os.utime(part, (past, past))
    finally:
        dbmod.close_database()


def _pid_namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _pid_namespaces_work(), reason="needs unshare(1) with PID namespaces")
def test_a_run_of_pid_1_in_a_dead_container_is_interrupted_by_the_next_pid_1(
    catalog: Path, isolated_home: Path
) -> None:
    """A container (PID namespace, same host name) dies mid-run; the next one is PID 1 again.
    "Same host, the pid exists" said alive forever; the heartbeat age decides instead."""
    container = ("unshare", "--pid", "--fork", "--mount-proc")
    proc = _start_stopped_run(isolated_home, catalog, *container)
    _kill(proc)
    shown = [*container, sys.executable, "-m", "tuiexport", "--db", str(catalog)]
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}

    def history_in_new_container() -> list[dict[str, object]]:
        done = subprocess.run(
            [*shown, "history", "--json"], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    [row] = history_in_new_container()
    assert row["status"] == "running"  # beat a moment ago: it may still be alive elsewhere
    _age(catalog, liveness.STALE_AFTER + timedelta(seconds=30))
    [row] = history_in_new_container()
    assert row["status"] == "interrupted"
    assert not list((isolated_home / "artifacts").glob("*/.*.part"))


def test_a_run_whose_process_was_replaced_by_another_with_its_pid_is_interrupted(
    catalog: Path, isolated_home: Path
) -> None:
    """Pids are reused: the process start time tells the new process from the dead one."""
    setup.prepare_database(catalog, load_sample=False)
    prepared = service.begin_run("Big")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # Our own identity, but another (live) pid: a process that is not the one that ran it.
        Run.update(pid=sleeper.pid).where(Run.log_id == prepared.log_id).execute()
        assert service.mark_interrupted() == 1
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)
    assert service.get_run(prepared.log_id).status == "interrupted"


def test_a_running_server_notices_a_dead_peers_run_on_its_own(
    catalog: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "SWEEP_EVERY", 0.2, raising=False)
    setup.prepare_database(catalog, load_sample=False)
    handle = start_server("127.0.0.1", 0, access_log=None)
    try:
        proc = _start_stopped_run(isolated_home, catalog)
        _kill(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and service.list_history()[0].status == "running":
            time.sleep(0.1)
    finally:
        handle.stop(grace=0.5)
    [run] = service.list_history()
    assert run.status == "interrupted"
    assert not list((isolated_home / "artifacts").glob("*/.*.part"))


def test_a_run_that_crashed_in_a_live_server_is_failed_at_once(
    catalog: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: engine.PreparedRun, *args: object, **kwargs: object) -> None:
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        self.part_path.write_bytes(b"half")
        raise MemoryError("out of memory")

    monkeypatch.setattr(engine.PreparedRun, "_execute", crash)
    setup.prepare_database(catalog, load_sample=False)
    handle = start_server("127.0.0.1", 0, access_log=None)
    try:
        active = handle.app.runs.start(service.get_definition("Big"))
        active.thread.join(timeout=30)
    finally:
        handle.stop(grace=0.5)
    run = service.get_run(active.log_id)
    assert run.status == "failed"
    assert run.messages[-1] == "The export failed: MemoryError: out of memory."
    assert not active.prepared.part_path.exists()


def test_heartbeats_go_on_without_progress_and_for_every_run_of_the_process(
    catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "HEARTBEAT_EVERY", 0.1)
    setup.prepare_database(catalog, load_sample=False)
    runs = [service.begin_run("Big"), service.begin_run("Small")]
    long_ago = runs[0].run.started - timedelta(hours=1)
    Run.update(heartbeat=long_ago).execute()
    with liveness.Heartbeat(runs[0].log_id), liveness.Heartbeat(runs[1].log_id):
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline and Run.select().where(Run.heartbeat == long_ago).exists()
        ):
            time.sleep(0.05)
    assert not Run.select().where(Run.heartbeat == long_ago).exists()
    Run.update(heartbeat=long_ago).execute()
    time.sleep(0.5)  # ended: nobody beats for them any more
    assert Run.select().where(Run.heartbeat == long_ago).count() == 2
