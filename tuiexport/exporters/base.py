"""What the engine hands a writer, and what a writer hands back.

Data flows one way: the engine materialises the selected puids (first N by puid) into the
temporary table ``sel(puid INTEGER PRIMARY KEY)`` on the job's connection, then calls the writer,
which reads rows with raw cursors (``job.db.execute_sql``) joined to ``sel`` and encodes them into
``out``. Writers know nothing about definitions or history; the engine knows nothing about formats
beyond the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal, Protocol

import msgspec
import peewee as pw

from tuiexport.exporters.tuning import Tuning

if TYPE_CHECKING:
    from tuiexport.exporters.fingerprints import Builder

#: Name of the temporary table holding the selected puids, ordered, already cut to the limit.
SELECTION_TABLE = "sel"
#: Name of the temporary table holding puids that matched but were cut by the limit.
OMITTED_TABLE = "sel_omitted"
#: A delta (issue 12): the puids the consumer's run had that the newer one no longer has.
REMOVED_TABLE = "sel_removed"


#: A percentage, 0 to 100 (the publish gate's limits).
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class ExportOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a user may set in a definition's options, validated on save (an unknown key or a
    wrong value is refused with a sentence instead of failing the run later). Tuning knobs of
    the writers (workers, chunk sizes, the generic path) are not options but a
    :class:`~tuiexport.exporters.tuning.Tuning`, which nothing stores."""

    #: ``excel``: the CSV members with a BOM, semicolons and decimal commas.
    csv_variant: Literal["standard", "excel"] = "standard"
    #: BMEcat: the HEADER's BUYER_NAME (else "Catalog recipient") and SUPPLIER_NAME (else
    #: "tuiexport"); cut to the standard's 50 characters.
    bmecat_buyer: str | None = None
    bmecat_supplier: str | None = None
    #: The publish gate (issue 11), against the export's last published run: hold a run whose
    #: product count fell by more than this percentage (None: no limit) ...
    gate_product_drop: Percent | None = 30.0
    #: ... whose file size fell by more than this percentage (None, the default: no limit) ...
    gate_size_drop: Percent | None = None
    #: ... or that has no product at all. The first run of an export is never held.
    gate_hold_empty: bool = True
    #: Read the file back before it is published (the BMEcat schema, a structural re-read of
    #: the other outputs; :mod:`tuiexport.exporters.validate`). Off: published unchecked.
    validate: bool = True


_DEFAULTS = ExportOptions()


def check_options(options: object) -> dict[str, Any]:
    """The stored form of user options (defaults left out); raises ValueError with a sentence."""
    try:
        typed = msgspec.convert(options, ExportOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"The export options are invalid: {exc}.") from None
    stored: dict[str, Any] = msgspec.to_builtins(typed)
    # omit_defaults compares floats by identity: 30.0 typed in is left out here, as the default.
    return {key: value for key, value in stored.items() if value != getattr(_DEFAULTS, key)}


def effective_options(raw: object) -> dict[str, Any]:
    """Every option of a definition with its value, the defaults included (what an editor
    shows); a wrong value is a ValueError sentence."""
    return msgspec.structs.asdict(stored_options(raw))


def stored_options(raw: object) -> ExportOptions:
    """A definition's stored options (the decoded JSON column) for a run. Keys this version does
    not know (tuning knobs saved before options were checked) are ignored; a wrong value is a
    ValueError sentence."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("The export options are invalid: not a JSON object.")
    known = {k: v for k, v in raw.items() if k in ExportOptions.__struct_fields__}
    try:
        return msgspec.convert(known, ExportOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"The export options are invalid: {exc}.") from None


class Cancelled(Exception):
    """Raised by a writer (via :meth:`ExportJob.check`) when the run was cancelled."""


@dataclass
class ExportJob:
    db: pw.Database
    export_id: str
    export_name: str
    log_id: str
    started: datetime
    profile: str
    output: str
    language: str
    fallback_language: str
    long_descriptions: bool
    #: Products in ``sel`` (what will be written).
    total: int
    #: Products that matched but were cut by the limit (their puids are in ``sel_omitted``).
    omitted: int
    limit: int
    #: What the user set (stored with the definition).
    options: ExportOptions = field(default_factory=ExportOptions)
    #: How the writer runs (workers, chunk sizes, path): never stored, see :mod:`.tuning`.
    tuning: Tuning = field(default_factory=Tuning)
    #: ``progress(products_written)``; cheap to call, but call it every few thousand rows only.
    progress: Callable[[int], None] = lambda n: None
    cancelled: Callable[[], bool] = lambda: False
    #: Writers append human-readable warnings/errors here; the engine stores them with the run.
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Where the writer's records leave their fingerprints (None: this run keeps no manifest).
    fingerprints: Builder | None = None
    #: A delta (issue 12): the log ID of the consumer's run (``since``) and of the run it
    #: brings them to (``delta_base``); ``sel`` holds the added and changed products, and
    #: ``removed`` puids are in REMOVED_TABLE. Empty for a full run.
    since: str = ""
    delta_base: str = ""
    removed: int = 0

    def check(self, written: int) -> None:
        """Report progress and stop if cancelled; writers call it every few thousand products."""
        self.progress(written)
        if self.cancelled():
            raise Cancelled()


@dataclass
class WriteStats:
    product_count: int
    #: Products per supplier name (for the history's "share of products per supplier").
    supplier_shares: dict[str, int] = field(default_factory=dict)
    #: Selected products the format could not hold (e.g. BMEcat without a price); the writer says
    #: why in ``job.messages`` and the run ends as ``warning``.
    skipped: int = 0


class Writer(Protocol):
    profile: str
    output: str
    #: File name extension, e.g. "zip", "json", "xml", "jsonl".
    extension: str
    media_type: str

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats: ...
