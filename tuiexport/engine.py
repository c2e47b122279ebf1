"""Run one export: validate, open the history entry, stream into a temporary file, finish atomically."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import re
import threading
import unicodedata
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import peewee as pw

from tuiexport import config
from tuiexport import db as dbmod
from tuiexport.db import database
from tuiexport.errors import InvalidDefinition, RunFailed, UserError
from tuiexport.exporters import fingerprints, registry, tuning, validate
from tuiexport.exporters.base import (
    OMITTED_TABLE,
    REMOVED_TABLE,
    SELECTION_TABLE,
    Cancelled,
    ExportJob,
    ExportOptions,
    WriteStats,
    stored_options,
)
from tuiexport.management import definitions, deltas, gate, history, liveness, notify, runs
from tuiexport.management.views import LinkView, RunView
from tuiexport.models import ExportDefinition, Run, utcnow
from tuiexport.selection import Criteria, criteria_from_json, product_query

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def prepare_selection(db: pw.Database, criteria: Criteria, limit: int) -> tuple[int, int]:
    """Materialise the selection on this connection: ``sel`` holds the first ``limit`` puids,
    ``sel_omitted`` the rest. Returns ``(selected, omitted)``.

    Writers join ``sel`` (``INTEGER PRIMARY KEY``, so ``ORDER BY puid`` is free).
    """
    drop_selection(db)
    for table in (SELECTION_TABLE, OMITTED_TABLE):
        # SQLite: INTEGER PRIMARY KEY is the rowid itself (one B-tree, half the memory of BIGINT).
        kind = "INTEGER" if isinstance(db, pw.SqliteDatabase) else "BIGINT"
        db.execute_sql(f"CREATE TEMPORARY TABLE {table} (puid {kind} PRIMARY KEY)")
    sql, params = product_query(criteria, limit=limit).sql()
    db.execute_sql(f"INSERT INTO {SELECTION_TABLE} (puid) {sql}", params)
    selected = db.execute_sql(f"SELECT COUNT(*) FROM {SELECTION_TABLE}").fetchone()[0]
    if selected < limit:
        return selected, 0
    sql, params = product_query(criteria).sql()
    db.execute_sql(
        f"INSERT INTO {OMITTED_TABLE} (puid) SELECT q.puid FROM ({sql}) AS q "
        f"WHERE q.puid > (SELECT MAX(puid) FROM {SELECTION_TABLE})",
        params,
    )
    omitted = db.execute_sql(f"SELECT COUNT(*) FROM {OMITTED_TABLE}").fetchone()[0]
    return selected, omitted


def drop_selection(db: pw.Database) -> None:
    for table in (SELECTION_TABLE, OMITTED_TABLE, REMOVED_TABLE):
        db.execute_sql(f"DROP TABLE IF EXISTS {table}")


@dataclass(frozen=True)
class DeltaPlan:
    """A delta (issue 12): from the run of manifest ``old`` (the consumer's cursor ``since``)
    to the full run ``base`` (manifest ``new``)."""

    since: str
    base: str
    old: Path
    new: Path


def prepare_delta(db: pw.Database, plan: DeltaPlan) -> tuple[int, int, int]:
    """``sel`` = the products added or changed from ``plan.old`` to ``plan.new``, REMOVED_TABLE
    = the puids gone; ``sel_omitted`` empty. Returns ``(added, changed, removed)``."""
    drop_selection(db)
    kind = "INTEGER" if isinstance(db, pw.SqliteDatabase) else "BIGINT"
    for table in (SELECTION_TABLE, OMITTED_TABLE, REMOVED_TABLE):
        db.execute_sql(f"CREATE TEMPORARY TABLE {table} (puid {kind} PRIMARY KEY)")
    counts = {"added": 0, "changed": 0, "removed": 0}
    batches: dict[str, list[tuple[int]]] = {SELECTION_TABLE: [], REMOVED_TABLE: []}

    def flush(table: str) -> None:
        rows = batches[table]
        if rows:
            db.cursor().executemany(f"INSERT INTO {table} (puid) VALUES ({db.param})", rows)
            rows.clear()

    for change in fingerprints.diff(plan.old, plan.new):
        counts[change.kind] += 1
        table = REMOVED_TABLE if change.kind == "removed" else SELECTION_TABLE
        batches[table].append((change.puid,))
        if len(batches[table]) >= 10_000:
            flush(table)
    flush(SELECTION_TABLE)
    flush(REMOVED_TABLE)
    return counts["added"], counts["changed"], counts["removed"]


# --- running -------------------------------------------------------------------------------

#: What a run without a file records (it may have recorded its outcome just before it failed).
_NO_FILE: dict[str, object] = {"outcome": "", "size": None, "sha256": None, "product_count": 0}


#: German letters spelled out where a name must be ASCII (HTTP's plain filename parameter).
_SPELLED = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)


def _slug(name: str, *, ascii_only: bool = False) -> str:
    """A file-name-safe form of an export name: letters (umlauts too), digits, ``._-``."""
    if ascii_only:
        name = unicodedata.normalize("NFKD", name.translate(_SPELLED))
        name = name.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^\w.-]+", "-", name).strip("-._")
    return slug[:60] or "export"


def download_name(
    export_name: str, when: datetime, extension: str, *, ascii_only: bool = False
) -> str:
    """A sensible file name: ``<export-name>_<yyyymmdd-HHMMSS>.<ext>`` ("Händler" stays
    "Händler"; with ``ascii_only`` it becomes "Haendler")."""
    return f"{_slug(export_name, ascii_only=ascii_only)}_{when:%Y%m%d-%H%M%S}.{extension}"


class PreparedRun:
    """A run with its history entry already written (``status=running``); :meth:`execute` does it.

    Split in two so that a front end can show (or answer with) the log ID before the work starts.
    """

    def __init__(
        self,
        row: ExportDefinition,
        run: Run,
        target: Path,
        limit: int,
        criteria: Criteria,
        delta: DeltaPlan | None = None,
    ):
        self.definition = row
        self.run = run
        self.target = target
        self.limit = limit
        self.criteria = criteria
        self.delta = delta
        self.writer = registry.get_writer(row.profile, row.output)
        self.done = threading.Event()
        #: A full run of a format that fingerprints its records keeps a manifest (issue 12).
        self.manifest: Path | None = None
        if delta is None and registry.supports_delta(row.profile, row.output):
            self.manifest = deltas.manifest_path(row.export_id, run.log_id)
        options = stored_options(row.options)
        #: The file may end up not published: it is validated first (the default), or the
        #: publish gate may hold it. Nobody may see such a part file while it grows (the share
        #: server waits for the run's end instead of streaming it).
        self.may_be_withheld = validate.applies(self.writer, options) or gate.may_hold(
            row.export_id, options
        )

    @property
    def log_id(self) -> str:
        return self.run.log_id

    @property
    def part_path(self) -> Path:
        return liveness.part_path(self.target, self.run.log_id)

    def execute(
        self,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
    ) -> RunView:
        """Stream the export into the part file, rename it atomically, finish the history entry.

        Never raises for a failure of the run itself: the returned view says ``failed``."""
        try:
            return self._execute(progress, cancel)
        finally:
            self.done.set()

    def _execute(
        self,
        progress: Callable[[int, int], None] | None,
        cancel: Callable[[], bool] | threading.Event | None,
    ) -> RunView:
        run, row = self.run, self.definition
        is_cancelled = (
            cancel.is_set if isinstance(cancel, threading.Event) else (cancel or (lambda: False))
        )
        settings = config.settings()
        total = [0]

        def on_progress(written: int) -> None:
            if progress is not None:
                progress(written, total[0])

        part = self.part_path
        # The export reads on a connection of its own; the history (begin, heartbeat, finish)
        # is written on others. See dbmod.second_database for why they must never share one.
        reader = dbmod.second_database(database.obj)
        own_reader = reader is not database.obj
        try:
            with liveness.Heartbeat(run.log_id):
                if own_reader or reader.is_closed():
                    reader.connect(reuse_if_open=True)
                delta, counts = self.delta, (0, 0, 0)
                notes = None
                if self.manifest is not None:
                    notes = fingerprints.Builder(self.manifest.with_suffix(".new"))
                try:
                    if delta is None:
                        selected, omitted = prepare_selection(reader, self.criteria, self.limit)
                    else:
                        counts = prepare_delta(reader, delta)
                        selected, omitted = counts[0] + counts[1], 0
                    if notes is not None and dbmod.is_sqlite(reader):
                        # The records built on this connection leave their fingerprints too.
                        fingerprints.register(reader.connection(), notes.local)
                    total[0] = selected
                    if progress is not None:
                        progress(0, selected)
                    job = ExportJob(
                        db=reader,
                        export_id=row.export_id,
                        export_name=row.name,
                        log_id=run.log_id,
                        started=run.started,
                        profile=row.profile,
                        output=row.output,
                        language=row.language,
                        fallback_language=settings.default_language,
                        long_descriptions=row.long_descriptions,
                        total=selected,
                        omitted=omitted,
                        limit=self.limit,
                        options=stored_options(row.options),
                        tuning=tuning.from_env(),
                        progress=on_progress,
                        cancelled=is_cancelled,
                        fingerprints=notes,
                        since=delta.since if delta else "",
                        delta_base=delta.base if delta else "",
                        removed=counts[2],
                    )
                    part.parent.mkdir(parents=True, exist_ok=True)
                    with open(part, "wb", buffering=0) as raw, _HashingWriter(raw) as out:
                        # A binary file as far as writers go (write, flush, tell, seekable).
                        stats = self.writer.write(job, cast(BinaryIO, out))
                        out.flush()
                        os.fsync(raw.fileno())
                    digest, size = out.hexdigest(), out.size
                    if notes is not None:
                        self._finish_manifest(notes, job)
                finally:
                    if notes is not None:
                        notes.discard()
                    _release(reader, own_reader)
                # The part file is complete: read it back before anything publishes it.
                validate.artifact(self.writer, part, job, stats)
                status, messages, fields = self._outcome(job, stats, selected, omitted)
                fields.update(size=size, sha256=digest)
                if delta is not None:
                    fields.update(added_count=counts[0], changed_count=counts[1])
                    fields.update(removed_count=counts[2])
                    messages.insert(1, _delta_message(delta, *counts))
                # The publish gate (issue 11): the file is complete; past a limit it is held.
                # A delta is small by nature: never held.
                would_be = status
                publish_to = self.target
                if delta is None:
                    status, publish_to = self._gate(job.options, status, messages, fields)
                # Recorded before the rename: a process killed between the rename and the final
                # update leaves a row the next start can check against the file.
                history.record_outcome(run.log_id, status, messages, **fields)
                os.replace(part, publish_to)
                if self.manifest is not None and self.manifest.with_suffix(".new").is_file():
                    os.replace(self.manifest.with_suffix(".new"), self.manifest)
                _fsync_dir(publish_to.parent)
                if status == "held":  # what it becomes once approved (gate.approve)
                    fields["outcome"] = would_be
        except Cancelled:
            _unlink(part)
            self._drop_manifest()
            return self._finish("cancelled", ["Cancelled before it finished."], **_NO_FILE)
        except validate.InvalidArtifact as exc:
            _unlink(part)
            self._drop_manifest()
            return self._finish("failed", exc.messages, **_NO_FILE)
        except OSError as exc:
            _unlink(part)
            self._drop_manifest()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            where = exc.filename or part
            return self._finish("failed", [f"Could not write {where}: {reason}."], **_NO_FILE)
        except Exception as exc:  # noqa: BLE001 - the run failed; the history says why
            _unlink(part)
            self._drop_manifest()
            reason = f"The export failed: {type(exc).__name__}: {exc}."
            if liveness.lost_connection(exc):
                reason = (
                    "The connection to the database was lost during the run "
                    f"({liveness.first_line(exc)})."
                )
            return self._finish("failed", [reason], **_NO_FILE)

        view = self._finish(status, messages, artifact_kept=True, **fields)
        if not _inside(self.target, config.artifacts_dir()):
            with suppress(pw.PeeweeException):
                deltas.prune(row.export_id, settings.keep_artifacts)  # -o PATH: manifests only
        else:
            try:
                apply_retention(row.export_id, settings.keep_artifacts)
            except (pw.OperationalError, pw.InterfaceError) as exc:
                if not liveness.lost_connection(exc):
                    raise  # a lost connection: the next run's retention removes the file
        return view

    def _finish_manifest(self, notes: fingerprints.Builder, job: ExportJob) -> None:
        """The part files of the fingerprints -> the manifest (published with the file)."""
        try:
            notes.finish()
        except ValueError as exc:  # never expected: the writers note in puid order
            job.messages.append(f"No fingerprint manifest was kept ({exc}); no delta from it.")

    def _drop_manifest(self) -> None:
        if self.manifest is not None:
            _unlink(self.manifest.with_suffix(".new"))
            _unlink(self.manifest)

    def _outcome(
        self, job: ExportJob, stats: WriteStats, selected: int, omitted: int
    ) -> tuple[str, list[str], dict[str, object]]:
        """The status, messages and figures of a run whose file is complete."""
        messages = [*job.messages, *job.errors]
        status = "success"
        if omitted:
            status = "warning"
            messages.append(
                f"{omitted:,} of {selected + omitted:,} products were left out: "
                f"over the product limit of {self.limit:,} (first {self.limit:,} by puid exported)."
            )
        if job.errors or stats.skipped:
            status = "warning"
        messages.insert(0, f"{stats.product_count:,} products written to {self.target}.")
        fields: dict[str, object] = {
            "product_count": stats.product_count,
            "omitted_count": omitted,
            "supplier_shares": stats.supplier_shares,
        }
        return status, messages, fields

    def _gate(
        self, options: ExportOptions, status: str, messages: list[str], fields: dict[str, Any]
    ) -> tuple[str, Path]:
        """The publish gate: ``(status, where the file goes)``; a run past one of the
        definition's limits is ``held`` (its messages say why, its file waits unpublished)."""
        reasons, _ = gate.check(
            self.definition.export_id, options, fields["product_count"], fields["size"]
        )
        if not reasons:
            return status, self.target
        inside = _inside(self.target, config.artifacts_dir())
        held = gate.held_path(self.target, self.run.log_id, inside)
        messages[0] = f"{fields['product_count']:,} products written to {held}."
        messages[1:1] = [*reasons, gate.held_message(self.run.log_id)]
        fields["artifact_path"] = str(held)
        return "held", held

    def _finish(self, status: str, messages: list[str], **fields: Any) -> RunView:
        def write() -> RunView:
            runs.finish(self.run.id, status, messages, **fields)
            return history.get_run(self.run.log_id)

        # A PostgreSQL restart in the middle of the run broke this connection too: the end of
        # the run is recorded once the server is back (or DatabaseLost says it could not be).
        ended = liveness.write_through(write, f"the end of run {self.run.log_id} ({status})")
        notify.run_ended(ended)  # the one hook of notifications: queued, sent in the background
        return ended


def begin_run(
    ref: str,
    *,
    trigger: str = "cli",
    output_path: str | os.PathLike[str] | None = None,
    api_version: str = "",
    delta: DeltaPlan | None = None,
    link: LinkView | None = None,
) -> PreparedRun:
    """Validate the definition and open its history entry, claimed by this process (naming
    the share ``link`` whose request started it, if one did). Raises InvalidDefinition /
    NotFound (nothing recorded then: a refused run is not a run)."""
    row = _checked_row(ref)
    writer = registry.get_writer(row.profile, row.output)
    log_id = history.new_log_id()
    started = utcnow()
    if output_path is not None:
        target = Path(output_path).expanduser().resolve()
        if target.is_dir():
            target = target / download_name(row.name, started, writer.extension)
        if not target.parent.is_dir():
            raise UserError(f"The folder {target.parent} does not exist.")
        if not os.access(target.parent, os.W_OK):
            raise UserError(f"The folder {target.parent} is not writable.")
    else:
        kind = ".delta" if delta is not None else ""
        target = _artifact_target(row, started, log_id, kind)
    fields = _run_fields(row, log_id, started, target, trigger, api_version, link)
    fields.update(delta_since=delta.since if delta else "", delta_base=delta.base if delta else "")
    return prepared_from(runs.create(**fields, **_claimed_by()), delta, row)


def _checked_row(ref: str) -> ExportDefinition:
    row = definitions.get_row(ref)
    reasons = definitions.reasons_for(row)
    if reasons:
        raise InvalidDefinition(row.name, reasons)
    return row


def _artifact_target(row: ExportDefinition, started: datetime, log_id: str, kind: str) -> Path:
    extension = registry.get_writer(row.profile, row.output).extension
    name = f"{_slug(row.name)}_{started:%Y%m%d-%H%M%S}_{log_id}{kind}.{extension}"
    return config.artifacts_dir() / row.export_id / name


def _run_fields(
    row: ExportDefinition,
    log_id: str,
    started: datetime,
    target: Path,
    trigger: str,
    api_version: str,
    link: LinkView | None,
) -> dict[str, Any]:
    return dict(
        log_id=log_id,
        export_id=row.export_id,
        export_name=row.name,
        trigger=trigger,
        status="running",
        started=started,
        heartbeat=started,
        api_version=api_version,
        profile=row.profile,
        output=row.output,
        file_format=registry.file_format(row.profile, row.output),
        artifact_path=str(target),
        fingerprint=definitions.fingerprint(row),
        link_id=link.link_id if link is not None else None,
        link_name=link.name if link is not None else "",
    )


def _claimed_by() -> dict[str, Any]:
    """Who runs a run: this process (see liveness.is_dead)."""
    return dict(host=liveness.HOST, pid=os.getpid(), owner=liveness.owner())


def prepared_from(
    run: Run, delta: DeltaPlan | None = None, definition: ExportDefinition | None = None
) -> PreparedRun:
    """The run of a history row (it need not run here: a server that waits for a run of
    another process follows it through one of these)."""
    row = definition or definitions.get_row(run.export_id)
    assert row.selection is not None  # a run is admitted only for a valid definition
    criteria = criteria_from_json(row.selection.criteria)
    limit = definitions.effective_limit(row.product_limit)
    return PreparedRun(row, run, Path(run.artifact_path or ""), limit, criteria, delta)


@dataclass(frozen=True)
class Admission:
    """What :func:`admit_run` decided (see runs.admit): the run to follow or that was made
    (None: the cluster runs ``active`` server runs, its limit), whether it was made now, and
    whether this process is to execute it (else another process does, or will)."""

    prepared: PreparedRun | None
    created: bool
    here: bool
    active: int


def admit_run(
    ref: str,
    *,
    limit: int,
    claim: bool,
    api_version: str = "",
    link: LinkView | None = None,
) -> Admission:
    """A share server's run (share URL, API trigger) by the cluster-wide rules: one run per
    export and fingerprint at a time (a second request anywhere follows it) and at most
    ``limit`` at once, across every host on the database. A new run is claimed by this
    process (``claim``) or queued for an export process (``tuiexport worker``, or a server
    that runs exports). Raises InvalidDefinition / NotFound."""
    row = _checked_row(ref)
    # A dead run of this export (a killed worker) must not be followed: marked first.
    history.mark_interrupted(runs.server_runs_active(row.export_id))
    log_id, started = history.new_log_id(), utcnow()
    target = _artifact_target(row, started, log_id, "")
    fields = _run_fields(row, log_id, started, target, "api", api_version, link)
    if claim:
        fields.update(_claimed_by())
    else:
        fields["status"] = runs.QUEUED
    run, created, active = runs.admit(fields, limit)
    if run is None:
        return Admission(None, False, False, active)
    return Admission(prepared_from(run, None, row), created, created and claim, active)


def claim_next() -> PreparedRun | None:
    """The oldest queued run, claimed by this process (None: nothing is queued). A run whose
    definition became invalid since it was queued ends ``failed`` here, saying why."""
    while (run := runs.claim(**_claimed_by())) is not None:
        try:
            _checked_row(run.export_id)
        except UserError as exc:
            runs.finish(run.id, "failed", [f"Not run: {exc}"])
            continue
        return prepared_from(run)
    return None


def run_delta(
    ref: str,
    since: str,
    *,
    trigger: str = "cli",
    output_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    api_version: str = "",
) -> RunView:
    """What changed since the consumer's run ``since`` (issue 12), in the export's own format:
    the products added or changed, then the removed puids. Relative to the export's current
    full run — run first when the catalog or definition changed since the last one, exactly
    as a share URL would. Raises Gone for a cursor without a manifest, UserError for a format
    without deltas, RunFailed when the full run it needs failed."""
    row = definitions.get_row(ref)
    reason = deltas.refusal(row.profile, row.output)
    if reason:
        raise UserError(reason)
    _, old = deltas.cursor(row.export_id, since, row.profile, row.output)
    base = reusable_artifact(ref)
    if base is None or not deltas.manifest_path(row.export_id, base.log_id).is_file():
        full = run_export(ref, trigger=trigger, api_version=api_version)
        base = full if full.status in ("success", "warning") else reusable_artifact(ref)
        if base is None or not deltas.manifest_path(row.export_id, base.log_id).is_file():
            raise RunFailed(
                f"The export '{row.name}' could not bring its full file up to date (run "
                f"{full.log_id} {full.status}); no delta can be made, see its history."
            )
    plan = DeltaPlan(
        since=since.strip().upper(),
        base=base.log_id,
        old=old,
        new=deltas.manifest_path(row.export_id, base.log_id),
    )
    prepared = begin_run(
        ref, trigger=trigger, output_path=output_path, api_version=api_version, delta=plan
    )
    return prepared.execute(progress=progress)


def _delta_message(plan: DeltaPlan, added: int, changed: int, removed: int) -> str:
    return (
        f"Delta since {plan.since} up to run {plan.base}: {added:,} added, {changed:,} changed, "
        f"{removed:,} removed."
    )


def run_export(
    ref: str,
    *,
    trigger: str = "cli",
    output_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    api_version: str = "",
) -> RunView:
    """Run one export start to finish (see :func:`begin_run` and :meth:`PreparedRun.execute`)."""
    prepared = begin_run(ref, trigger=trigger, output_path=output_path, api_version=api_version)
    return prepared.execute(progress=progress, cancel=cancel)


def apply_retention(export_id: str, keep: int) -> int:
    """Delete artifacts beyond the newest ``keep`` of this export (inside the artifacts folder);
    their history rows stay. Returns how many files were removed."""
    root = config.artifacts_dir()
    removed = 0
    # Never the file share URLs serve, nor a held run's (it waits for the operator's decision).
    published = runs.newest_complete_kept(export_id)
    # Full runs and deltas (issue 12) are counted apart: deltas never push a full run out.
    old = runs.kept_runs(export_id)[max(keep, 1) :]
    old += runs.kept_runs(export_id, deltas=True)[max(keep, 1) :]
    for row in old:
        path = Path(row.artifact_path or "")
        if not _inside(path, root) or row.status == "held":
            continue
        if published is not None and row.id == published.id:
            continue
        _unlink(path)
        runs.release_artifact(row.id)
        removed += 1
    deltas.prune(export_id, keep)
    return removed


def published_artifact(export_id: str) -> RunView | None:
    """The export's last published run whose file is still on disk, whatever it was made from:
    what a share URL serves when its own run was not published (failed, or held)."""
    last = runs.newest_complete_kept(export_id)
    if last is None or not Path(last.artifact_path or "").is_file():
        return None
    return history.view(last)


def reusable_artifact(ref: str) -> RunView | None:
    """The newest successful run whose artifact is still on disk and still current (same
    definition, selection and catalog): serving it is the same as running again.

    Also while the publish gate stopped the newest run of this very state (held, or discarded
    by the operator): then the last published artifact goes on serving, instead of a new run
    that the gate would hold again; and while the newest run of this state failed validation
    (every share request would otherwise run it again, wait, and get the previous file). A
    change of the catalog or definition runs again."""
    row = definitions.get_row(ref)
    last = runs.newest_complete_kept(row.export_id)
    if last is None:
        return None
    current = definitions.fingerprint(row)
    if last.fingerprint != current:
        withheld = runs.newest_withheld(row.export_id, current)
        if withheld is None or withheld.id < last.id:
            return None
    if not Path(last.artifact_path or "").is_file():
        return None
    return history.view(last)


class _HashingWriter(io.RawIOBase):
    """The file a writer writes into: buffers, writes, and hashes what it wrote on a second
    thread (hashlib releases the GIL), so the SHA-256 costs no second pass over the file.

    Not seekable, so a ZIP writer streams (data descriptors) instead of patching headers."""

    BUFFER = 1 << 20

    def __init__(self, raw: io.RawIOBase):
        super().__init__()
        self._raw = raw
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._hash, name="export-sha256", daemon=True)
        self._thread.start()
        self.size = 0

    def _hash(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def write(self, data: ReadableBuffer) -> int:
        if type(data) is bytes and len(data) >= self.BUFFER:
            # A writer's whole chunk (JSON, XML: about a megabyte): out as it is, no two copies
            # (after what the buffer holds).
            self._drain()
            self._out(data)
            self.size += len(data)
            return len(data)
        before = len(self._buffer)
        self._buffer += data
        written = len(self._buffer) - before
        self.size += written
        if len(self._buffer) >= self.BUFFER:
            self._drain()
        return written

    def _drain(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._out(chunk)

    def _out(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:  # a raw write may be short
            view = view[self._raw.write(view) :]
        self._queue.put(chunk)

    def flush(self) -> None:
        self._drain()

    def close(self) -> None:
        if not self.closed:
            try:
                self._drain()
            finally:
                self._queue.put(None)
                self._thread.join()
        super().close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _release(reader: pw.Database, own: bool) -> None:
    """End the export's reading: closing its own connection also ends its statements and
    temporary tables; a shared (in-memory) one drops the selection tables."""
    if own:
        try:
            reader.close()
        except pw.PeeweeException:  # a broken connection (a database server restart)
            reader.dispose()
    else:
        drop_selection(reader)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root.resolve())
    except OSError:
        return False
