"""Runs the server starts: background threads, the concurrency cap, sharing one run among
downloads of the same export, cancellation at stop, and the history rows of served artifacts."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tuiexport import config, service
from tuiexport.errors import Busy
from tuiexport.management import liveness
from tuiexport.management.views import DefinitionView, LinkView, RunView

#: Seconds a client is told to wait when every run slot is taken.
RETRY_AFTER = 5


class ActiveRun:
    """One run in a background thread; any number of downloads may follow it."""

    def __init__(
        self,
        prepared: service.PreparedRun,
        definition: DefinitionView,
        on_end: Callable[[ActiveRun], None] = lambda run: None,
    ):
        self.prepared = prepared
        self._on_end = on_end
        self.definition_updated = definition.updated
        self.export_id = definition.export_id
        self.cancel = threading.Event()
        self.result: RunView | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"tuiexport-run-{prepared.log_id}", daemon=True
        )

    @property
    def log_id(self) -> str:
        return self.prepared.log_id

    def _run(self) -> None:
        # This thread's connection opens on first use and is closed at the end, however the
        # run ended (not connection_context(): a run that reconnects after a lost database
        # server leaves that context nothing to pop).
        try:
            self.result = self.prepared.execute(cancel=self.cancel)
        except Exception as exc:  # noqa: BLE001 - execute() records failures itself; this is the last resort
            self.result = None
            print(
                f"tuiexport serve: run {self.log_id} crashed: {exc!r}", file=sys.stderr, flush=True
            )
            # The process lives on: say so in the history now, not at the next start (if even
            # that fails, the sweep finds the run once its heartbeat is stale).
            with contextlib.suppress(Exception):
                service.record_crash(self.log_id, exc)
        finally:
            liveness.drop_connection()
            self.prepared.done.set()
            self._on_end(self)

    def outcome(self) -> RunView:
        """The finished run as the history has it (call after ``prepared.done`` is set)."""
        if self.result is not None:
            return self.result
        return service.get_run(self.log_id)


class RunManager:
    def __init__(self, on_end: Callable[[ActiveRun], None] = lambda run: None) -> None:
        self._notify = on_end
        self._lock = threading.Lock()
        self._active: dict[str, ActiveRun] = {}  # log_id -> run
        self._closing = False

    def running(self) -> list[ActiveRun]:
        with self._lock:
            return list(self._active.values())

    def follow_or_start(
        self, definition: DefinitionView, link: LinkView | None = None
    ) -> tuple[ActiveRun | None, RunView | None, bool]:
        """For a share download (through ``link``): join a run of this export under way (same
        definition; it may have just finished), or serve an artifact that became current since
        the caller looked, or start a run (whose history row names ``link``). Returns
        ``(run, None, started_here)`` or ``(None, current run, False)``."""
        with self._lock:
            for active in self._active.values():
                if (
                    active.export_id == definition.export_id
                    and active.definition_updated == definition.updated
                    and not active.cancel.is_set()
                ):
                    return active, None, False
            # Checked again under the lock: a run that ended a moment ago left a current file.
            current = service.reusable_artifact(definition.export_id)
            if current is not None and artifact_file(current) is not None:
                return None, current, False
            return self._start_locked(definition, link), None, True

    def start(self, definition: DefinitionView) -> ActiveRun:
        with self._lock:
            return self._start_locked(definition)

    def _start_locked(self, definition: DefinitionView, link: LinkView | None = None) -> ActiveRun:
        if self._closing:
            raise Busy("The server is stopping; try again in a moment.")
        limit = max(1, config.settings().max_concurrent_runs)
        if len(self._active) >= limit:
            raise Busy(
                f"{len(self._active)} exports are running, the most this server runs at once; "
                f"try again in {RETRY_AFTER} seconds."
            )
        prepared = service.begin_run(
            definition.export_id, trigger="api", api_version=config.API_VERSION, link=link
        )
        active = ActiveRun(prepared, definition, on_end=self._ended)
        self._active[active.log_id] = active
        active.thread.start()
        return active

    def _ended(self, active: ActiveRun) -> None:
        # Notify (the share cache forgets) before the run leaves the table: a request that
        # looked up the export just before sees either this run here or its artifact there.
        self._notify(active)
        with self._lock:
            self._active.pop(active.log_id, None)

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new runs, cancel the running ones and wait for them to end as ``cancelled``."""
        with self._lock:
            self._closing = True
            runs = list(self._active.values())
        for active in runs:
            active.cancel.set()
        for active in runs:
            active.thread.join(timeout)


def artifact_file(run: RunView) -> Path | service.StoredFile | None:
    """The run's file: a path inside the artifacts folder that is there, or the published
    object in the object store; None otherwise (``service.why_artifact_missing`` says why)."""
    return service.find_artifact(run)
