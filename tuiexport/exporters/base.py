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
from typing import Any, BinaryIO, Literal, Protocol

import msgspec
import peewee as pw

#: Name of the temporary table holding the selected puids, ordered, already cut to the limit.
SELECTION_TABLE = "sel"
#: Name of the temporary table holding puids that matched but were cut by the limit.
OMITTED_TABLE = "sel_omitted"


class ExportOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a user may set in a definition's options, validated on save (an unknown key or a
    wrong value is refused with a sentence instead of failing the run later). Tuning knobs of
    the writers (workers, chunk sizes, the generic path) are not options: tests and benchmarks
    hand them to a job directly, and nothing stores them."""

    #: ``excel``: the CSV members with a BOM, semicolons and decimal commas.
    csv_variant: Literal["standard", "excel"] = "standard"


def check_options(options: object) -> dict[str, Any]:
    """The stored form of user options (defaults left out); raises ValueError with a sentence."""
    try:
        typed = msgspec.convert(options, ExportOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"The export options are invalid: {exc}.") from None
    stored: dict[str, Any] = msgspec.to_builtins(typed)
    return stored


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
    options: dict[str, Any] = field(default_factory=dict)
    #: ``progress(products_written)``; cheap to call, but call it every few thousand rows only.
    progress: Callable[[int], None] = lambda n: None
    cancelled: Callable[[], bool] = lambda: False
    #: Writers append human-readable warnings/errors here; the engine stores them with the run.
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

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
