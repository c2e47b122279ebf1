"""The service API: the one set of functions the CLI, the share server and the TUI call.

None of the front ends builds queries or runs export logic itself; a bug fixed here is fixed
everywhere. Everything returned is a msgspec Struct (see :mod:`tuiexport.management.views`).

``__all__`` below is the API, written out: a name imported here but not listed there is unused
to ruff (which deletes it) and private to mypy. Add new functions at the end of their group.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, cast

import peewee

from tuiexport.catalog.records import MAX_REPORTED_ERRORS as MAX_REPORTED_IMPORT_ERRORS
from tuiexport.catalog.records import ImportReport
from tuiexport.catalog.stats import CatalogStats, catalog_stats
from tuiexport.db import Checkpoints, DatabaseError, close_database, open_database, resolve_target
from tuiexport.db import database as _database
from tuiexport.db import describe as database_location
from tuiexport.db import is_in_memory as _is_in_memory
from tuiexport.db import is_sqlite as _is_sqlite
from tuiexport.db import unreachable as database_unreachable
from tuiexport.engine import (
    PreparedRun,
    begin_run,
    download_name,
    published_artifact,
    reusable_artifact,
    run_export,
)
from tuiexport.errors import Gone
from tuiexport.exporters.base import Writer, check_options, effective_options
from tuiexport.exporters.registry import (
    OUTPUTS,
    PROFILES,
    file_extension,
    file_format,
    get_writer,
    is_valid_pair,
    valid_pairs,
)
from tuiexport.management.apikeys import ApiKeyView, create_key, list_keys, revoke_key
from tuiexport.management.apikeys import verify_key as _verify_key
from tuiexport.management.catalog_lists import (
    list_manufacturers,
    list_product_types,
    list_suppliers,
)
from tuiexport.management.definitions import (
    EDITABLE,
    SORTS,
    create_definition,
    delete_definition,
    edited_reasons,
    effective_limit,
    get_definition,
    list_definitions,
    rotate_share_token,
    share_path,
    share_url,
    update_definition,
)
from tuiexport.management.definitions import (
    validate as validate_definition,
)
from tuiexport.management.history import (
    STATUSES as RUN_STATUSES,
)
from tuiexport.management.history import (
    SWEEP_EVERY,
    Served,
    Sweeper,
    count_history,
    get_run,
    list_history,
    mark_interrupted,
    new_log_id,
    record_crash,
    record_served,
    record_served_many,
    served_complete,
    served_incomplete,
)
from tuiexport.management.selections import (
    ImpactCancelled,
    count_products,
    create_selection,
    delete_selection,
    get_selection,
    list_selections,
    preview,
    selection_impact,
    update_selection,
)
from tuiexport.management.views import (
    DefinitionView,
    ExportImpact,
    PreviewRow,
    RunView,
    SelectionImpact,
    SelectionView,
)
from tuiexport.models import LANGUAGES
from tuiexport.selection import (
    Criteria,
    CriteriaError,
    auto_name,
    criteria_from_json,
    criteria_to_json,
    validate_criteria,
)
from tuiexport.setup import finish_own_catalog, prepare_database, prepare_own_catalog

# --- notifications (issue 11): webhook and email when a run ends failed/held/warning --------
# One block at the end (import order off), so that other branches' imports above merge cleanly.
# isort: off
from tuiexport.management.notify import (
    AttemptView,
    NotificationView,
    retry_notifications,
    run_notifications,
)
from tuiexport.management.notify import flush as flush_notifications
from tuiexport.management.notify import signature as notification_signature

# isort: on
# --- end of notifications ------------------------------------------------------------------
# --- the publish gate (issue 11): approve or discard a held run ----------------------------
# isort: off
from tuiexport.management.gate import approve as approve_run
from tuiexport.management.gate import discard as discard_run

# isort: on
# --- end of the publish gate ---------------------------------------------------------------
# --- deltas and run diffs (issue 12) --------------------------------------------------------
# isort: off
from tuiexport.engine import run_delta
from tuiexport.management.deltas import diff_with_previous as run_diff_with_previous
from tuiexport.management.deltas import refusal as delta_refusal
from tuiexport.management.deltas import run_diff
from tuiexport.management.views import RunDiff

# isort: on
# --- end of deltas and run diffs ------------------------------------------------------------
# --- named share links (issue 12, part 4) ----------------------------------------------------
# isort: off
from tuiexport.management.definitions import link_path, link_url
from tuiexport.management.links import OVERDUE_FACTOR, USUAL_NEEDS, USUAL_OF
from tuiexport.management.links import match as match_link
from tuiexport.management.links import seen as link_seen
from tuiexport.management.sharing import (
    create_link,
    link_activity,
    list_links,
    rename_link,
    revoke_link,
    rotate_link,
)
from tuiexport.management.views import LinkActivity, LinkView

# isort: on
# --- end of named share links -----------------------------------------------------------------
# --- artifacts in shared storage (issue 13, part 1) --------------------------------------------
# isort: off
from tuiexport.management.artifacts import StoredFile
from tuiexport.management.artifacts import find as find_artifact
from tuiexport.management.artifacts import why_missing as why_artifact_missing
from tuiexport.management.artifacts import remove_orphan_parts
from tuiexport.storage import SeekableReader, StorageError
# isort: on
# --- end of artifacts in shared storage ---------------------------------------------------------

# --- runs as a queue, cluster-wide rules (issue 13) -------------------------------------------
# isort: off
from tuiexport.engine import Admission, admit_run
from tuiexport.management.history import settle as settle_runs
from tuiexport.management.runs import beat_queued
from tuiexport.runqueue import Worker, cluster_database
from tuiexport.schema import change_count

# isort: on
# --- end of runs as a queue -------------------------------------------------------------------

if TYPE_CHECKING:
    from tuiexport.catalog.demo import DemoStats

#: The API, sorted (ruff keeps it so): a new function goes in its alphabetical place.
__all__ = [
    "EDITABLE",
    "LANGUAGES",
    "MAX_REPORTED_IMPORT_ERRORS",
    "OUTPUTS",
    "OVERDUE_FACTOR",
    "PROFILES",
    "RUN_STATUSES",
    "SORTS",
    "SWEEP_EVERY",
    "USUAL_NEEDS",
    "USUAL_OF",
    "Admission",
    "ApiKeyView",
    "AttemptView",
    "CatalogStats",
    "Checkpoints",
    "Criteria",
    "CriteriaError",
    "DatabaseError",
    "DefinitionView",
    "ExportImpact",
    "ImpactCancelled",
    "ImportReport",
    "LinkActivity",
    "LinkView",
    "NotificationView",
    "PreparedRun",
    "PreviewRow",
    "RunDiff",
    "RunView",
    "SeekableReader",
    "SelectionImpact",
    "SelectionView",
    "Served",
    "StorageError",
    "StoredFile",
    "Sweeper",
    "Worker",
    "Writer",
    "admit_run",
    "api_key_valid",
    "approve_run",
    "auto_name",
    "beat_queued",
    "begin_run",
    "catalog_stats",
    "change_count",
    "check_options",
    "close_database",
    "cluster_database",
    "count_history",
    "count_products",
    "create_definition",
    "create_key",
    "create_link",
    "create_selection",
    "criteria_from_json",
    "criteria_to_json",
    "data_version_probe",
    "database_is_open",
    "database_location",
    "database_unreachable",
    "delete_definition",
    "delete_selection",
    "delta_refusal",
    "discard_run",
    "download_name",
    "edited_reasons",
    "effective_limit",
    "effective_options",
    "file_extension",
    "file_format",
    "find_artifact",
    "finish_own_catalog",
    "flush_notifications",
    "generate_demo_catalog",
    "get_definition",
    "get_run",
    "get_selection",
    "get_writer",
    "import_catalog",
    "is_valid_pair",
    "link_activity",
    "link_path",
    "link_seen",
    "link_url",
    "list_definitions",
    "list_history",
    "list_keys",
    "list_links",
    "list_manufacturers",
    "list_product_types",
    "list_selections",
    "list_suppliers",
    "mark_interrupted",
    "match_link",
    "new_log_id",
    "notification_signature",
    "open_database",
    "open_run_file",
    "prepare_database",
    "prepare_own_catalog",
    "preview",
    "published_artifact",
    "record_crash",
    "record_served",
    "record_served_many",
    "release_connection",
    "remove_orphan_parts",
    "rename_link",
    "resolve_target",
    "retry_notifications",
    "reusable_artifact",
    "revoke_key",
    "revoke_link",
    "rotate_link",
    "rotate_share_token",
    "run_delta",
    "run_diff",
    "run_diff_with_previous",
    "run_export",
    "run_notifications",
    "selection_impact",
    "served_complete",
    "served_incomplete",
    "settle_runs",
    "share_path",
    "share_url",
    "update_definition",
    "update_selection",
    "valid_pairs",
    "validate_criteria",
    "validate_definition",
    "wal_checkpoints",
    "why_artifact_missing",
    "write_together",
]


# --- the catalog ------------------------------------------------------------------------------
# The importer and the demo generator are imported when called: every start (each --run from
# cron) imports this module, and only these two commands need them.


def import_catalog(
    path: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Import a catalog file (JSON Lines or CSV, maybe gzipped) into the open database; a
    database failure in the middle is a DatabaseError with one sentence (the chunks before it
    stay imported)."""
    from tuiexport.catalog.importer import import_file

    try:
        return import_file(path, progress=progress)
    except peewee.DatabaseError as exc:
        raise DatabaseError(
            f"Writing {path} to the catalog failed ({exc}); the chunks before it were kept."
        ) from None


def generate_demo_catalog(
    products: int, *, seed: int = 1, progress: Callable[[int, int], None] | None = None
) -> DemoStats:
    """Add ``products`` deterministic demo products to the open database; a database failure in
    the middle is a DatabaseError with one sentence (the batches before it stay)."""
    from tuiexport.catalog.demo import generate_demo

    try:
        return generate_demo(products, seed=seed, progress=progress)
    except peewee.DatabaseError as exc:
        raise DatabaseError(
            f"Writing the demo catalog failed ({exc}); the batches before it were kept."
        ) from None


# --- the share server (issue 10): what tuiexport.server and server_cli need, so that they
# import no core module.


def database_is_open() -> bool:
    """Whether a database was opened in this process (the server opens one if not)."""
    return _database.obj is not None


def release_connection() -> None:
    """Close the calling thread's database connection, if it has one."""
    if _database.obj is not None and not _database.is_closed():
        _database.close()


def database_lost(error: BaseException) -> str | None:
    """When ``error`` says the connection to the database server broke or cannot be made (a
    PostgreSQL restart, the server away): the reason in one line, and this thread's broken
    connection is dropped (the next query connects anew). None for any other error."""
    from tuiexport.management import liveness

    if not liveness.lost_connection(error):
        return None
    liveness.drop_connection()
    return liveness.first_line(error)


def api_key_valid(secret: str | None) -> bool:
    """Whether ``secret`` is an API key that exists and is not revoked."""
    return _verify_key(secret) is not None


def write_together(
    writes: Sequence[Callable[[], object]],
    *,
    locked: Callable[[], AbstractContextManager[object]] | None = None,
) -> None:
    """Run ``writes`` in one transaction on the calling thread's connection.

    ``locked`` (SQLite): the transaction takes the database's write lock first (``BEGIN
    IMMEDIATE``) and runs the writes inside this context, which is left before the ``COMMIT``:
    while inside it, no other connection can commit anything."""
    db = _database.obj
    if locked is not None and db is not None and _is_sqlite(db):
        with db.atomic("IMMEDIATE"), locked():
            for write in writes:
                write()
        return
    with _database.atomic():
        for write in writes:
            write()


def data_version_probe() -> Callable[[], int] | None:
    """A function that returns SQLite's ``PRAGMA data_version`` on the *calling thread's*
    connection (None for PostgreSQL or an in-memory database).

    The value changes whenever another connection committed, never for this connection's own
    commits: a thread that writes through this connection can tell its own writes from
    everyone else's. Callers from other threads must serialise their calls with that thread's
    writes (the connection is shared, not thread-safe on its own)."""
    db = _database.obj
    if db is None or not _is_sqlite(db) or _is_in_memory(db):
        return None
    connection = _database.connection()

    def probe() -> int:
        return int(connection.execute("PRAGMA data_version").fetchone()[0])

    return probe


def wal_checkpoints() -> Checkpoints | None:
    """For the thread that writes most often (the share server's history recorder): its
    connection no longer checkpoints the WAL inside its own commits; the returned
    :class:`Checkpoints` does, apart, when asked (None for PostgreSQL or an in-memory
    database)."""
    db = _database.obj
    if db is None or not _is_sqlite(db) or _is_in_memory(db):
        return None
    return Checkpoints(str(db.database), _database.connection())


def open_run_file(run: RunView) -> BinaryIO:
    """The file of a finished run, to read (a path on this host, or the object in the store);
    Gone with the sentence of :func:`why_artifact_missing` when it cannot be read from here."""
    where = find_artifact(run)
    if where is None:
        raise Gone(why_artifact_missing(run)[1])
    if isinstance(where, StoredFile):
        return cast(BinaryIO, where.open())
    return open(where, "rb")
