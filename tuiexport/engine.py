"""Run one export: validate, open the history entry, stream into a part file (or the object
store), check the file, publish it (an atomic rename; in the store, the history row)."""

from __future__ import annotations

import io
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from contextlib import ExitStack, suppress
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
from tuiexport.management import (
    artifacts,
    definitions,
    deltas,
    gate,
    history,
    liveness,
    notify,
    runs,
)
from tuiexport.management.views import LinkView, RunView
from tuiexport.models import ExportDefinition, Run, utcnow
from tuiexport.selection import Criteria, criteria_from_json, product_query
from tuiexport.storage import ArtifactStore, ArtifactWriter, StorageError, StoredArtifact
from tuiexport.storage.local import LocalWriter

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
    export_name: str,
    when: datetime,
    extension: str,
    *,
    ascii_only: bool = False,
    delta: bool = False,
) -> str:
    """A sensible file name: ``<export-name>_<yyyymmdd-HHMMSS>.<ext>`` ("Händler" stays
    "Händler"; with ``ascii_only`` it becomes "Haendler"); a ``delta`` ends ``_delta.<ext>``,
    so that it is never taken for the whole file."""
    kind = "_delta" if delta else ""
    return f"{_slug(export_name, ascii_only=ascii_only)}_{when:%Y%m%d-%H%M%S}{kind}.{extension}"


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
        key: str | None = None,
    ):
        self.definition = row
        #: The file's key in the artifacts store (None: ``-o PATH``, outside it).
        self.key = key
        #: The file goes into the object store (no part file grows for downloads to follow).
        self.in_store = key is not None and artifacts.in_object_store()
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
        stack = ExitStack()
        # The export reads on a connection of its own; the history (begin, heartbeat, finish)
        # is written on others. See dbmod.second_database for why they must never share one.
        reader = dbmod.second_database(database.obj)
        own_reader = reader is not database.obj
        try:
            with stack, liveness.Heartbeat(run.log_id):
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
                    out = self._output(job.options)
                    # Leaving without the commit below throws the file away (aborts an upload).
                    stack.callback(out.close)
                    # A large file is validated while it is written, on the other core.
                    follower = validate.follow(self.writer, part, job)
                    if follower is not None:
                        stack.callback(follower.stop)
                    # A binary file as far as writers go (write, flush, tell, seekable).
                    stats = self.writer.write(job, cast(BinaryIO, out))
                    # Complete (on disk; in the store: uploaded and verified), not published.
                    stored = out.seal()
                    if notes is not None:
                        self._finish_manifest(notes, job)
                finally:
                    if notes is not None:
                        notes.discard()
                    _release(reader, own_reader)
                # The part file (in the store's case its local spool) is complete: read it
                # back before anything publishes it.
                validate.artifact(self.writer, part, job, stats, follower, stored.size)
                status, messages, fields = self._outcome(job, stats, selected, omitted)
                fields.update(size=stored.size, sha256=stored.sha256)
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
                if isinstance(out, LocalWriter):
                    out.target = publish_to
                out.commit()  # the folder: the rename; the store: publishing is the row's end
                if self.manifest is not None and self.manifest.with_suffix(".new").is_file():
                    os.replace(self.manifest.with_suffix(".new"), self.manifest)
                    if self.in_store:  # beside the file, for deltas answered by other hosts
                        deltas.store_manifest(row.export_id, run.log_id)
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
        except StorageError as exc:  # the folder or the object store refused the file
            _unlink(part)
            self._drop_manifest()
            return self._finish("failed", [str(exc)], **_NO_FILE)
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

    def _output(self, options: ExportOptions) -> LocalWriter | _ToStore:
        """Where the file goes while it is produced: the part file beside its target, or the
        object store (with a local spool beside it when the file is validated first)."""
        if self.in_store:
            assert self.key is not None  # in_store says so
            spool = self.part_path if validate.applies(self.writer, options) else None
            return _ToStore(artifacts.store(), self.key, spool)
        # Made here, so that a folder that cannot be made names itself (OSError above).
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        return LocalWriter(self.target, part=self.part_path, key=self.key)

    @property
    def where(self) -> str:
        """Where the file is published: its path, or its ``s3://`` URL in the store."""
        return artifacts.location(self.key) if self.key is not None else str(self.target)

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
        messages.insert(0, f"{stats.product_count:,} products written to {self.where}.")
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
        where = self.where if held == self.target else str(held)
        messages[0] = f"{fields['product_count']:,} products written to {where}."
        messages[1:1] = [*reasons, gate.held_message(self.run.log_id)]
        fields["artifact_path"] = where
        return "held", held

    def _finish(self, status: str, messages: list[str], **fields: Any) -> RunView:
        # What the row said before the run began (a queued run that was re-evaluated) stays.
        messages = [*(m for m in self.run.messages or [] if m not in messages), *messages]

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
            target = target / download_name(
                row.name, started, writer.extension, delta=delta is not None
            )
        if not target.parent.is_dir():
            raise UserError(f"The folder {target.parent} does not exist.")
        if not os.access(target.parent, os.W_OK):
            raise UserError(f"The folder {target.parent} is not writable.")
        key = None
    else:
        kind = ".delta" if delta is not None else ""
        key = _artifact_key(row, started, log_id, kind)
        # In an object store, the local place of the part file (the spool validation reads).
        target = config.artifacts_dir() / key
    where = artifacts.location(key) if key is not None else str(target)
    fields = _run_fields(row, log_id, started, where, trigger, api_version, link)
    fields.update(delta_since=delta.since if delta else "", delta_base=delta.base if delta else "")
    run = runs.create(**fields, **_claimed_by())
    return prepared_from(run, delta, row, target=target, key=key)


def _checked_row(ref: str) -> ExportDefinition:
    row = definitions.get_row(ref)
    reasons = definitions.reasons_for(row)
    if reasons:
        raise InvalidDefinition(row.name, reasons)
    return row


def _artifact_key(row: ExportDefinition, started: datetime, log_id: str, kind: str) -> str:
    """The run's file in the artifacts store: ``<export>/<name>_<started>_<logId><kind>.<ext>``."""
    extension = registry.get_writer(row.profile, row.output).extension
    return f"{row.export_id}/{_slug(row.name)}_{started:%Y%m%d-%H%M%S}_{log_id}{kind}.{extension}"


def _run_fields(
    row: ExportDefinition,
    log_id: str,
    started: datetime,
    artifact_path: str,
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
        artifact_path=artifact_path,
        fingerprint=definitions.fingerprint(row),
        link_id=link.link_id if link is not None else None,
        link_name=link.name if link is not None else "",
    )


def _claimed_by() -> dict[str, Any]:
    """Who runs a run: this process (see liveness.is_dead)."""
    return dict(host=liveness.HOST, pid=os.getpid(), owner=liveness.owner())


def prepared_from(
    run: Run,
    delta: DeltaPlan | None = None,
    definition: ExportDefinition | None = None,
    *,
    target: Path | None = None,
    key: str | None = None,
) -> PreparedRun:
    """The run of a history row (it need not run here: a server that waits for a run of
    another process follows it through one of these). Without ``target``, a run of the
    artifacts store (admitted by a server, claimed by a worker): its key from the row."""
    row = definition or definitions.get_row(run.export_id)
    assert row.selection is not None  # a run is admitted only for a valid definition
    criteria = criteria_from_json(row.selection.criteria)
    limit = definitions.effective_limit(row.product_limit)
    if target is None:
        key = artifacts.key_of(run.artifact_path)
        if key is None:  # the local folder: the path's place under it
            path, root = Path(run.artifact_path or ""), config.artifacts_dir()
            key = path.relative_to(root).as_posix() if _inside(path, root) else None
        target = config.artifacts_dir() / key if key is not None else Path(run.artifact_path or "")
    return PreparedRun(row, run, target, limit, criteria, delta, key)


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
    where = artifacts.location(_artifact_key(row, started, log_id, ""))
    fields = _run_fields(row, log_id, started, where, "api", api_version, link)
    if claim:
        fields.update(_claimed_by())
    else:
        fields["status"] = runs.QUEUED
    run, created, active = runs.admit(fields, limit, lambda queued: _reevaluated(row, queued))
    if run is None:
        return Admission(None, False, False, active)
    return Admission(prepared_from(run, None, row), created, created and claim, active)


#: The message of a queued run whose definition or catalog changed before it ran.
REEVALUATED = (
    "The definition or the catalog changed while this run was queued; it ran them as they were "
    "when an export process took it."
)


def _reevaluated(row: ExportDefinition, run: Run) -> dict[str, Any]:
    """What a queued ``run`` becomes for the definition ``row`` and the catalog as they are now
    (a queued run asks for the export, not for an older state of it: nothing of that state is
    kept to run it from): its name, format, file key and fingerprint, and a message."""
    where = artifacts.location(_artifact_key(row, run.started, run.log_id, ""))
    fields = _run_fields(row, run.log_id, run.started, where, run.trigger, run.api_version, None)
    names = ("export_name", "profile", "output", "file_format", "artifact_path", "fingerprint")
    changed = {name: fields[name] for name in names}
    messages = list(run.messages or [])
    if REEVALUATED not in messages:
        messages.append(REEVALUATED)
    return {**changed, "messages": messages}


def claim_next() -> PreparedRun | None:
    """The oldest queued run, claimed by this process (None: nothing is queued). A run whose
    definition became invalid since it was queued ends ``failed`` here, saying why; one whose
    definition or catalog changed runs them as they are now (its row says so: _reevaluated)."""
    while (run := runs.claim(**_claimed_by())) is not None:
        try:
            row = _checked_row(run.export_id)
        except UserError as exc:
            runs.finish(run.id, "failed", [f"Not run: {exc}"])
            continue
        if run.fingerprint != definitions.fingerprint(row):
            run = runs.update_claimed(run, _reevaluated(row, run))
        return prepared_from(run, None, row)
    return None


def run_delta(
    ref: str,
    since: str,
    *,
    trigger: str = "cli",
    output_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    api_version: str = "",
    link: LinkView | None = None,
) -> RunView:
    """What changed since the consumer's run ``since`` (issue 12), in the export's own format:
    the products added or changed, then the removed puids. Relative to the export's current
    full run — run first when the catalog or definition changed since the last one, exactly
    as a share URL would. The delta's history entry names the share ``link`` it answered (the
    full run it may need first does not: that consumer got the delta). Raises Gone for a
    cursor without a manifest, UserError for a format without deltas, RunFailed when the full
    run it needs failed."""
    row = definitions.get_row(ref)
    reason = deltas.refusal(row.profile, row.output)
    if reason:
        raise UserError(reason)
    _, old = deltas.cursor(row.export_id, since, row.profile, row.output)
    base = reusable_artifact(ref)
    if base is None or deltas.manifest(row.export_id, base.log_id) is None:
        full = run_export(ref, trigger=trigger, api_version=api_version, cancel=cancel)
        base = full if full.status in ("success", "warning") else reusable_artifact(ref)
        if base is None or deltas.manifest(row.export_id, base.log_id) is None:
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
        ref,
        trigger=trigger,
        output_path=output_path,
        api_version=api_version,
        delta=plan,
        link=link,
    )
    return prepared.execute(progress=progress, cancel=cancel)


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
        path = row.artifact_path or ""
        stored = artifacts.key_of(path) is not None
        if not (stored or _inside(Path(path), root)) or row.status == "held":
            continue
        if published is not None and row.id == published.id:
            continue
        try:
            artifacts.delete(path)
        except StorageError:
            continue  # the store cannot be reached now: the next run's retention deletes it
        if stored and not row.delta_base:
            deltas.remove_stored_manifest(export_id, row.log_id)
        runs.release_artifact(row.id)
        removed += 1
    deltas.prune(export_id, keep)
    return removed


def published_artifact(export_id: str) -> RunView | None:
    """The export's last published run whose file is still on disk, whatever it was made from:
    what a share URL serves when its own run was not published (failed, or held)."""
    last = runs.newest_complete_kept(export_id)
    if last is None or not artifacts.present(last.artifact_path, last.artifact_kept):
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
    if not artifacts.present(last.artifact_path, last.artifact_kept):
        return None
    return history.view(last)


class _ToStore(io.RawIOBase):
    """A run's file on its way into the object store: a multipart upload, and beside it, when
    the file is validated before it is published, a local spool (the part file) that the
    validator reads, so validation costs no second download of the object.

    :meth:`seal` completes and verifies the upload (size and SHA-256); the object is then in
    the store under the run's unique key but not published: only the run's row publishes it.
    :meth:`commit` drops the spool; closing without it deletes the object or aborts the upload."""

    def __init__(self, store: ArtifactStore, key: str, spool: Path | None):
        super().__init__()
        self.store = store
        self.key = key
        self._upload: ArtifactWriter = store.create(key)
        self._spool: LocalWriter | None = None
        if spool is not None:
            try:
                self._spool = LocalWriter(spool, part=spool, key=key)  # never committed
            except StorageError:
                self._upload.abort()
                raise
        self._sealed: StoredArtifact | None = None
        self._committed = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._upload.tell()

    def write(self, data: ReadableBuffer) -> int:
        if self._spool is not None:
            self._spool.write(data)
        return self._upload.write(data)

    def flush(self) -> None:
        if self._spool is not None:
            self._spool.flush()

    def seal(self) -> StoredArtifact:
        if self._sealed is None:
            if self._spool is not None:
                self._spool.seal()  # on disk, for the validator
            self._sealed = self._upload.commit()
        return self._sealed

    def commit(self) -> StoredArtifact:
        sealed = self.seal()
        self._committed = True
        if self._spool is not None:
            self._spool.abort()
        return sealed

    def close(self) -> None:
        if not self.closed and not self._committed:
            if self._spool is not None:
                self._spool.abort()
            if self._sealed is not None:
                with suppress(StorageError):  # never published; its key is never used again
                    self.store.delete(self.key)
            else:
                self._upload.abort()
        super().close()


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


def _unlink(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root.resolve())
    except OSError:
        return False
