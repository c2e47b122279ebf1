"""Both cores: one ordered, windowed parallel map over chunks of the selection.

SQLite serialises the memory allocation of all connections of one process (a global mutex), so
two threads building records in SQLite run hardly faster than one; two processes use both
cores. :func:`run_parallel` therefore runs its SQL in worker processes
(:mod:`tuiexport.exporters.worker`, started as ``python -m``, standard library only) — or, where
``Tuning.worker_threads`` asks for it, on threads of this process running the very same code.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import tuiexport
from tuiexport.exporters import worker
from tuiexport.exporters.base import SELECTION_TABLE, ExportJob
from tuiexport.exporters.sql import use_fast_path

if TYPE_CHECKING:
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    from multiprocessing.connection import Connection

# subprocess, multiprocessing.connection and concurrent.futures are imported by the lanes that
# use them: most exports (every small one) run on one connection and never start a worker, and
# every ``--run`` from cron would pay for them at start.

#: The selection as seen by a worker connection: one chunk of puids, bound as a JSON array
#: (temporary tables belong to the connection that made them).
PAR_SELECTION = f"(SELECT value AS puid FROM json_each(?1)) AS {SELECTION_TABLE}"
#: The directory holding the ``tuiexport`` package this process runs: the workers import theirs
#: from it, so both sides always run the same code.
PACKAGE_ROOT = str(Path(tuiexport.__file__).resolve().parents[1])


def parallel_workers(job: ExportJob) -> int:
    """How many workers to use; 0 means "one connection, the job's own"."""
    if not use_fast_path(job):
        return 0
    workers = job.tuning.workers
    path = getattr(job.db, "database", "") or ""
    if workers < 2 or path in ("", ":memory:") or path.startswith("file::memory:"):
        return 0
    if job.total < job.tuning.parallel_min:
        return 0
    return workers


class _Lane(Protocol):
    """One worker: tasks go in, results come back in the same order."""

    def submit(self, task: str) -> Callable[[], Any]: ...

    def close(self) -> None: ...


class _ProcessLane:
    def __init__(self, uri: str, sql: str, handler: str):
        import subprocess
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        with theirs:
            # -E -s: no PYTHON* variables, no user site; -m puts the cwd (our package's root)
            # first on the path, so the worker imports the same tuiexport as this process.
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-E", "-s", "-m", worker.__name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                cwd=PACKAGE_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        self.conn: Connection = Connection(ours.detach())
        self.outstanding = 0
        self.conn.send((uri, sql, handler))

    def submit(self, task: str) -> Callable[[], Any]:
        self.conn.send(task)
        self.outstanding += 1
        return self._result

    def _result(self) -> Any:
        try:
            kind, value = _receive(self.conn)
        except (EOFError, OSError):
            self.proc.kill()
            assert self.proc.stderr is not None  # opened with stderr=PIPE
            lines = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            kind, value = "error", lines[-1] if lines else "no output"
        self.outstanding -= 1
        if kind != "ok":
            raise RuntimeError(f"Export worker failed: {value}")
        return value

    def close(self) -> None:
        import subprocess

        self.conn.close()  # the worker reads EOF and exits
        if self.outstanding:
            self.proc.kill()  # the export stopped early: the worker may be mid-task
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _read_into(fd: int, buffer: bytearray) -> bytearray:
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = os.readv(fd, [view[got:]])
        if not n:
            raise EOFError
        got += n
    return buffer


def _receive(conn: Connection) -> Any:
    """``conn.recv()``, without its cost for a chunk of a megabyte: ``Connection`` reads the
    message in pieces, each into a new buffer of all that remains, gathered in a ``BytesIO``
    (3.2 s of the export process's CPU to receive 1.1 GB, the JSON Lines file of 1M products;
    its pickle of a pipe before issue 15 took 0.3 s). Here it goes into one buffer of its size
    (0.3 s). The framing is ``Connection``'s (the worker sends with ``Connection.send``): a
    4-byte big-endian size, or -1 and an 8-byte one."""
    fd = conn.fileno()
    (size,) = struct.unpack("!i", _read_into(fd, bytearray(4)))
    if size == -1:
        (size,) = struct.unpack("!Q", _read_into(fd, bytearray(8)))
    import pickle  # here: most runs start no worker

    return pickle.loads(_read_into(fd, bytearray(size)))


class _ThreadLane:
    def __init__(self, uri: str, sql: str, handler: str):
        from concurrent.futures import ThreadPoolExecutor

        self.sql = sql
        self.process = worker.resolve(handler)
        self.pool: ThreadPoolExecutor = ThreadPoolExecutor(1, thread_name_prefix="export")
        self.db = worker.connect(uri)
        self.futures: list[Any] = []

    def _run(self, task: str) -> object:
        return self.process(self.db.execute(self.sql, (task,)).fetchall())

    def submit(self, task: str) -> Callable[[], Any]:
        future = self.pool.submit(self._run, task)
        self.futures.append(future)
        return future.result

    def close(self) -> None:
        for future in self.futures:
            future.cancel()
        self.pool.shutdown(wait=True)
        self.db.close()


def ordered_map(lanes: list[_Lane], tasks: Iterable[str], window: int) -> Iterator[Any]:
    """Task i to lane i mod n; results in task order; at most ``window`` tasks in flight."""
    pending: deque[Callable[[], Any]] = deque()
    for i, task in enumerate(tasks):
        pending.append(lanes[i % len(lanes)].submit(task))
        if len(pending) >= window:
            yield pending.popleft()()
    while pending:
        yield pending.popleft()()


def _tasks(job: ExportJob) -> Iterator[str]:
    """The selected puids in order, ``parallel_chunk`` at a time, each chunk as a JSON array
    built by SQLite (no Python int or tuple per puid: at 1M products that was about 1 s of the
    export process's CPU per pass over the selection)."""
    size = job.tuning.parallel_chunk
    chunk = f"SELECT max(puid), json_group_array(puid) FROM (SELECT puid FROM {SELECTION_TABLE}"
    last, task = job.db.execute_sql(f"{chunk} ORDER BY puid LIMIT ?)", (size,)).fetchone()
    while last is not None:
        yield task
        last, task = job.db.execute_sql(
            f"{chunk} WHERE puid > ? ORDER BY puid LIMIT ?)", (last, size)
        ).fetchone()


def run_parallel(job: ExportJob, sql: str, handler: str = "") -> Iterator[Any]:
    """Run ``sql`` (its ``?1`` is a chunk of selected puids, see :data:`PAR_SELECTION`) on
    worker connections, chunk after chunk; yields ``handler(rows)`` of each chunk in puid order.

    ``handler`` is ``"module:function"`` of a standard-library-only module (it runs in the
    worker, see :mod:`.worker`); ``""`` yields the rows. At most two chunks per worker are in
    flight (one being built, one waiting), so memory stays flat."""
    workers = parallel_workers(job) or 1
    uri = f"file:{urllib.parse.quote(os.path.abspath(job.db.database))}?mode=ro"
    lane = _ThreadLane if job.tuning.worker_threads else _ProcessLane
    lanes: list[_Lane] = []
    try:
        for _ in range(workers):
            lanes.append(lane(uri, sql, handler))
        yield from ordered_map(lanes, _tasks(job), 2 * workers)
    finally:
        for each in lanes:
            with contextlib.suppress(OSError):
                each.close()
