"""The runs table: the one module that writes it, and the mapping of its rows to RunView.

Every write of a run's row goes through here, whoever makes it: the engine (create, outcome,
finish, retention), the heartbeat thread (``liveness.Heartbeat``), the history's sweep for dead
runs and a served download (``history``). The policy (which run is dead, what a message says)
stays with the callers; this module only reads and writes rows. It imports nothing of the
management package, so that each of those can import it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
import peewee as pw
from peewee import fn

from tuiexport.db import database
from tuiexport.management.views import RunView
from tuiexport.models import Run, utcnow


def view(row: Run) -> RunView:
    """The row as the front ends see it (the JSON columns are decoded by their field)."""
    return msgspec.convert(row, RunView, from_attributes=True)


# --- reads ------------------------------------------------------------------------------------


def by_log_id(log_id: str) -> Run | None:
    row: Run | None = Run.get_or_none(Run.log_id == log_id)
    return row


def last_run(export_id: str) -> Run | None:
    """The newest run of an export, whatever its status."""
    row: Run | None = Run.select().where(Run.export_id == export_id).order_by(Run.id.desc()).first()
    return row


def last_runs() -> dict[str, Run]:
    """The newest run of every export that has one, by export ID."""
    last_ids = Run.select(fn.MAX(Run.id)).group_by(Run.export_id)
    return {r.export_id: r for r in Run.select().where(Run.id.in_(last_ids))}


#: A full run (not a delta, issue 12): what retention, the publish gate and share URLs count.
FULL = Run.delta_base == ""


def kept_runs(export_id: str, *, deltas: bool = False) -> list[Run]:
    """The full runs (or the deltas) of an export whose artifact is still kept, newest first."""
    return list(
        Run.select()
        .where(
            Run.export_id == export_id,
            Run.artifact_kept == True,  # noqa: E712 - peewee SQL
            ~FULL if deltas else FULL,
        )
        .order_by(Run.id.desc())
    )


def manifest_runs(export_id: str) -> list[Run]:
    """The full runs of an export that may have a fingerprint manifest, newest first."""
    return list(
        Run.select(Run.id, Run.log_id, Run.status)
        .where(
            Run.export_id == export_id,
            Run.status.in_(["running", "success", "warning", "held"]),
            FULL,
        )
        .order_by(Run.id.desc())
    )


def newest_complete_kept(export_id: str) -> Run | None:
    """The newest successful run (success or warning) of an export whose artifact is kept."""
    row: Run | None = (
        Run.select()
        .where(
            Run.export_id == export_id,
            Run.status.in_(["success", "warning"]),
            Run.artifact_kept == True,  # noqa: E712 - peewee builds SQL from ==
            FULL,
        )
        .order_by(Run.id.desc())
        .first()
    )
    return row


#: Statuses of a run the publish gate stopped: ``held`` waits for the operator, ``discarded``
#: was refused by them (its file deleted).
GATED = ("held", "discarded")


def last_published(export_id: str) -> Run | None:
    """The newest run of an export whose file was published (success or warning, or approved
    since): what the publish gate compares a new run with. A served download (a copy of another
    run's figures, no outcome of its own) does not count."""
    row: Run | None = (
        Run.select()
        .where(
            Run.export_id == export_id,
            Run.status.in_(["success", "warning"]),
            Run.outcome != "",
            FULL,
        )
        .order_by(Run.id.desc())
        .first()
    )
    return row


def newest_withheld(export_id: str, fingerprint: str) -> Run | None:
    """The newest run of an export, made from the state ``fingerprint``, whose file was not
    published and would not be if that state ran again: the publish gate stopped it (held, or
    discarded since), or it failed validation (validate.InvalidArtifact)."""
    from tuiexport.exporters.validate import FAILED

    row: Run | None = (
        Run.select()
        .where(
            Run.export_id == export_id,
            Run.fingerprint == fingerprint,
            Run.status.in_(GATED)
            | (
                (Run.status == "failed")
                # Cast: the raw JSON text (the field would encode FAILED as a JSON value).
                & Run.messages.cast("TEXT").contains(FAILED)
            ),
        )
        .order_by(Run.id.desc())
        .first()
    )
    return row


def running() -> list[Run]:
    return list(Run.select().where(Run.status == "running"))


def by_log_ids(log_ids: Iterable[str]) -> list[Run]:
    return list(Run.select().where(Run.log_id.in_(list(log_ids))))


#: A run that waits for an export process to claim it (issue 13: runs are a queue).
QUEUED = "queued"
#: The statuses of a run nobody has finished yet.
ACTIVE = (QUEUED, "running")
#: PostgreSQL's channel that wakes the export processes when a run is queued.
QUEUE_CHANNEL = "tuiexport_runs"
#: The advisory lock (any constant; "tuiexpo" in ASCII) admissions hold on PostgreSQL.
_ADMISSION_LOCK = 0x7475696578706F

#: The runs the share servers started (share URLs, API triggers), not the downloads they
#: served: what the cluster-wide rules count and follow.
_SERVER_RUNS = (Run.trigger == "api") & (Run.source_log_id == "") & FULL


def queued() -> list[Run]:
    return list(Run.select().where(Run.status == QUEUED))


def server_runs_active(export_id: str | None = None) -> list[Run]:
    """The unfinished runs the share servers started (of one export, or all), oldest first."""
    query = Run.select().where(Run.status.in_(ACTIVE), _SERVER_RUNS)
    if export_id is not None:
        query = query.where(Run.export_id == export_id)
    return list(query.order_by(Run.id))


def admit(
    fields: dict[str, Any],
    limit: int,
    reevaluate: Callable[[Run], dict[str, Any]] | None = None,
) -> tuple[Run | None, bool, int]:
    """A share server's run, by the cluster-wide rules, in one transaction that every host's
    admissions take in turn (PostgreSQL: an advisory lock; SQLite: its one writer lock):

    - an unfinished run of the same export and fingerprint: ``(that run, False, n)``;
    - a queued run of the same export made from another state (the definition or catalog
      changed since): that run, its row updated with ``reevaluate(row)`` (it runs the state
      of now, which this request asks for), ``(that run, False, n)``;
    - ``limit`` server runs unfinished already: ``(None, False, n)``;
    - else the new row of ``fields``: ``(row, True, n)``.

    ``n`` is how many server runs were unfinished. A queued row wakes the export processes
    (the notification goes out when the transaction commits)."""
    with database.atomic():
        if not _is_sqlite():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADMISSION_LOCK,))
        active = server_runs_active()
        for row in active:
            if row.export_id != fields["export_id"]:
                continue
            if row.fingerprint == fields["fingerprint"]:
                return row, False, len(active)
            if row.status == QUEUED and reevaluate is not None:
                fresh = update_queued(row, reevaluate(row))
                if fresh is not None:
                    return fresh, False, len(active)
        if len(active) >= limit:
            return None, False, len(active)
        fields.setdefault("heartbeat", fields.get("started") or utcnow())
        created: Run = Run.create(**fields)
        if created.status == QUEUED and not _is_sqlite():
            database.execute_sql("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))
    return created, True, len(active)


def claim(**fields: Any) -> Run | None:
    """The oldest queued run, now ``running`` with ``fields`` (who runs it) and a fresh
    heartbeat; None when nothing is queued. On PostgreSQL, ``FOR UPDATE SKIP LOCKED``: export
    processes on several hosts claim at once without waiting for each other or taking one run
    twice (SQLite: one writer at a time, the same outcome)."""
    with database.atomic():
        query = Run.select(Run.id).where(Run.status == QUEUED).order_by(Run.id).limit(1)
        if not _is_sqlite():
            query = query.for_update(skip_locked=True)
        found = query.first()
        if found is None:
            return None
        Run.update(status="running", heartbeat=utcnow(), **fields).where(
            Run.id == found.id, Run.status == QUEUED
        ).execute()
        row: Run = Run.get_by_id(found.id)
    return row if row.status == "running" else None


def update_queued(row: Run, fields: dict[str, Any]) -> Run | None:
    """The queued run ``row`` with ``fields`` written; None when it is not queued any more
    (an export process claimed it meanwhile)."""
    with database.atomic():
        changed = Run.update(**fields).where(Run.id == row.id, Run.status == QUEUED).execute()
        fresh: Run | None = Run.get_by_id(row.id) if changed else None
    return fresh


def update_claimed(row: Run, fields: dict[str, Any]) -> Run:
    """The run ``row`` this process claimed, with ``fields`` written."""
    with database.atomic():
        Run.update(**fields).where(Run.id == row.id).execute()
        fresh: Run = Run.get_by_id(row.id)
    return fresh


def beat_queued(log_ids: Iterable[str]) -> None:
    """Someone still waits for these queued runs (their heartbeat, until a process claims them)."""
    Run.update(heartbeat=utcnow()).where(
        Run.log_id.in_(list(log_ids)), Run.status == QUEUED
    ).execute()


def _is_sqlite() -> bool:
    return isinstance(database.obj, pw.SqliteDatabase)


# --- writes -----------------------------------------------------------------------------------


def create(**fields: Any) -> Run:
    """A new row (a run that starts, or a served download); ``heartbeat`` defaults to ``started``."""
    fields.setdefault("heartbeat", fields.get("started") or utcnow())
    with database.atomic():
        row: Run = Run.create(**fields)
    return row


_NOTHING = object()


def create_many(rows: Sequence[dict[str, Any]], log_ids: Sequence[str] | None = None) -> None:
    """New rows (served downloads), in their order: multi-row INSERTs of up to
    :data:`ROWS_PER_INSERT` rows each, in one transaction.

    peewee's own multi-row INSERT spends about 250 µs of Python per row generating its SQL
    (measured); here each value only goes through its field's ``db_value`` (fields a row does
    not name get their defaults, as with ``Run.create``). Many rows per statement, not one
    statement per row (``executemany``): SQLite's module gives up and takes back the GIL around
    every statement it steps, and the share server's event loop wants the GIL meanwhile (each
    take-back waited for the loop: a batch of 4,000 rows took 170-400 ms instead of 40).

    ``log_ids`` (as many as ``rows``): each row is its dict with this log ID instead; rows that
    are the very same dict (the downloads of one file in a batch) are converted once and
    differ in their log ID only."""
    if not rows:
        return
    fields = [f for f in Run._meta.sorted_fields if not isinstance(f, pw.AutoField)]
    db = database.obj
    defaults = {f.name: f.default for f in fields if f.name not in rows[0]}
    params: list[object] = []
    # Rows of one batch share most of their values (the same source run, the same moment):
    # a value that is the very object of the row before is converted once (JSON columns too).
    last: list[tuple[object, object]] = [(_NOTHING, None)] * len(fields)
    done: dict[int, list[object]] = {}
    at = next(i for i, f in enumerate(fields) if f.name == "log_id")
    for n, row in enumerate(rows):
        values = done.get(id(row)) if log_ids is not None else None
        if values is None:
            values = []
            for i, f in enumerate(fields):
                if f.name in row:
                    value = row[f.name]
                else:
                    default = defaults.get(f.name)
                    value = default() if callable(default) else default
                before, converted = last[i]
                if value is not before:
                    converted = f.db_value(value)
                    last[i] = (value, converted)
                values.append(converted)
            if log_ids is not None:
                done[id(row)] = values
        if log_ids is not None:
            values[at] = log_ids[n]  # the row's own log ID (the list is copied just below)
        params += values
    width = len(fields)
    per = _rows_per_insert(db, width)
    with database.atomic():
        cursor = db.cursor()
        start, count = 0, len(rows)
        while start < count:
            # Chunks of ``per`` rows, the rest in powers of two: a handful of statements, each
            # prepared once (the driver keeps them by their text).
            k = per if count - start >= per else 1 << ((count - start).bit_length() - 1)
            cursor.execute(_insert_sql(db, fields, k), params[start * width : (start + k) * width])
            start += k


#: Rows per INSERT statement of :func:`create_many` at most (fewer where the database's limit
#: of parameters per statement says so: old SQLite builds allow 999).
ROWS_PER_INSERT = 512


def _rows_per_insert(db: pw.Database, width: int) -> int:
    limit = 32_766
    if isinstance(db, pw.SqliteDatabase):
        try:
            limit = db.connection().getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except (AttributeError, sqlite3.Error):
            limit = 999  # the smallest any SQLite build has
    most = max(1, min(ROWS_PER_INSERT, limit // width))
    return 1 << (most.bit_length() - 1)


def _insert_sql(db: pw.Database, fields: Sequence[pw.Field], rows: int) -> str:
    """``INSERT INTO run (...) VALUES (...), ...`` for ``rows`` rows (made once per count)."""
    key = (db.param, db.quote, len(fields), rows)
    sql = _INSERTS.get(key)
    if sql is None:
        q = db.quote
        columns = ", ".join(f"{q[0]}{f.column_name}{q[1]}" for f in fields)
        one = f"({', '.join([db.param] * len(fields))})"
        sql = f"INSERT INTO {q[0]}{Run._meta.table_name}{q[1]} ({columns}) VALUES " + ", ".join(
            [one] * rows
        )
        _INSERTS[key] = sql
    return sql


_INSERTS: dict[tuple[object, ...], str] = {}


def beat(log_ids: Iterable[str]) -> None:
    """A heartbeat for these runs, where they are still running."""
    Run.update(heartbeat=utcnow()).where(
        Run.log_id.in_(list(log_ids)), Run.status == "running"
    ).execute()


def record_outcome(log_id: str, outcome: str, messages: list[str], **fields: object) -> None:
    """What a running run will be once its file is in place (it stays ``running``)."""
    with database.atomic():
        Run.update(outcome=outcome, messages=messages, **fields).where(
            Run.log_id == log_id, Run.status == "running"
        ).execute()


def finish(run_id: int, status: str, messages: list[str], **fields: Any) -> None:
    """The end of a run: its status, messages and figures, finished and a last heartbeat now."""
    now = utcnow()
    with database.atomic():
        Run.update(status=status, finished=now, heartbeat=now, messages=messages, **fields).where(
            Run.id == run_id
        ).execute()


def end(row: Run, status: str, message: str, *conditions: Any, **fields: Any) -> None:
    """End ``row`` with ``status``, one more message and ``fields``, where ``conditions`` still
    hold (a row another process ended meanwhile keeps its ending)."""
    Run.update(status=status, finished=utcnow(), messages=[*row.messages, message], **fields).where(
        Run.id == row.id, *conditions
    ).execute()


def end_dead(run_id: int, decide: Callable[[Run], None]) -> Run | None:
    """End a run whose process died, in one transaction: ``decide(row)`` sets the row's ending
    (status, messages, figures) on the freshly read row; a row no longer ``running`` is left
    alone (None is returned then)."""
    with database.atomic():
        fresh: Run = Run.get_by_id(run_id)
        if fresh.status != "running":
            return None
        decide(fresh)
        fresh.finished = fresh.heartbeat
        fresh.save()
    return fresh


def served_complete(log_id: str, status: str) -> None:
    now = utcnow()
    Run.update(status=status, finished=now, heartbeat=now).where(Run.log_id == log_id).execute()


def settle_held(run_id: int, status: str, message: str, **fields: Any) -> bool:
    """The operator's decision on a held run: its new status, one more message and ``fields``,
    only while it is still ``held`` (two operators deciding at once: the first one wins).
    Returns whether this call decided it."""
    with database.atomic():
        row: Run | None = Run.get_or_none(Run.id == run_id, Run.status == "held")
        if row is None:
            return False
        changed = (
            Run.update(status=status, messages=[*row.messages, message], **fields)
            .where(Run.id == run_id, Run.status == "held")
            .execute()
        )
    return bool(changed)


def release_artifact(run_id: int) -> None:
    """Retention removed the run's file; the row stays."""
    Run.update(artifact_kept=False).where(Run.id == run_id).execute()


def file_kept(artifact_path: str) -> bool:
    """Whether a run that owns the file at ``artifact_path`` still keeps it (a served download
    points at its source run's file without owning it)."""
    return bool(
        Run.select(Run.id)
        .where(Run.artifact_path == artifact_path, Run.artifact_kept == True)  # noqa: E712
        .exists()
    )
