"""What a share URL resolves to, cached while the database has not changed.

A share download (and above all its 304 revalidation) needs the definition, its validity and
the current artifact: a handful of queries that would cap the server at a few hundred requests
per second. SQLite tells each connection, with ``PRAGMA data_version``, whether *another*
connection committed since it last asked; every request asks its own connection first, and any
change anywhere (a rotated token, an edited definition, a catalog import, a finished run, in
this process or another) drops the whole cache. The server's own writes that could matter
(a run ending) drop it too. On other databases nothing is cached.
"""

from __future__ import annotations

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
    generation: int


class ShareCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ShareState | None] = {}
        self.generation = 0

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def _sync(self, seen: dict) -> int | None:
        """Compare this thread's connection's data_version with what it saw last; a change (or a
        connection with no past) invalidates. Returns the generation to cache under, or None."""
        if not is_sqlite():
            return None
        version = database.execute_sql("PRAGMA data_version").fetchone()[0]
        if seen.get("data_version") != version:
            seen["data_version"] = version
            self.invalidate()
        return self.generation

    def resolve(self, export_id: str, seen: dict) -> ShareState | None:
        """The share state of an export (None: no such export). ``seen`` is per connection."""
        generation = self._sync(seen)
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
            state = ShareState(definition, current, path, generation or 0)
        if generation is not None:
            with self._lock:
                if self.generation == generation:
                    self._entries[export_id] = state
        return state
