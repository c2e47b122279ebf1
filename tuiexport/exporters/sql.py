"""SQL pieces every writer shares: the FROM clauses over ``sel``, field expressions with the
language fallback, the ordering indexes, and reading a cursor in chunks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from tuiexport import db as dbmod
from tuiexport.exporters.base import SELECTION_TABLE, ExportJob
from tuiexport.exporters.profiles import Element, Field

#: Products per fetch; job.check() runs once per chunk.
CHUNK = 2000

_LANG = re.compile(r"^[a-z]{2}$")


def flags(job: ExportJob) -> dict[str, bool]:
    return {"long_descriptions": bool(job.long_descriptions)}


def use_fast_path(job: ExportJob) -> bool:
    """Records built by SQLite itself (see :mod:`tuiexport.exporters.records`)."""
    return dbmod.is_sqlite(job.db) and not job.tuning.generic_path


def release_memory(job: ExportJob) -> None:
    """Give back the page cache that filling ``sel`` left behind (SQLite): the export reads
    through the OS cache anyway, and peak memory must not grow with the catalog."""
    if dbmod.is_sqlite(job.db):
        job.db.execute_sql("PRAGMA shrink_memory")


def languages(job: ExportJob) -> tuple[str, str]:
    lang, fallback = job.language, job.fallback_language or job.language
    for code in (lang, fallback):
        if not _LANG.match(code or ""):
            raise ValueError(f"Unknown language code {code!r}.")
    return lang, fallback


def text_sql(job: ExportJob, col: str) -> str:
    """A product text column in the export's language, else the fallback language."""
    lang, fallback = languages(job)
    if lang == fallback:
        return f"NULLIF(t.{col}, '')"
    return f"COALESCE(NULLIF(t.{col}, ''), NULLIF(f.{col}, ''))"


def text_joins(job: ExportJob) -> str:
    """The joins :func:`text_sql` reads from (``t``, and ``f`` for the fallback)."""
    lang, fallback = languages(job)
    sql = f"LEFT JOIN product_text t ON t.product_id = p.puid AND t.lang = '{lang}'"
    if fallback != lang:
        sql += f" LEFT JOIN product_text f ON f.product_id = p.puid AND f.lang = '{fallback}'"
    return sql


def field_sql(field: Field, job: ExportJob) -> str:
    """The field's SQL expression with ``{text:col}`` resolved to the language fallback."""
    sql = field.sql
    if sql.startswith("{text:"):
        return text_sql(job, sql[6:-1])
    return sql


def cross(job: ExportJob) -> str:
    # SQLite: CROSS JOIN makes sel the outer loop, so rows come out in puid order without a
    # sort; left alone, the planner may scan product and sort every finished record.
    return "CROSS JOIN" if dbmod.is_sqlite(job.db) else "JOIN"


def main_from(element: Element, job: ExportJob, sel: str = SELECTION_TABLE) -> str:
    sql = f"{sel} {cross(job)} product p ON p.puid = {SELECTION_TABLE}.puid"
    if element.source:
        sql += " " + element.source
    if element.texts:
        sql += " " + text_joins(job)
    return sql


def child_flat_from(element: Element, sel: str = SELECTION_TABLE) -> str:
    # CROSS JOIN keeps sel as the outer loop in SQLite: rows come out in puid order, no sort.
    return f"{sel} CROSS JOIN {element.source}"


def ordered_index(job: ExportJob, child: Element) -> str:
    """The child's ordering index if the database has it (fast path only), else ''."""
    if not child.index or job.tuning.no_index_order:
        return ""
    found = job.db.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (child.index,)
    ).fetchone()
    return child.index if found else ""


def indexed(source: str, index: str) -> str:
    """``supplier_item si JOIN …`` -> ``supplier_item si INDEXED BY <index> JOIN …``: a scan of
    this index for one product returns its rows in (product, order) order."""
    table, alias, *rest = source.split(" ", 2)
    return " ".join([table, alias, f"INDEXED BY {index}", *rest])


class FlatSource(NamedTuple):
    """How one element is read flat, in file order: ``SELECT {extra}, … FROM {from_sql} ORDER BY
    {order}``. Child rows carry their puid first (progress counts products) and supplier items
    also the supplier id (the run's supplier shares), so no extra pass over the offers is needed.
    ``by_index``: an ordering index already orders each product's rows."""

    from_sql: str
    order: str
    extra: list[str]
    by_index: bool = False


def flat_source(job: ExportJob, element: Element) -> FlatSource:
    """The :class:`FlatSource` of one element (shared by the CSV and the XLSX writers)."""
    if element.role == "main":
        return FlatSource(main_from(element, job), f"{SELECTION_TABLE}.puid", [])
    if element.role != "child":
        return FlatSource(element.source, element.order, [])
    source = child_flat_from(element)
    index = ordered_index(job, element) if use_fast_path(job) else ""
    if index:  # rows of one product come in order: no sort at all
        source = f"{SELECTION_TABLE} CROSS JOIN {indexed(element.source, index)}"
    order = f"{SELECTION_TABLE}.puid" + ("" if index else f", {element.order}")
    extra = [f"{SELECTION_TABLE}.puid"]
    if element.link == "si.product_id":
        extra.append("si.supplier_id")
    where = f" WHERE {element.link} = {SELECTION_TABLE}.puid"
    return FlatSource(source + where, order, extra, bool(index))


def blob(sql: str) -> str:
    # Text out of SQLite as bytes: no UTF-8 decoding into str and encoding back.
    return f"CAST({sql} AS BLOB)"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Cursor(Protocol):
    """A DB-API cursor, as far as reading it in chunks goes."""

    def fetchmany(self, size: int = ...) -> list[Any]: ...


def chunks(cursor: Cursor, size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(size):
        yield rows
