"""The service API: the one set of functions the CLI, the share server and the TUI call.

None of the front ends builds queries or runs export logic itself; a bug fixed here is fixed
everywhere. Everything returned is a msgspec Struct (see :mod:`tuiexport.management.views`).
"""

# ruff: noqa: F401  (a façade: everything imported here is re-exported)
from __future__ import annotations

from tuiexport.db import DatabaseError, close_database, open_database, resolve_target
from tuiexport.db import describe as database_location
from tuiexport.db import unreachable as database_unreachable
from tuiexport.engine import PreparedRun, begin_run, download_name, reusable_artifact, run_export
from tuiexport.exporters.registry import (
    OUTPUTS,
    PROFILES,
    file_format,
    is_valid_pair,
    valid_pairs,
)
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
    record_crash,
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

__all__ = [name for name in dir() if not name.startswith("_")]
