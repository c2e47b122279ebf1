"""The run history: every run, however started (its rows are written by :mod:`.runs` only)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import peewee as pw

from tuiexport import config
from tuiexport import db as dbmod
from tuiexport.db import database
from tuiexport.errors import NotFound
from tuiexport.management import artifacts, runs
from tuiexport.management.liveness import (
    HOST,
    STALE_AFTER,
    drop_connection,
    is_dead,
    owner,
    part_path,
)
from tuiexport.management.views import LinkView, RunView
from tuiexport.models import Run, utcnow
from tuiexport.storage import StorageError

#: Seconds between two looks of a running server for dead runs (see Sweeper).
SWEEP_EVERY = 30.0

STATUSES = (
    "queued",
    "running",
    "success",
    "warning",
    "failed",
    "cancelled",
    "interrupted",
    "held",
    "discarded",
)


def new_log_id() -> str:
    """Short, unique, easy to read aloud in a support call: 10 Crockford base32 characters."""
    with _random_lock:  # 50 random bits (7 bytes, 6 bits dropped) from a pool drawn 4 KiB at once
        if len(_random) < 7:
            _random[:] = os.urandom(4096)
        bits = int.from_bytes(_random[-7:]) >> 6
        del _random[-7:]
    return "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(0, 50, 5))


#: Random bytes for log IDs (one system call per ID showed in the profile of a download);
#: emptied in a forked child, which must not repeat its parent's IDs.
_random = bytearray()
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_random.clear)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


view = runs.view


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


def mark_interrupted(rows: Sequence[Run] | None = None) -> int:
    """Mark runs whose process died as ``interrupted`` and remove their partial files (of
    ``rows`` only, when given; every unfinished run otherwise).

    Called at every start (CLI, server, TUI), every SWEEP_EVERY by a running server, and by
    whoever waits for a run or admits one; see :func:`is_dead` for when a run's process is
    gone, on any host. A dead run whose file was complete (its outcome recorded, the file in
    place with that size and SHA-256) gets that outcome instead: it was killed between the
    final rename and the last update. A queued run that nobody waited for any more (its
    heartbeat is stale: the server that queued it is gone) and no process claimed ends too."""
    stale = utcnow() - STALE_AFTER
    if rows is None:
        rows = [*runs.running(), *runs.queued()]
    abandoned = [r for r in rows if r.status == runs.QUEUED and r.heartbeat < stale]
    for row in abandoned:
        runs.end(
            row,
            "interrupted",
            "No export process took this queued run and nobody waited for it any more; "
            "start 'tuiexport worker' (or 'tuiexport serve' without --no-exports).",
            Run.status == runs.QUEUED,
        )
    dead = [r for r in rows if r.status == "running" and is_dead(r, stale)]
    for row in dead:
        complete = bool(row.outcome) and _file_matches(row)

        def decide(fresh: Run, complete: bool = complete) -> None:
            if complete:
                fresh.messages = [
                    *fresh.messages,
                    "The process ended right after the file was complete; its size and "
                    "SHA-256 were checked at the next start.",
                ]
                fresh.status = fresh.outcome
                fresh.artifact_kept = True
            elif fresh.sha256 and not fresh.outcome:  # a served download (see record_served)
                fresh.messages = [*fresh.messages, "The server ended before the download finished."]
                fresh.status = "interrupted"
            else:
                fresh.messages = [
                    *fresh.messages,
                    "The process running this export ended before it finished.",
                ]
                fresh.status = "interrupted"
                fresh.sha256, fresh.size, fresh.product_count = None, None, 0

        runs.end_dead(row.id, decide)
        if row.artifact_path and not row.source_log_id:  # a download's path is its source's
            remove_partial(row.artifact_path, row.log_id, unpublished=not complete)
    return len(dead) + len(abandoned)


def settle(log_ids: Sequence[str]) -> dict[str, RunView]:
    """The runs of ``log_ids`` as they are now, the dead ones marked first (see
    :func:`mark_interrupted`): what a server waiting for runs of other processes asks."""
    rows = runs.by_log_ids(log_ids)
    if mark_interrupted([r for r in rows if r.status in runs.ACTIVE]):
        rows = runs.by_log_ids(log_ids)
    return {r.log_id: view(r) for r in rows}


def record_crash(log_id: str, error: BaseException) -> None:
    """A run whose thread ended with an error that ``execute`` did not record (the run stays
    ``running`` otherwise, in a process that is alive): failed, its partial file removed."""
    row = runs.by_log_id(log_id)
    if row is None or row.status != "running":
        return
    runs.end(
        row,
        "failed",
        f"The export failed: {type(error).__name__}: {error}.",
        Run.status == "running",
        outcome="",
        sha256=None,
        size=None,
    )
    if row.artifact_path:
        remove_partial(row.artifact_path, row.log_id)


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
    key = artifacts.key_of(row.artifact_path)
    if key is not None:
        try:
            stored = artifacts.store().stat(key)
        except StorageError:
            return False
        return stored is not None and (stored.size, stored.sha256) == (row.size, row.sha256)
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


record_outcome = runs.record_outcome


def remove_partial(artifact_path: str, log_id: str, *, unpublished: bool = True) -> None:
    """What a run that died left: its part file, and in the object store its pending upload
    (whose part file, if any, is the local spool at the key's place in the artifacts folder)
    and, ``unpublished``, an object it completed before it died (never served: its key is the
    dead run's alone)."""
    key = artifacts.key_of(artifact_path)
    target = config.artifacts_dir() / key if key is not None else Path(artifact_path)
    with contextlib.suppress(StorageError):  # the bucket's lifecycle rule ends it otherwise
        artifacts.discard_partial(artifact_path, part_path(target, log_id))
        if key is not None and unpublished:
            artifacts.delete(artifact_path)


def record_served(
    source: RunView,
    *,
    log_id: str | None = None,
    complete: bool = True,
    sent: int = 0,
    note: str = "",
    pending: bool = False,
    link: LinkView | None = None,
) -> RunView:
    """The history entry of a request that served an existing artifact instead of running
    (through the share ``link``, if it came through one).

    It copies the source run's figures and points at the same file, but never owns it
    (``artifact_kept`` stays false, so retention counts the file once, by its source run).
    A download the client broke off is recorded as ``cancelled``. With ``pending`` the entry
    says ``running`` until :func:`served_complete` (or :func:`served_incomplete`): a server
    that dies in the middle leaves a run the next start marks ``interrupted``."""
    served = Served(source, log_id or new_log_id(), note, complete, sent, pending, link)
    return view(runs.create(**_served_fields(served, utcnow())))


class Served(NamedTuple):
    """One served download for :func:`record_served_many` (the arguments of
    :func:`record_served`)."""

    source: RunView
    log_id: str
    note: str = ""
    complete: bool = True
    sent: int = 0
    pending: bool = False
    link: LinkView | None = None
    #: a byte range that ends before the file's last byte (see models.Run.partial)
    partial: bool = False


def record_served_many(served: Sequence[Served]) -> None:
    """The history entries of many served downloads (:func:`record_served` each), written with
    a few multi-row INSERTs: a busy server records thousands a second."""
    now = utcnow()
    notes: dict[tuple[str, str], list[str]] = {}
    # Downloads alike (the same file through the same link, whole) share one row but their log
    # IDs, converted once; in their order (the history's order is the requests').
    alike: dict[tuple[object, ...], dict[str, Any]] = {}
    rows = []
    for s in served:
        key = (
            s.source.log_id,
            s.note,
            s.complete,
            s.sent,
            s.pending,
            s.link.link_id if s.link is not None else None,
            s.link.name if s.link is not None else None,
            s.partial,
        )
        row = alike.get(key)
        if row is None:
            row = alike[key] = _served_fields(s, now, notes)
        rows.append(row)
    runs.create_many(rows, [s.log_id for s in served])


def _served_fields(
    served: Served, now: datetime, notes: dict[tuple[str, str], list[str]] | None = None
) -> dict[str, Any]:
    """The row of a served download. ``notes``: message lists already made in this batch, by
    (source run, note): downloads of one file share one list (converted once)."""
    source = served.source
    status = "running" if served.pending else source.status
    key = (source.log_id, served.note)
    messages = notes.get(key) if notes is not None and served.complete else None
    if messages is None:
        messages = [
            served.note
            or f"Served the artifact of run {source.log_id}; the definition and the "
            "catalog had not changed, so nothing was run again."
        ]
        if served.complete and notes is not None:
            notes[key] = messages
    if not served.complete:
        status = "cancelled"
        messages.append(
            f"The client closed the connection after {served.sent:,} of {source.size or 0:,} bytes."
        )
    return dict(
        log_id=served.log_id,
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
        messages=messages,
        supplier_shares=source.supplier_shares,
        host=HOST,
        pid=os.getpid(),
        owner=owner(),
        link_id=served.link.link_id if served.link is not None else None,
        link_name=served.link.name if served.link is not None else "",
        source_log_id=source.log_id,
        partial=served.partial,
    )


served_complete = runs.served_complete


def served_incomplete(log_id: str, sent: int, size: int | None) -> None:
    """The client broke off a download that :func:`record_served` had recorded up front."""
    row = runs.by_log_id(log_id)
    if row is None:
        return
    runs.end(
        row, "cancelled", f"The client closed the connection after {sent:,} of {size or 0:,} bytes."
    )
