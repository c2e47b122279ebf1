"""Runs as a queue (issue 13): the processes that claim queued runs and run them.

A share server admits a run (engine.admit_run) and either runs it itself or leaves it
``queued``; an export process claims queued runs (runs.claim: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) and runs them: ``tuiexport worker``, or ``tuiexport serve`` on PostgreSQL unless it
was told not to run exports. On PostgreSQL the admission's ``NOTIFY`` wakes them at once
(:class:`Listener`); otherwise, and for a notification lost with a broken connection, they look
every :data:`POLL_EVERY` seconds.
"""

from __future__ import annotations

import contextlib
import select
import sys
import threading
import time

import peewee as pw

from tuiexport import db as dbmod
from tuiexport import engine
from tuiexport.db import database
from tuiexport.management import history, liveness, runs

#: Seconds between two looks for queued runs when no notification came.
POLL_EVERY = 1.0


class Listener:
    """``LISTEN channel`` on a PostgreSQL connection of its own (not on SQLite: :func:`listener`
    gives None there)."""

    def __init__(self, channel: str) -> None:
        self._channel = channel
        self._db: pw.Database | None = None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True when one came, or when the
        connection was (re)made or broke (what happened meanwhile is unknown: look again)."""
        try:
            if self._db is None:
                self._connect()
                return True
            connection = self._db.connection()
            if select.select([connection], [], [], timeout)[0]:
                connection.poll()
            if connection.notifies:
                connection.notifies.clear()
                return True
            return False
        except Exception:  # noqa: BLE001 - psycopg2's errors or a lost socket: listen anew
            self.close()
            time.sleep(min(timeout, 1.0))
            return True

    @property
    def listening(self) -> bool:
        return self._db is not None

    def _connect(self) -> None:
        db = dbmod.second_database(database.obj)
        db.connect(reuse_if_open=True)
        connection = db.connection()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'LISTEN "{self._channel}"')
        self._db = db

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception:  # noqa: BLE001 - a broken connection: forget it all the same
                db.dispose()


def cluster_database() -> bool:
    """Whether the open database is a server that processes on several hosts share
    (PostgreSQL), not an SQLite file of one machine."""
    db = database.obj
    return db is not None and not dbmod.is_sqlite(db)


def listener(channel: str) -> Listener | None:
    """A listener on ``channel``; None when the database is not PostgreSQL."""
    return Listener(channel) if cluster_database() else None


class Worker:
    """Claims queued runs and runs them in this process, at most ``jobs`` at once, each in a
    thread of its own (its heartbeat tells every host it is alive). :meth:`stop` cancels the
    runs still going: they end ``cancelled`` and leave no partial file."""

    def __init__(self, jobs: int, *, name: str = "worker") -> None:
        self._jobs = max(1, jobs)
        self._name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._thread = threading.Thread(target=self._loop, name="tuiexport-queue", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            going = list(self._running.values())
        for _, cancel in going:
            cancel.set()
        for thread, _ in going:
            thread.join(timeout)

    def _loop(self) -> None:
        wake = listener(runs.QUEUE_CHANNEL)
        try:
            while not self._stop.is_set():
                if self.running() < self._jobs and self._claim_one():
                    continue
                if wake is not None:
                    wake.wait(POLL_EVERY)
                else:
                    self._wake.wait(POLL_EVERY)
                self._wake.clear()
        finally:
            if wake is not None:
                wake.close()
            liveness.drop_connection()

    def _claim_one(self) -> bool:
        try:
            prepared = engine.claim_next()
        except pw.PeeweeException as exc:
            print(
                f"tuiexport {self._name}: cannot look for queued runs: {liveness.first_line(exc)}.",
                file=sys.stderr,
                flush=True,
            )
            liveness.drop_connection()
            return False
        if prepared is None:
            return False
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(prepared, cancel), name=f"tuiexport-run-{prepared.log_id}"
        )
        with self._lock:
            self._running[prepared.log_id] = (thread, cancel)
        thread.start()
        return True

    def _run(self, prepared: engine.PreparedRun, cancel: threading.Event) -> None:
        try:
            prepared.execute(cancel=cancel)
        except Exception as exc:  # noqa: BLE001 - execute() records failures; the last resort
            print(
                f"tuiexport {self._name}: run {prepared.log_id} crashed: {exc!r}",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(Exception):
                history.record_crash(prepared.log_id, exc)
        finally:
            liveness.drop_connection()
            with self._lock:
                self._running.pop(prepared.log_id, None)
            self._wake.set()
