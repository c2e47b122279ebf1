"""What an output format is to the record builders: a typed protocol.

A format turns a field list (:mod:`.profiles`) into records twice over, with the same bytes:

* :meth:`Format.record_sql`: one SQL expression that SQLite evaluates to the whole record
  (the fast path, see :mod:`.records`);
* :meth:`Format.record_py` + :meth:`Format.join`: the same record built in Python from raw
  values (the generic path: PostgreSQL, or ``Tuning.generic_path``).

:class:`NestingFormat` (JSON, XML) also nests child records inside their product; CSV writes one
file per element instead. The implementations live beside their writers:
``csv_zip.CsvFormat``, ``json_out.JsonFormat``, ``xml_out.XmlFormat``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from tuiexport.exporters.base import ExportJob
from tuiexport.exporters.profiles import Element, Field

Row = tuple[Any, ...]


def parse_dt(value: object) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime.fromisoformat(str(value))


def iso_utc(value: object) -> str:
    """``2026-03-07T14:05:00Z``, the year zero-padded as SQLite's ``%Y`` pads it (``0001-…``;
    ``strftime`` on Linux writes year 1 as ``1``)."""
    d = parse_dt(value)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


#: Prices and weights of this magnitude or more are no real figures, and SQLite cannot print
#: them exactly (``printf`` keeps 16 significant digits, JSON 15): every output writes them as
#: NULL, on both paths (a number ≥ 10¹¹ with 3 decimals has more digits than a spreadsheet or
#: JavaScript keeps, too).
NUMBER_BOUND = 1e11
#: The same bound as SQL, for ``CASE WHEN {IN_BOUND.format(v)} THEN … END``.
IN_BOUND = "abs({}) < 1e11"


class Format(Protocol):
    #: Short name, e.g. "csv".
    name: str

    def record_sql(
        self,
        fields: tuple[Field, ...],
        job: ExportJob,
        children: Sequence[tuple[str, str]] = (),
        tag: str = "",
    ) -> str:
        """SQL for one record of ``fields`` (named ``tag`` where the format names records),
        with ``children`` = (name, SQL of the nested records) appended."""
        ...

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[Row], list[str]]:
        """Raw values -> the record's encoded parts (one per field the format writes)."""
        ...

    def join(
        self, tag: str, parts: list[str], children: Sequence[tuple[str, list[str]]] = ()
    ) -> str:
        """The record from its parts and its children's finished records."""
        ...


class NestingFormat(Format, Protocol):
    def child_sql(self, child: Element, fields: tuple[Field, ...], job: ExportJob) -> str:
        """SQL (a scalar subquery on ``p.puid``) for all nested records of ``child``, in order."""
        ...
