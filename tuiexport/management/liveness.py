"""Whether the process of a run is alive: heartbeats, process identity, lost connections.

The rules are in docs/operations/one-database.md; ``history.mark_interrupted`` applies them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import peewee as pw

from tuiexport import db as dbmod
from tuiexport.db import database
from tuiexport.errors import DatabaseLost
from tuiexport.management import runs
from tuiexport.models import Run

#: Seconds between two heartbeats of a running run (see Heartbeat).
HEARTBEAT_EVERY = 5.0
#: A run whose heartbeat (and part file) is older than this is dead, wherever it runs: 24 beats
#: missed, and more than twice the SQLite busy timeout a beat may wait for the write lock.
STALE_AFTER = timedelta(minutes=2)
HOST = socket.gethostname()
#: How long a run's last history write waits for a lost database (a PostgreSQL restart) to
#: come back, trying once a second.
RECONNECT_FOR = 60.0
T = TypeVar("T")


def part_path(target: Path, log_id: str) -> Path:
    """The temporary file a run writes beside its target before the atomic rename."""
    return target.with_name(f".{target.name}.{log_id}.part")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks after boot (field 22 of /proc/PID/stat); ''
    when there is no such process (or no /proc)."""
    stat = _read(f"/proc/{pid}/stat") if pid > 0 else ""
    # The command name (field 2) is in parentheses and may itself contain spaces and ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def process_identity(pid: int | None = None) -> str:
    """``<boot id>/<PID namespace>/<start time>`` of a process (this one by default): a pid means
    the same process only on the same boot of the same kernel, in the same PID namespace, and
    only while the process with that pid started at the same time. '' without /proc."""
    boot, namespace = _boot_id(), _pid_namespace()
    start = _start_time(os.getpid() if pid is None else pid)
    return f"{boot}/{namespace}/{start}" if boot and namespace and start else ""


_identity: str | None = None


def owner() -> str:
    """This process's identity, for the runs it starts (see process_identity)."""
    global _identity
    if _identity is None:
        _identity = process_identity()
    return _identity


def _last_sign_of_life(row: Run) -> datetime:
    """The newer of the heartbeat and the part file's last write (a run writing its part file is
    alive even if its beats could not reach the database)."""
    last = row.heartbeat
    if row.artifact_path:
        try:
            mtime = part_path(Path(row.artifact_path), row.log_id).stat().st_mtime
        except OSError:
            return last
        written = datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)
        last = max(last, written)
    return last


def is_dead(row: Run, stale: datetime) -> bool:
    """Whether the process of a ``running`` run is gone (docs/operations/one-database.md).

    1. No heartbeat (nor part-file write) since ``stale``: dead, wherever it ran.
    2. Recorded by a process on this boot of this kernel, in this PID namespace: dead unless a
       process with its pid exists and started at the recorded time (pids are reused).
    3. A row without an identity (older versions): dead if of this host and its pid is gone.
    Otherwise (another machine, another container) only rule 1 can tell."""
    if _last_sign_of_life(row) < stale:
        return True
    boot, _, rest = (row.owner or "").partition("/")
    namespace, _, start = rest.rpartition("/")
    if row.owner:
        if boot == _boot_id() and namespace == _pid_namespace():
            return _start_time(row.pid) != start
        return False
    return row.host == HOST and not _alive(row.pid)


class Heartbeat:
    """Keeps a running run's heartbeat fresh (every HEARTBEAT_EVERY seconds) until it ends.

    One thread per process beats for all its running runs and downloads, in one UPDATE on a
    connection of its own: the beat neither waits for an export's progress nor shares a
    connection with an export's reads, and a server with 50 downloads holds one connection for
    them, not 50. A beat that fails (the database is locked for longer than the busy timeout, or
    a PostgreSQL server restarts) is skipped; the next one reconnects."""

    def __init__(self, log_id: str) -> None:
        self._log_id = log_id

    def __enter__(self) -> Self:
        # An in-memory database has no second connection (and no other process to tell).
        if not dbmod.is_in_memory(database.obj):
            _BEATS.add(self._log_id)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _BEATS.discard(self._log_id)


class _Beats:
    """The log IDs this process beats for, and the one thread that does it (started on demand,
    gone when there is nothing to beat for)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, log_id: str) -> None:
        with self._lock:
            self._live.add(log_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tuiexport-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()  # the interval may have changed; beat for the newcomer now

    def discard(self, log_id: str) -> None:
        with self._lock:
            self._live.discard(log_id)

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(HEARTBEAT_EVERY)
                self._wake.clear()
                with self._lock:
                    beating = sorted(self._live)
                    if not beating:
                        self._thread = None
                        return
                try:
                    runs.beat(beating)
                except pw.PeeweeException:
                    drop_connection()
        finally:
            drop_connection()


_BEATS = _Beats()


def lost_connection(error: BaseException) -> bool:
    """Whether ``error`` says the connection to a database server broke (not a bad query)."""
    if not isinstance(error, pw.OperationalError | pw.InterfaceError):
        return False
    return not dbmod.is_sqlite(database.obj)


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")


def write_through(write: Callable[[], T], what: str) -> T:
    """``write()`` on this thread's connection; when the database server connection broke
    (a PostgreSQL restart), reconnect and try again once a second for up to RECONNECT_FOR
    seconds, then raise DatabaseLost saying ``what`` could not be recorded."""
    deadline = time.monotonic() + RECONNECT_FOR
    for _ in range(int(RECONNECT_FOR) + 2):  # bounded by count as well as by time
        try:
            return write()
        except (pw.OperationalError, pw.InterfaceError) as exc:
            if not lost_connection(exc):
                raise
            error = exc
            drop_connection()
        if time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    raise DatabaseLost(
        f"The database connection was lost ({first_line(error)}) and did not come back within "
        f"{RECONNECT_FOR:.0f} seconds, so {what} could not be recorded; check the database "
        "server (the next start marks the run interrupted)."
    )


def drop_connection() -> None:
    """Close this thread's connection (the next query opens a new one)."""
    try:
        database.close()
    except pw.PeeweeException:  # broken, or left in a transaction: forget it all the same
        database.dispose()
