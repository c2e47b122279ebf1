"""The run history: every run, however started."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import peewee as pw

from tuiexport import config
from tuiexport import db as dbmod
from tuiexport.db import database
from tuiexport.errors import DatabaseLost, NotFound
from tuiexport.management.views import RunView
from tuiexport.models import Run, utcnow

#: Seconds between two heartbeats of a running run (see Heartbeat).
HEARTBEAT_EVERY = 5.0
#: Seconds between two looks of a running server for dead runs (see Sweeper).
SWEEP_EVERY = 30.0
#: How long a run's last history write waits for a lost database (a PostgreSQL restart) to
#: come back, trying once a second.
RECONNECT_FOR = 60.0
T = TypeVar("T")

STATUSES = ("running", "success", "warning", "failed", "cancelled", "interrupted")
#: A run whose heartbeat (and part file) is older than this is dead, wherever it runs: 24 beats
#: missed, and more than twice the SQLite busy timeout a beat may wait for the write lock.
STALE_AFTER = timedelta(minutes=2)
HOST = socket.gethostname()


def new_log_id() -> str:
    """Short, unique, easy to read aloud in a support call: 10 Crockford base32 characters."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def view(row: Run) -> RunView:
    return RunView(
        log_id=row.log_id,
        export_id=row.export_id,
        export_name=row.export_name,
        trigger=row.trigger,
        status=row.status,
        started=row.started,
        finished=row.finished,
        api_version=row.api_version,
        profile=row.profile,
        output=row.output,
        file_format=row.file_format,
        product_count=row.product_count,
        omitted_count=row.omitted_count,
        size=row.size,
        sha256=row.sha256,
        artifact_path=row.artifact_path,
        artifact_kept=row.artifact_kept,
        messages=json.loads(row.messages or "[]"),
        supplier_shares=json.loads(row.supplier_shares or "{}"),
    )


def list_history(
    limit: int = 200, offset: int = 0, *, export_id: str | None = None, status: str | None = None
) -> list[RunView]:
    """Runs, newest first."""
    query = Run.select()
    if export_id:
        query = query.where(Run.export_id == export_id)
    if status:
        query = query.where(Run.status == status)
    return [view(r) for r in query.order_by(Run.id.desc()).limit(limit).offset(offset)]


def count_history(export_id: str | None = None) -> int:
    query = Run.select()
    if export_id:
        query = query.where(Run.export_id == export_id)
    return query.count()


def get_run(log_id: str) -> RunView:
    row = Run.get_or_none(Run.log_id == (log_id or "").strip().upper())
    if row is None:
        raise NotFound(f"There is no run with log ID '{log_id}'.")
    return view(row)


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


def mark_interrupted() -> int:
    """Mark runs whose process died as ``interrupted`` and remove their partial files.

    Called at every start (CLI, server, TUI) and every SWEEP_EVERY by a running server; see
    :func:`is_dead` for when a run's process is gone. A dead run whose file was complete (its
    outcome recorded, the file in place with that size and SHA-256) gets that outcome instead:
    it was killed between the final rename and the last update."""
    dead = []
    stale = utcnow() - STALE_AFTER
    for row in Run.select().where(Run.status == "running"):
        if is_dead(row, stale):
            dead.append(row)
    for row in dead:
        complete = bool(row.outcome) and _file_matches(row)
        with database.atomic():
            fresh = Run.get_by_id(row.id)
            if fresh.status != "running":
                continue
            messages = json.loads(fresh.messages or "[]")
            if complete:
                messages.append(
                    "The process ended right after the file was complete; its size and "
                    "SHA-256 were checked at the next start."
                )
                fresh.status = fresh.outcome
                fresh.artifact_kept = True
            elif fresh.sha256 and not fresh.outcome:  # a served download (see record_served)
                messages.append("The server ended before the download finished.")
                fresh.status = "interrupted"
            else:
                messages.append("The process running this export ended before it finished.")
                fresh.status = "interrupted"
                fresh.sha256, fresh.size, fresh.product_count = None, None, 0
            fresh.finished = fresh.heartbeat
            fresh.messages = json.dumps(messages, ensure_ascii=False)
            fresh.save()
        if row.artifact_path:
            remove_partial(Path(row.artifact_path), row.log_id)
    return len(dead)


def record_crash(log_id: str, error: BaseException) -> None:
    """A run whose thread ended with an error that ``execute`` did not record (the run stays
    ``running`` otherwise, in a process that is alive): failed, its partial file removed."""
    row = Run.get_or_none(Run.log_id == log_id)
    if row is None or row.status != "running":
        return
    messages = json.loads(row.messages or "[]")
    messages.append(f"The export failed: {type(error).__name__}: {error}.")
    Run.update(
        status="failed",
        finished=utcnow(),
        messages=json.dumps(messages, ensure_ascii=False),
        outcome="",
        sha256=None,
        size=None,
    ).where(Run.id == row.id, Run.status == "running").execute()
    if row.artifact_path:
        remove_partial(Path(row.artifact_path), row.log_id)


class Sweeper:
    """Marks dead runs ``interrupted`` every ``every`` seconds (see :func:`mark_interrupted`),
    from a thread of its own, on its own connection: a server that runs for weeks notices a
    peer that died, or a run of its own that crashed, without a restart."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sweep, name="tuiexport-sweep", daemon=True)

    def start(self) -> None:
        if not dbmod.is_in_memory(database.obj):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _sweep(self) -> None:
        try:
            while not self._stop.wait(self._every):
                try:
                    mark_interrupted()
                except pw.PeeweeException:
                    drop_connection()
        finally:
            drop_connection()


def _file_matches(row: Run) -> bool:
    """The run's file is in place with the size and SHA-256 it recorded before the rename."""
    path = Path(row.artifact_path or "")
    try:
        if not row.sha256 or not path.is_file() or path.stat().st_size != row.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return bool(digest.hexdigest() == row.sha256)


def record_outcome(log_id: str, outcome: str, messages: list[str], **fields: object) -> None:
    """What a run will be once its file is in place, written just before the final rename (the
    row stays ``running`` until :meth:`PreparedRun._finish`)."""
    with database.atomic():
        Run.update(
            outcome=outcome, messages=json.dumps(messages, ensure_ascii=False), **fields
        ).where(Run.log_id == log_id, Run.status == "running").execute()


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
                    Run.update(heartbeat=utcnow()).where(
                        Run.log_id.in_(beating), Run.status == "running"
                    ).execute()
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


def part_path(target: Path, log_id: str) -> Path:
    """The temporary file a run writes beside its target before the atomic rename."""
    return target.with_name(f".{target.name}.{log_id}.part")


def remove_partial(target: Path, log_id: str) -> None:
    try:
        part_path(target, log_id).unlink()
    except OSError:
        pass


def record_served(
    source: RunView,
    *,
    log_id: str | None = None,
    complete: bool = True,
    sent: int = 0,
    note: str = "",
    pending: bool = False,
) -> RunView:
    """The history entry of a request that served an existing artifact instead of running.

    It copies the source run's figures and points at the same file, but never owns it
    (``artifact_kept`` stays false, so retention counts the file once, by its source run).
    A download the client broke off is recorded as ``cancelled``. With ``pending`` the entry
    says ``running`` until :func:`served_complete` (or :func:`served_incomplete`): a server
    that dies in the middle leaves a run the next start marks ``interrupted``."""
    now = utcnow()
    messages = [
        note
        or f"Served the artifact of run {source.log_id}; the definition and the "
        "catalog had not changed, so nothing was run again."
    ]
    status = "running" if pending else source.status
    if not complete:
        status = "cancelled"
        messages.append(
            f"The client closed the connection after {sent:,} of {source.size or 0:,} bytes."
        )
    with database.atomic():
        row = Run.create(
            log_id=log_id or new_log_id(),
            export_id=source.export_id,
            export_name=source.export_name,
            trigger="api",
            status=status,
            started=now,
            finished=now,
            heartbeat=now,
            api_version=config.API_VERSION,
            profile=source.profile,
            output=source.output,
            file_format=source.file_format,
            product_count=source.product_count,
            omitted_count=source.omitted_count,
            size=source.size,
            sha256=source.sha256,
            artifact_path=source.artifact_path,
            artifact_kept=False,
            messages=json.dumps(messages, ensure_ascii=False),
            supplier_shares=json.dumps(source.supplier_shares),
            host=HOST,
            pid=os.getpid(),
            owner=owner(),
        )
    return view(row)


def served_complete(log_id: str, status: str) -> None:
    """A download :func:`record_served` recorded as pending went out whole."""
    Run.update(status=status, finished=utcnow(), heartbeat=utcnow()).where(
        Run.log_id == log_id
    ).execute()


def served_incomplete(log_id: str, sent: int, size: int | None) -> None:
    """The client broke off a download that :func:`record_served` had recorded up front."""
    row = Run.get_or_none(Run.log_id == log_id)
    if row is None:
        return
    messages = json.loads(row.messages or "[]")
    messages.append(f"The client closed the connection after {sent:,} of {size or 0:,} bytes.")
    Run.update(
        status="cancelled",
        finished=utcnow(),
        messages=json.dumps(messages, ensure_ascii=False),
    ).where(Run.id == row.id).execute()
