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
