"""The service API: the one set of functions the CLI, the share server and the TUI call.

None of the front ends builds queries or runs export logic itself; a bug fixed here is fixed
everywhere. Everything returned is a msgspec Struct (see :mod:`tuiexport.management.views`).
"""

from __future__ import annotations

from tuiexport.db import DatabaseError, close_database, open_database, resolve_target
from tuiexport.db import describe as database_location
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
from tuiexport.management.history import count_history, get_run, list_history, mark_interrupted
from tuiexport.management.selections import (
    count_products,
    create_selection,
    delete_selection,
    get_selection,
    list_selections,
    preview,
    update_selection,
)
from tuiexport.management.views import DefinitionView, PreviewRow, RunView, SelectionView
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

# Spelled out (not computed) so type checkers and readers see the API.
__all__ = [
    "EDITABLE",
    "LANGUAGES",
    "OUTPUTS",
    "PROFILES",
    "SORTS",
    "Criteria",
    "CriteriaError",
    "DatabaseError",
    "DefinitionView",
    "PreparedRun",
    "PreviewRow",
    "RunView",
    "SelectionView",
    "auto_name",
    "begin_run",
    "close_database",
    "count_history",
    "count_products",
    "create_definition",
    "create_selection",
    "criteria_from_json",
    "criteria_to_json",
    "database_location",
    "delete_definition",
    "delete_selection",
    "download_name",
    "effective_limit",
    "file_format",
    "finish_own_catalog",
    "get_definition",
    "get_run",
    "get_selection",
    "is_valid_pair",
    "list_definitions",
    "list_history",
    "list_manufacturers",
    "list_product_types",
    "list_selections",
    "list_suppliers",
    "mark_interrupted",
    "open_database",
    "prepare_database",
    "prepare_own_catalog",
    "preview",
    "resolve_target",
    "reusable_artifact",
    "rotate_share_token",
    "run_export",
    "share_path",
    "share_url",
    "update_definition",
    "update_selection",
    "valid_pairs",
    "validate_criteria",
    "validate_definition",
]
