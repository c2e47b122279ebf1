"""The history rows of served downloads, written by one thread in batches.

A download never waits for the database: the request hands its events (began, ended whole,
broken off) to :class:`Recorder`, whose thread writes whatever has arrived in one transaction
every few milliseconds. A small download sent at once is one event, handed over once its
delivery is known (:meth:`Recorder.expect`, then :meth:`Recorder.record`). A download that
began and ended within one batch is written once, with its final status; one still going is
written as ``running`` and finished later (a server that dies meanwhile leaves it to the next
start to mark ``interrupted``). :meth:`Recorder.close`
writes everything still queued: a clean stop loses no row.

The thread's database connection is also the share cache's change detector
(:meth:`Recorder.data_version`): SQLite's ``data_version`` changes for other connections'
commits only, so recording downloads never empties the share cache, while anything anyone
else writes (a rotated token, an edited definition, a finished run, a catalog import) still
does. The event loop never waits for that connection: while a batch holds it, the loop gets
the value the batch read right after it took SQLite's write lock (exact until its ``COMMIT``:
no other connection can commit meanwhile), and once per turn of the loop is enough (the
requests of one turn are answered from one look).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tuiexport import service
from tuiexport.management.views import LinkView, RunView

#: Seconds the thread waits after an event for more before it writes a batch (larger batches
#: cost less per row: a random log ID dirties its own page of the unique index, and rows of
#: one batch share those pages; 600-row batches took 25 us of CPU per row, 1,500-row ones 19).
BATCH_WAIT = 0.1
#: Events per transaction at most.
BATCH_MAX = 4096
#: Rows written between two checkpoints of the WAL (SQLite file): a served row with its index
#: entries takes 1.6-3.6 KiB of WAL (large batches to small ones, measured), so the WAL grows to
#: 6-14 MiB between two (SQLite's own threshold: 1,000 pages, 4 MiB); a page written by several
#: batches is copied back once (every 1,000 rows: 4.4 us of CPU per row, every 5,000: 2.8).
CHECKPOINT_ROWS = 4000
#: Seconds between two writes of one share link's ``last_seen`` (a consumer revalidating many
#: times a second costs one row update a minute).
SEEN_EVERY = 60.0


@dataclass(frozen=True)
class _Begin:
    source: RunView
    log_id: str
    note: str
    written: threading.Event | None = None
    link: LinkView | None = None
    partial: bool = False


@dataclass(frozen=True)
class _End:
    log_id: str
    complete: bool
    status: str
    sent: int
    size: int | None


@dataclass(frozen=True)
class _Once:
    """A download that began and ended (one row)."""

    served: service.Served


@dataclass(frozen=True)
class _Seen:
    link_id: int


_STOP = object()


class Recorder:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()  # the connection: batches and data_version probes
        self._probe: Callable[[], int] | None = None
        self._checkpoints: service.Checkpoints | None = None
        self._ready = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._open = 0  # downloads begun and not yet ended
        self._seen: dict[int, float] = {}  # share link -> when its last_seen was last queued
        #: data_version while a batch holds SQLite's write lock (None: no batch holds it)
        self._locked_version: int | None = None
        #: data_version as the event loop saw it in this turn of the loop (None: not looked yet)
        self._turn_version: int | None = None
        self._thread = threading.Thread(target=self._run, name="tuiexport-recorder", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    # --- called by requests (never blocks) ------------------------------------------------

    def begin(
        self,
        source: RunView,
        log_id: str | None = None,
        note: str = "",
        written: threading.Event | None = None,
        link: LinkView | None = None,
        *,
        partial: bool = False,
    ) -> str:
        """A download of ``source``'s artifact (through the share ``link``) began; returns its
        log ID. ``written`` is set once its row is in the database (for downloads that wait for
        it before they start); ``partial``: a byte range that ends before the file's last byte
        (recorded, not counted as a fetch)."""
        log_id = log_id or service.new_log_id()
        self._put(_Begin(source, log_id, note, written, link, partial))
        return log_id

    def end(
        self,
        log_id: str,
        *,
        complete: bool,
        status: str = "success",
        sent: int = 0,
        size: int | None = None,
    ) -> None:
        """The download ``log_id`` went out whole (``status``: the source's) or was broken off."""
        self._put(_End(log_id, complete, status, sent, size))

    def record(
        self,
        source: RunView,
        *,
        complete: bool = True,
        sent: int = 0,
        note: str = "",
        link: LinkView | None = None,
        log_id: str | None = None,
        partial: bool = False,
        expected: bool = False,
    ) -> str:
        """A download that began and ended: one row, one event. ``expected``: announced by
        :meth:`expect` when it began."""
        log_id = log_id or service.new_log_id()
        served = service.Served(source, log_id, note, complete, sent, link=link, partial=partial)
        with self._idle:
            self._pending += 1
            if expected:
                self._open -= 1
        self._queue.put(_Once(served))
        return log_id

    def expect(self) -> None:
        """A download began that :meth:`record` will record, with ``expected``, once it ended
        (:meth:`flush` waits for it meanwhile)."""
        with self._idle:
            self._open += 1

    def unexpect(self) -> None:
        """An expected download did not happen after all (nothing of it went out): no row."""
        with self._idle:
            self._open -= 1
            self._idle.notify_all()

    def seen(self, link: LinkView) -> None:
        """A request came through the share ``link`` (also one that gets no file: a 304, a
        HEAD): its consumer is alive. Written at most once per :data:`SEEN_EVERY` per link."""
        now = time.monotonic()
        last = self._seen.get(link.link_id)
        if last is None or now - last >= SEEN_EVERY:
            self._seen[link.link_id] = now
            self._put(_Seen(link.link_id))

    def _put(self, event: object) -> None:
        with self._idle:
            self._pending += 1
            if isinstance(event, _Begin):
                self._open += 1
            elif isinstance(event, _End):
                self._open -= 1
        self._queue.put(event)

    # --- the share cache's change detector --------------------------------------------------

    @property
    def probes(self) -> bool:
        """Whether the database is an SQLite file this recorder can watch for changes."""
        return self._probe is not None

    def data_version(self, wait: bool = True) -> int | None:
        """``PRAGMA data_version`` on the recorder's connection (None: unknown right now, e.g.
        the connection is busy writing and ``wait`` is false)."""
        if self._probe is None:
            return None
        if not wait:
            return self._loop_version()
        if sqlite3.threadsafety == 3:
            # SQLite serialises calls on one connection itself: ask between (or within) the
            # recorder's statements instead of waiting for its whole batch. Its uncommitted
            # rows do not change data_version either. Not for the event loop (``wait`` false):
            # a statement of the batch may wait for another writer (busy timeout) or for a
            # checkpoint's fsync, and the loop must never wait for the disk.
            try:
                return self._probe()
            except Exception:  # noqa: BLE001 - any database error: the caller does not cache
                return None
        if not self._lock.acquire(timeout=0.05):
            return None
        try:
            return self._probe()
        except Exception:  # noqa: BLE001 - any database error: the caller does not cache
            return None
        finally:
            self._lock.release()

    def _loop_version(self) -> int | None:
        """:meth:`data_version` for the event loop, which must never wait: looked up once per
        turn of the loop; while a batch holds the connection, the value it read under SQLite's
        write lock; None (unknown) while a batch takes or gives up that lock."""
        if self._turn_version is not None:
            return self._turn_version
        assert self._probe is not None
        if self._lock.acquire(blocking=False):
            try:
                version: int | None = self._probe()
            except Exception:  # noqa: BLE001 - any database error: the caller does not cache
                return None
            finally:
                self._lock.release()
        else:
            version = self._locked_version
        if version is not None:
            with contextlib.suppress(RuntimeError):  # not on an event loop: no turn to keep it for
                asyncio.get_running_loop().call_soon(self._forget_turn)
                self._turn_version = version
        return version

    def _forget_turn(self) -> None:
        self._turn_version = None

    @contextlib.contextmanager
    def _holding_write_lock(self) -> Iterator[None]:
        """Inside a batch's transaction, after it took SQLite's write lock: the data_version
        read now stays exact until the COMMIT (left before it)."""
        assert self._probe is not None
        self._locked_version = self._probe()
        try:
            yield
        finally:
            self._locked_version = None

    # --- stop ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every download begun so far has ended and its row is written; True when
        they have (False: ``timeout`` passed, e.g. a long download is still going)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0 and self._open <= 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            try:
                self._probe = service.data_version_probe()
            except Exception:  # noqa: BLE001 - no probe: the share cache does not cache
                self._probe = None
            with contextlib.suppress(Exception):  # none: SQLite checkpoints inside the commits
                self._checkpoints = service.wal_checkpoints()
            self._ready.set()
            stop = False
            unchecked = 0  # rows written since the last checkpoint
            while not stop:
                events = [self._queue.get()]
                # Then sleep once and take what came meanwhile: waiting on the queue for each
                # event would wake this thread (and take the GIL from the event loop) per event.
                time.sleep(BATCH_WAIT)
                with contextlib.suppress(queue.Empty):
                    while len(events) < BATCH_MAX:
                        events.append(self._queue.get_nowait())
                if any(e is _STOP for e in events):
                    stop = True
                    events = [e for e in events if e is not _STOP]
                    with contextlib.suppress(queue.Empty):
                        while True:
                            events.append(self._queue.get_nowait())
                unchecked += self._write([e for e in events if e is not _STOP])
                if unchecked >= CHECKPOINT_ROWS and self._checkpoints is not None:
                    # Apart from the batch's COMMIT, on another connection: while the loop
                    # cannot tell whether the database changed (the batch takes or gives up
                    # SQLite's write lock), the answers it keeps wait; a checkpoint inside the
                    # COMMIT (syncing the disk) made them wait for it too.
                    unchecked = 0
                    try:
                        self._checkpoints.run()
                    except Exception as exc:  # noqa: BLE001 - reported; the next batch tries again
                        print(
                            f"tuiexport serve: checkpointing the database's WAL failed: {exc}",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            self._ready.set()
            if self._checkpoints is not None:
                with contextlib.suppress(Exception):
                    self._checkpoints.close()
            with contextlib.suppress(Exception):
                service.release_connection()

    def _write(self, events: list[object]) -> int:
        """Write ``events``; returns the rows it wrote or changed (about)."""
        if not events:
            return 0
        served: list[service.Served] = []
        later: list[Callable[[], object]] = []
        begun: dict[str, _Begin] = {}
        for event in events:
            if isinstance(event, _Once):
                served.append(event.served)
            elif isinstance(event, _Begin):
                begun[event.log_id] = event
            elif isinstance(event, _End):
                start = begun.pop(event.log_id, None)
                if start is None:
                    later.append(_later(event))
                else:
                    served.append(
                        service.Served(
                            start.source,
                            start.log_id,
                            start.note,
                            event.complete,
                            event.sent,
                            link=start.link,
                            partial=start.partial,
                        )
                    )
        # Downloads still going: "running" rows, finished by their ends in later batches.
        served += [
            service.Served(b.source, b.log_id, b.note, pending=True, link=b.link, partial=b.partial)
            for b in begun.values()
        ]
        # In the order the downloads began: the history's order is the requests' order.
        began = {e.log_id: i for i, e in enumerate(events) if isinstance(e, _Begin)}
        began |= {e.served.log_id: i for i, e in enumerate(events) if isinstance(e, _Once)}
        served.sort(key=lambda s: began[s.log_id])
        rows: list[Callable[[], object]] = [_rows(served)] if served else []
        seen = {e.link_id for e in events if isinstance(e, _Seen)}
        if seen:
            later.append(lambda: service.link_seen(seen))
        try:
            with self._lock:
                locked = self._holding_write_lock if self._probe is not None else None
                service.write_together([*rows, *later], locked=locked)
        except Exception as exc:  # noqa: BLE001 - one by one, so one bad row loses only itself
            for write in [*(_rows([s]) for s in served), *later]:
                try:
                    with self._lock:
                        service.write_together([write])
                except Exception:  # noqa: BLE001 - reported, not raised: serving goes on
                    print(
                        f"tuiexport serve: a download's history row was not written: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            for event in events:
                if isinstance(event, _Begin) and event.written is not None:
                    event.written.set()
            with self._idle:
                self._pending -= len(events)
                self._idle.notify_all()
        return len(events)


def _rows(served: list[service.Served]) -> Callable[[], object]:
    return lambda: service.record_served_many(served)


def _later(end: _End) -> Callable[[], object]:
    if end.complete:
        return lambda: service.served_complete(end.log_id, end.status)
    return lambda: service.served_incomplete(end.log_id, end.sent, end.size)
