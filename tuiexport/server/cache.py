"""What a share URL resolves to, cached while the database has not changed.

A share download (and above all its 304 revalidation) needs the definition, its validity and
the current artifact: a handful of queries that would cap the server at a few hundred requests
per second. SQLite's ``PRAGMA data_version`` changes on a connection whenever *another*
connection committed. The cache asks the history recorder's connection (see
:mod:`tuiexport.server.recorder`) before every lookup, and drops everything when anyone else
changed anything (a rotated token, an edited definition, a catalog import, a finished run; in
this process or another). The rows of served downloads are written through that very connection,
so serving never empties the cache. A run ending in this server drops it too. On PostgreSQL
the database's triggers count each such change, whoever makes it (schema.CHANGE_COUNT_TABLE):
a lookup costs that one small query instead of the handful of its state, and is exact (a change
committed before the request is seen). An in-memory database is not cached.

The cache holds at most :data:`MAX_ENTRIES` exports, least recently used first out: unknown
export IDs (anyone can make up millions) are cached as "no such export" but cannot grow it.
Small current artifacts are kept in memory too (at most :data:`FILE_BYTES` together), so the
event loop serves them without a system call; they go with everything else (a published file is
never changed in place: a new run writes a new file, and retention's removal is a database change
that empties the cache).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuiexport import service
from tuiexport.errors import NotFound
from tuiexport.management.views import DefinitionView, LinkView, RunView
from tuiexport.server.runs import artifact_file


@dataclass(frozen=True)
class ShareState:
    definition: DefinitionView
    #: The run whose artifact is current (same definition, selection, catalog), if any.
    current: RunView | None
    #: Its file, checked to lie inside the artifacts folder, or its object in the store.
    path: Path | service.StoredFile | None

    def link(self, token: str) -> LinkView | None:
        """The export's active share link whose token this is (None: no link has it). The
        links come with the definition: a rotated or revoked link changes the database, which
        empties the cache before the next lookup."""
        return service.match_link(self.definition.links, token)


def _change_count(wait: bool) -> int | None:
    """The probe on PostgreSQL: its change counter (schema.CHANGE_COUNT_TABLE, kept by
    triggers whoever writes), one small query on the calling thread's connection; never on the
    event loop (``wait`` false: not cached, the request goes to a thread)."""
    if not wait:
        return None
    try:
        return service.change_count()
    except Exception:  # noqa: BLE001 - the database is away: do not cache, reconnect next time
        service.release_connection()
        return None


class Miss:
    """Not in the cache (see :meth:`ShareCache.peek`)."""


MISS = Miss()
#: Not known for a moment (see :meth:`ShareCache.look`).
BUSY = Miss()

#: Exports the cache remembers at most (known and unknown ones together).
MAX_ENTRIES = 4096
#: Bytes of small artifacts the cache keeps in memory at most.
FILE_BYTES = 16 << 20


class ShareCache:
    def __init__(self, data_version: Callable[[bool], int | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, ShareState | None] = OrderedDict()
        self._generation = 0
        self._probe = data_version
        #: whether the event loop's look can be answered (SQLite's data_version, now or in a
        #: moment); never on PostgreSQL
        self._loop_probe = data_version is not None
        if service.cluster_database():
            self._probe = _change_count
            self._loop_probe = False
        self._seen: int | None = None
        self._files: OrderedDict[Path | service.StoredFile, bytes] = OrderedDict()
        self._file_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._clear()

    def close(self) -> None:
        with self._lock:
            self._probe = None
            self._clear()

    def _clear(self) -> None:
        self._entries.clear()
        self._files.clear()
        self._file_bytes = 0

    def small_file(self, path: Path | service.StoredFile, limit: int) -> bytes | None:
        """The bytes of the current artifact ``path`` (from :meth:`peek` or :meth:`resolve`),
        read once per cache generation; None when it is larger than ``limit`` bytes or cannot
        be read (the caller opens it, and answers what that gives)."""
        with self._lock:
            data = self._files.get(path)
            if data is not None:
                self._files.move_to_end(path)
                return data
            generation = self._generation
        try:
            if isinstance(path, Path):
                with open(path, "rb") as f:
                    data = f.read(limit + 1)
            elif (stored := path.read(limit)) is None:
                return None
            else:
                data = stored
        except (OSError, NotFound, service.StorageError):
            return None
        if len(data) > limit:
            return None
        with self._lock:
            if self._generation == generation and path not in self._files:
                self._files[path] = data
                self._file_bytes += len(data)
                while self._file_bytes > FILE_BYTES:
                    self._file_bytes -= len(self._files.popitem(last=False)[1])
        return data

    def peek(self, export_id: str) -> ShareState | Miss | None:
        """The cached state of an export without waiting for anything (the event loop asks):
        :data:`MISS` when it is not cached or the probe is busy."""
        return self.look(export_id)[0]

    def look(self, export_id: str) -> tuple[ShareState | Miss | None, int]:
        """:meth:`peek`, and the generation the state belongs to (-1 with :data:`MISS`): an
        answer made from the state holds while :meth:`holds` of that generation is true.
        :data:`BUSY` (a MISS): whether the database changed cannot be told right now (the
        recorder is taking or giving up SQLite's write lock), but can in a moment."""
        generation = self._sync(wait=False)
        if generation is None:
            return (BUSY if self._loop_probe and self._probe is not None else MISS), -1
        with self._lock:
            if self._generation == generation and export_id in self._entries:
                self._entries.move_to_end(export_id)
                return self._entries[export_id], generation
        return MISS, -1

    def holds(self, generation: int) -> bool:
        """Whether nothing changed since ``generation`` (from :meth:`look`), without waiting
        (the event loop asks; False when that cannot be known now)."""
        return generation >= 0 and self._sync(wait=False) == generation

    def _sync(self, wait: bool = True) -> int | None:
        """The generation to cache under (None: do not cache); a change anywhere invalidates."""
        probe = self._probe
        if probe is None:
            return None
        version = probe(wait)
        with self._lock:
            if version is None:
                return None
            if version != self._seen:
                self._seen = version
                self._generation += 1
                self._clear()
            return self._generation

    def resolve(self, export_id: str) -> ShareState | None:
        """The share state of an export (None: no such export)."""
        generation = self._sync()
        if generation is not None:
            with self._lock:
                if export_id in self._entries:
                    self._entries.move_to_end(export_id)
                    return self._entries[export_id]
        try:
            definition = service.get_definition(export_id)
        except NotFound:
            state = None
        else:
            current = service.reusable_artifact(export_id) if definition.valid else None
            path = artifact_file(current) if current is not None else None
            state = ShareState(definition, current, path)
        if generation is not None:
            with self._lock:
                if self._generation == generation:
                    self._entries[export_id] = state
                    self._entries.move_to_end(export_id)
                    while len(self._entries) > MAX_ENTRIES:
                        self._entries.popitem(last=False)
        return state
