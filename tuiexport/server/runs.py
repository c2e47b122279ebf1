"""Runs the server starts: background threads, the concurrency cap, sharing one run among
downloads of the same export, cancellation at stop, and the history rows of served artifacts."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tuiexport import config, service
from tuiexport.errors import Busy
from tuiexport.management import liveness
from tuiexport.management.views import DefinitionView, LinkView, RunView

#: Seconds a client is told to wait when every run slot is taken.
RETRY_AFTER = 5


class ActiveRun:
    """One run any number of downloads may follow: run ``here`` in a background thread, or by
    another process (another host's worker, say), whose row :class:`RunManager` watches."""

    def __init__(
        self,
        prepared: service.PreparedRun,
        definition: DefinitionView,
        on_end: Callable[[ActiveRun], None] = lambda run: None,
        *,
        here: bool = True,
    ):
        self.prepared = prepared
        self._on_end = on_end
        self.here = here
        self.definition_updated = definition.updated
        self.export_id = definition.export_id
        self.cancel = threading.Event()
        self.result: RunView | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"tuiexport-run-{prepared.log_id}", daemon=True
        )
        #: No export process has taken it yet (a run another process is to run; the watcher
        #: clears it when the row says ``running``).
        self.queued = prepared.run.status == "queued"
        if not here:
            # Its part file is another process's (maybe on another host): downloads wait for
            # the end and serve the published file.
            prepared.may_be_withheld = True

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
            self.ended()

    def ended(self, result: RunView | None = None) -> None:
        if result is not None:
            self.result = result
        self.prepared.done.set()
        self._on_end(self)

    def outcome(self) -> RunView:
        """The finished run as the history has it (call after ``prepared.done`` is set)."""
        if self.result is not None:
            return self.result
        return service.get_run(self.log_id)


#: Seconds between two looks at the rows of runs other processes run for this server.
WATCH_EVERY = 0.2


class RunManager:
    """The runs of one server, by the cluster-wide rules (service.admit_run): one run per
    export and fingerprint at a time and ``max_concurrent_runs`` at once across every server on
    the database. With ``run_exports`` (the default) the server runs the runs it admits;
    without, it queues them for export processes (``tuiexport worker``; ``tuiexport serve``
    on PostgreSQL claims queued runs too, see server_cli)."""

    def __init__(
        self, on_end: Callable[[ActiveRun], None] = lambda run: None, run_exports: bool = True
    ) -> None:
        self._notify = on_end
        self._lock = threading.Lock()
        self._active: dict[str, ActiveRun] = {}  # log_id -> run
        self._closing = False
        self._run_exports = run_exports
        self._watcher: threading.Thread | None = None

    def running(self) -> list[ActiveRun]:
        with self._lock:
            return list(self._active.values())

    def count(self) -> int:
        """How many runs this server has under way (without the lock: one len())."""
        return len(self._active)

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
            active, created = self._admit_locked(definition, link)
            return active, None, created

    def start(self, definition: DefinitionView) -> ActiveRun:
        """A run of the export (an API trigger); an unfinished one of the same definition and
        catalog, anywhere in the cluster, is followed instead."""
        with self._lock:
            return self._admit_locked(definition)[0]

    def _admit_locked(
        self, definition: DefinitionView, link: LinkView | None = None
    ) -> tuple[ActiveRun, bool]:
        if self._closing:
            raise Busy("The server is stopping; try again in a moment.")
        admitted = service.admit_run(
            definition.export_id,
            limit=max(1, config.settings().max_concurrent_runs),
            claim=self._run_exports,
            api_version=config.API_VERSION,
            link=link,
        )
        if admitted.prepared is None:
            raise Busy(
                f"{admitted.active} exports are running or queued, the most the share servers "
                f"run at once; try again in {RETRY_AFTER} seconds."
            )
        known = self._active.get(admitted.prepared.log_id)
        if known is not None:
            # A queued run may have been re-evaluated for this state of the definition.
            known.definition_updated = definition.updated
            return known, False
        active = ActiveRun(admitted.prepared, definition, on_end=self._ended, here=admitted.here)
        self._active[active.log_id] = active
        if active.here:
            active.thread.start()
        elif self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="tuiexport-run-watch", daemon=True
            )
            self._watcher.start()
        return active, admitted.created

    def _watch(self) -> None:
        """Until no run of another process is followed: read their rows (the dead ones marked
        interrupted, wherever they ran), end the followers of finished ones, and keep the
        heartbeat of queued ones fresh (someone waits for them)."""
        beaten = 0.0
        try:
            while True:
                with self._lock:
                    followed = [a for a in self._active.values() if not a.here]
                    if not followed:
                        self._watcher = None
                        return
                try:
                    rows = service.settle_runs([a.log_id for a in followed])
                    waiting = [r.log_id for r in rows.values() if r.status == "queued"]
                    if waiting and time.monotonic() - beaten >= liveness.HEARTBEAT_EVERY:
                        service.beat_queued(waiting)
                        beaten = time.monotonic()
                except Exception:  # noqa: BLE001 - the database is away: look again soon
                    liveness.drop_connection()
                    time.sleep(1.0)
                    continue
                for active in followed:
                    row = rows.get(active.log_id)
                    if row is not None and row.status != "queued":
                        active.queued = False
                    if row is None or row.status not in ("queued", "running"):
                        active.ended(row)
                time.sleep(WATCH_EVERY)
        finally:
            liveness.drop_connection()

    def _ended(self, active: ActiveRun) -> None:
        # Notify (the share cache forgets) before the run leaves the table: a request that
        # looked up the export just before sees either this run here or its artifact there.
        self._notify(active)
        with self._lock:
            self._active.pop(active.log_id, None)

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new runs, cancel the running ones and wait for them to end as ``cancelled``
        (runs of other processes go on there)."""
        with self._lock:
            self._closing = True
            runs = [a for a in self._active.values() if a.here]
        for active in runs:
            active.cancel.set()
        for active in runs:
            active.thread.join(timeout)


def artifact_file(run: RunView) -> Path | service.StoredFile | None:
    """The run's file: a path inside the artifacts folder that is there, or the published
    object in the object store; None otherwise (``service.why_artifact_missing`` says why)."""
    return service.find_artifact(run)
