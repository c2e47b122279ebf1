"""What a share URL resolves to, cached while the database has not changed.

A share download (and above all its 304 revalidation) needs the definition, its validity and
the current artifact: a handful of queries that would cap the server at a few hundred requests
per second. SQLite's ``PRAGMA data_version`` changes on a connection whenever *another*
connection committed. The cache keeps one probe connection that never writes, asks it before
every lookup, and drops everything when anyone changed anything (a rotated token, an edited
definition, a catalog import, a finished run; in this process or another). A run ending in this
server drops it too. Databases other than an SQLite file are not cached.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from tuiexport import service
from tuiexport.db import database, is_sqlite
from tuiexport.errors import NotFound
from tuiexport.management.views import DefinitionView, RunView
from tuiexport.server.runs import artifact_file


@dataclass(frozen=True)
class ShareState:
    definition: DefinitionView
    #: The run whose artifact is current (same definition, selection, catalog), if any.
    current: RunView | None
    #: Its file, checked to lie inside the artifacts folder.
    path: Path | None


class ShareCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ShareState | None] = {}
        self._generation = 0
        self._probe: sqlite3.Connection | None = None
        self._seen: int | None = None
        db = database.obj
        if db is not None and is_sqlite(db) and db.database not in ("", ":memory:"):
            try:
                uri = Path(db.database).resolve().as_uri() + "?mode=ro"
                self._probe = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.Error:
                self._probe = None

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def close(self) -> None:
        with self._lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def _sync(self) -> int | None:
        """The generation to cache under (None: do not cache); a change anywhere invalidates."""
        with self._lock:
            if self._probe is None:
                return None
            try:
                version = self._probe.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                return None
            if version != self._seen:
                self._seen = version
                self._generation += 1
                self._entries.clear()
            return self._generation

    def resolve(self, export_id: str) -> ShareState | None:
        """The share state of an export (None: no such export)."""
        generation = self._sync()
        if generation is not None:
            with self._lock:
                if export_id in self._entries:
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
        return state
