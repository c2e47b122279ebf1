"""The service API: the one set of functions the CLI, the share server and the TUI call.

None of the front ends builds queries or runs export logic itself; a bug fixed here is fixed
everywhere. Everything returned is a msgspec Struct (see :mod:`tuiexport.management.views`).
"""

# ruff: noqa: F401  (a façade: everything imported here is re-exported; E402: the
# server's block at the end imports there, kept together for merging)
from __future__ import annotations

# --- share server (issue 10; issue 15 item 5, server part) ----------------------------------
# What tuiexport.server and tuiexport.server_cli need beyond the functions above, so that they
# import no core module. Kept together at the end of the file on purpose (easy to merge).
from collections.abc import Callable as _Callable
from collections.abc import Sequence as _Sequence

from tuiexport.db import DatabaseError, close_database, open_database, resolve_target
from tuiexport.db import database as _database
from tuiexport.db import describe as database_location
from tuiexport.db import is_in_memory as _is_in_memory
from tuiexport.db import is_sqlite as _is_sqlite
from tuiexport.db import unreachable as database_unreachable
from tuiexport.engine import PreparedRun, begin_run, download_name, reusable_artifact, run_export
from tuiexport.exporters.base import Writer
from tuiexport.exporters.registry import (
    OUTPUTS,
    PROFILES,
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
    SWEEP_EVERY,
    Sweeper,
    count_history,
    get_run,
    list_history,
    mark_interrupted,
    new_log_id,
    record_crash,
    record_served,
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


def database_is_open() -> bool:
    """Whether a database was opened in this process (the server opens one if not)."""
    return _database.obj is not None


def release_connection() -> None:
    """Close the calling thread's database connection, if it has one."""
    if _database.obj is not None and not _database.is_closed():
        _database.close()


def api_key_valid(secret: str | None) -> bool:
    """Whether ``secret`` is an API key that exists and is not revoked."""
    return _verify_key(secret) is not None


def write_together(writes: _Sequence[_Callable[[], object]]) -> None:
    """Run ``writes`` in one transaction on the calling thread's connection."""
    with _database.atomic():
        for write in writes:
            write()


def data_version_probe() -> _Callable[[], int] | None:
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


__all__ = [name for name in dir() if not name.startswith("_")]
