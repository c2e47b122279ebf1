"""Rows out of the database as encoded text: the shared engine room of every writer.

Two paths produce the same text:

* **fast** (SQLite): each record — a CSV line, a JSON object, an XML element with its nested
  supplier items — is built by SQLite itself (``printf``, ``strftime``, ``json_quote``,
  ``replace``, correlated ``group_concat``), so Python only moves one string per product;
* **generic** (any database, e.g. PostgreSQL): raw values through a raw cursor, children merged
  in by puid from a second cursor, formatted in Python.

Tests run both on the same catalog and compare the output byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter

import msgspec

from tuiexport import db as dbmod
from tuiexport.exporters.base import OMITTED_TABLE, SELECTION_TABLE, ExportJob
from tuiexport.exporters.profiles import Element, Field, Profile

#: Products per fetch; job.check() runs once per chunk.
CHUNK = 2000

_LANG = re.compile(r"^[a-z]{2}$")

#: Characters XML 1.0 forbids (the C0 controls except tab, LF, CR; U+FFFE/U+FFFF; surrogates).
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def strip_xml_forbidden(text: str) -> str:
    return XML_FORBIDDEN.sub("", text)


def flags(job: ExportJob) -> dict[str, bool]:
    return {"long_descriptions": bool(job.long_descriptions)}


def use_fast_path(job: ExportJob) -> bool:
    return dbmod.is_sqlite(job.db) and not job.options.get("generic_path")


# --- SQL pieces ----------------------------------------------------------------------------


def _languages(job: ExportJob) -> tuple[str, str]:
    lang, fallback = job.language, job.fallback_language or job.language
    for code in (lang, fallback):
        if not _LANG.match(code or ""):
            raise ValueError(f"Unknown language code {code!r}.")
    return lang, fallback


def field_sql(field: Field, job: ExportJob) -> str:
    """The field's SQL expression with ``{text:col}`` resolved to the language fallback."""
    sql = field.sql
    if sql.startswith("{text:"):
        col = sql[6:-1]
        lang, fallback = _languages(job)
        if lang == fallback:
            return f"NULLIF(t.{col}, '')"
        return f"COALESCE(NULLIF(t.{col}, ''), NULLIF(f.{col}, ''))"
    return sql


def main_from(element: Element, job: ExportJob) -> str:
    sql = f"{SELECTION_TABLE} JOIN product p ON p.puid = {SELECTION_TABLE}.puid"
    if element.source:
        sql += " " + element.source
    if element.texts:
        lang, fallback = _languages(job)
        sql += f" LEFT JOIN product_text t ON t.product_id = p.puid AND t.lang = '{lang}'"
        if fallback != lang:
            sql += f" LEFT JOIN product_text f ON f.product_id = p.puid AND f.lang = '{fallback}'"
    return sql


def child_flat_from(element: Element) -> str:
    # CROSS JOIN keeps sel as the outer loop in SQLite: rows come out in puid order, no sort.
    return f"{SELECTION_TABLE} CROSS JOIN {element.source}"


# --- formats -------------------------------------------------------------------------------


def _parse_dt(value) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    return datetime.fromisoformat(str(value))


def _round(value: float, places: str) -> str:
    # Round half up on the shortest decimal form, as SQLite's printf does: 2.675 -> 2.68.
    return str(Decimal(repr(float(value))).quantize(Decimal(places), rounding=ROUND_HALF_UP))


class CsvFormat:
    """PRODUCT.md §3: CRLF, comma, quotes only when needed, doubled quotes, decimal point,
    ``dd.MM.yyyy HH:mm``; the Excel variant uses semicolon and decimal comma."""

    name = "csv"

    def __init__(self, excel: bool = False):
        self.excel = excel
        self.sep = ";" if excel else ","
        self.newline = "\r\n"

    def _num(self, sql: str) -> str:
        return f"replace({sql}, '.', ',')" if self.excel else sql

    def sql(self, kind: str, v: str) -> str:
        if kind == "int":
            return f"IFNULL({v}, '')"
        if kind == "text":
            # instr() (unlike GLOB) sees past an embedded NUL character.
            return (
                f"CASE WHEN instr({v}, '\"') OR instr({v}, '{self.sep}') OR instr({v}, char(10)) "
                f"OR instr({v}, char(13)) THEN '\"' || replace({v}, '\"', '\"\"') || '\"' "
                f"ELSE IFNULL({v}, '') END"
            )
        if kind in ("price", "weight"):
            places = 2 if kind == "price" else 3
            formatted = self._num(f"printf('%.{places}f', {v})")
            return f"CASE WHEN {v} IS NULL THEN '' ELSE {formatted} END"
        if kind == "datetime":
            return f"IFNULL(strftime('%d.%m.%Y %H:%M', {v}), '')"
        if kind == "bool":
            return f"CASE WHEN {v} IS NULL THEN '' WHEN {v} THEN 'true' ELSE 'false' END"
        raise ValueError(kind)

    def text(self, value) -> str:
        if value is None:
            return ""
        value = str(value)
        if '"' in value or self.sep in value or "\n" in value or "\r" in value:
            return '"' + value.replace('"', '""') + '"'
        return value

    def py(self, kind: str) -> Callable[[object], str]:
        if kind == "int":
            return lambda v: "" if v is None else str(int(v))
        if kind == "text":
            return self.text
        if kind in ("price", "weight"):
            places = "0.01" if kind == "price" else "0.001"
            if self.excel:
                return lambda v: "" if v is None else _round(v, places).replace(".", ",")
            return lambda v: "" if v is None else _round(v, places)
        if kind == "datetime":
            return lambda v: "" if v is None else _parse_dt(v).strftime("%d.%m.%Y %H:%M")
        if kind == "bool":
            return lambda v: "" if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(self, fields: tuple[Field, ...], job: ExportJob) -> str:
        sep = f" || '{self.sep}' || "
        return sep.join(self.sql(f.kind, field_sql(f, job)) for f in fields)

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[tuple], str]:
        encoders = [self.py(f.kind) for f in fields]
        sep = self.sep
        return lambda row: sep.join([enc(v) for enc, v in zip(encoders, row)])

    def header(self, fields: tuple[Field, ...]) -> str:
        return self.sep.join(f.name for f in fields)


_json_str = msgspec.json.Encoder().encode


class JsonFormat:
    """Objects whose keys are the field names; ISO 8601 UTC timestamps; null for NULL."""

    name = "json"

    def sql(self, kind: str, v: str) -> str:
        if kind == "int":
            return f"IFNULL({v}, 'null')"
        if kind == "text":
            return f"json_quote({v})"
        if kind in ("price", "weight"):
            places = 2 if kind == "price" else 3
            return f"CASE WHEN {v} IS NULL THEN 'null' ELSE printf('%.{places}f', {v}) END"
        if kind == "datetime":
            return f"IFNULL('\"' || strftime('%Y-%m-%dT%H:%M:%SZ', {v}) || '\"', 'null')"
        if kind == "bool":
            return f"CASE WHEN {v} IS NULL THEN 'null' WHEN {v} THEN 'true' ELSE 'false' END"
        raise ValueError(kind)

    def py(self, kind: str) -> Callable[[object], str]:
        if kind == "int":
            return lambda v: "null" if v is None else str(int(v))
        if kind == "text":
            return lambda v: "null" if v is None else _json_str(str(v)).decode()
        if kind in ("price", "weight"):
            places = "0.01" if kind == "price" else "0.001"
            return lambda v: "null" if v is None else _round(v, places)
        if kind == "datetime":
            return lambda v: "null" if v is None else _parse_dt(v).strftime('"%Y-%m-%dT%H:%M:%SZ"')
        if kind == "bool":
            return lambda v: "null" if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(self, fields, job, children: list[tuple[str, str]] = ()) -> str:
        parts = [f"'\"{f.name}\":' || {self.sql(f.kind, field_sql(f, job))}" for f in fields]
        parts += [f"'\"{name}\":[' || IFNULL({sub}, '') || ']'" for name, sub in children]
        return "'{' || " + " || ',' || ".join(parts) + " || '}'"

    def record_py(self, fields) -> Callable[[tuple], list[str]]:
        encoders = [(f'"{f.name}":', self.py(f.kind)) for f in fields]
        return lambda row: [key + enc(v) for (key, enc), v in zip(encoders, row)]

    def join_record(self, parts: list[str], children: list[tuple[str, list[str]]]) -> str:
        parts = parts + [f'"{name}":[' + ",".join(items) + "]" for name, items in children]
        return "{" + ",".join(parts) + "}"

    @property
    def child_separator(self) -> str:
        return ","


class XmlFormat:
    """Elements named like the fields; NULL leaves the element out; CR kept as ``&#13;``
    (parsers turn a raw CR into LF); forbidden characters are stripped afterwards."""

    name = "xml"

    def sql(self, kind: str, v: str) -> str:
        if kind == "int":
            return f"{v}"
        if kind == "text":
            return (
                f"replace(replace(replace(replace({v}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), "
                f"char(13), '&#13;')"
            )
        if kind in ("price", "weight"):
            places = 2 if kind == "price" else 3
            return f"CASE WHEN {v} IS NOT NULL THEN printf('%.{places}f', {v}) END"
        if kind == "datetime":
            return f"strftime('%Y-%m-%dT%H:%M:%SZ', {v})"
        if kind == "bool":
            return f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} THEN 'true' ELSE 'false' END"
        raise ValueError(kind)

    @staticmethod
    def escape(value) -> str:
        return (
            str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;")
        )

    def py(self, kind: str) -> Callable[[object], str | None]:
        if kind == "int":
            return lambda v: None if v is None else str(int(v))
        if kind == "text":
            return lambda v: None if v is None else self.escape(v)
        if kind in ("price", "weight"):
            places = "0.01" if kind == "price" else "0.001"
            return lambda v: None if v is None else _round(v, places)
        if kind == "datetime":
            return lambda v: None if v is None else _parse_dt(v).strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind == "bool":
            return lambda v: None if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(self, fields, job, children: list[tuple[str, str]] = (), tag: str = "") -> str:
        parts = [
            f"IFNULL('<{f.name}>' || {self.sql(f.kind, field_sql(f, job))} || '</{f.name}>', '')"
            for f in fields
        ]
        parts += [f"IFNULL({sub}, '')" for _, sub in children]
        return f"'<{tag}>' || " + " || ".join(parts) + f" || '</{tag}>'"

    def record_py(self, fields) -> Callable[[tuple], list[str]]:
        encoders = [(f.name, self.py(f.kind)) for f in fields]

        def encode(row: tuple) -> list[str]:
            out = []
            for (name, enc), v in zip(encoders, row):
                text = enc(v)
                if text is not None:
                    out.append(f"<{name}>{text}</{name}>")
            return out

        return encode


# --- streams -------------------------------------------------------------------------------


def _chunks(cursor, size: int = CHUNK) -> Iterator[list[tuple]]:
    while rows := cursor.fetchmany(size):
        yield rows


def csv_lines(job: ExportJob, element: Element, fmt: CsvFormat) -> Iterator[tuple[list[str], int]]:
    """CSV lines of one element (flat), in chunks, each with the number of source rows."""
    fields = element.fields_for(flags(job))
    fast = use_fast_path(job)
    if element.role == "main":
        from_sql, order = main_from(element, job), f"{SELECTION_TABLE}.puid"
    elif element.role == "child":
        from_sql = child_flat_from(element) + f" WHERE {element.link} = {SELECTION_TABLE}.puid"
        order = f"{SELECTION_TABLE}.puid, {element.order}"
    else:
        from_sql, order = element.source, element.order
    if fast:
        sql = f"SELECT {fmt.record_sql(fields, job)} FROM {from_sql} ORDER BY {order}"
        first = itemgetter(0)
        for rows in _chunks(job.db.execute_sql(sql)):
            yield list(map(first, rows)), len(rows)
    else:
        columns = ", ".join(field_sql(f, job) for f in fields)
        encode = fmt.record_py(fields)
        sql = f"SELECT {columns} FROM {from_sql} ORDER BY {order}"
        for rows in _chunks(job.db.execute_sql(sql)):
            yield [encode(row) for row in rows], len(rows)


def omitted_puids(job: ExportJob) -> Iterator[list[int]]:
    if not job.omitted:
        return
    cursor = job.db.execute_sql(f"SELECT puid FROM {OMITTED_TABLE} ORDER BY puid")
    for rows in _chunks(cursor, 10_000):
        yield [r[0] for r in rows]


def reference_records(job: ExportJob, element: Element, fmt) -> Iterator[str]:
    """Records of a reference element (small: manufacturers, types, suppliers)."""
    fields = element.fields_for(flags(job))
    columns = ", ".join(field_sql(f, job) for f in fields)
    encode = fmt.record_py(fields)
    for row in job.db.execute_sql(f"SELECT {columns} FROM {element.source} ORDER BY {element.order}"):
        parts = encode(row)
        if isinstance(fmt, JsonFormat):
            yield fmt.join_record(parts, [])
        else:
            yield f"<{element.name}>" + "".join(parts) + f"</{element.name}>"


def product_records(job: ExportJob, profile: Profile, fmt) -> Iterator[list[str]]:
    """One encoded record per product (JSON object or XML element), children nested; chunked.

    Calls ``job.check`` once per chunk (raises Cancelled)."""
    main = profile.main
    fl = flags(job)
    fields = main.fields_for(fl)
    written = 0
    if use_fast_path(job):
        subs = []
        for child in profile.children:
            cf = child.fields_for(fl, nested=True)
            if isinstance(fmt, JsonFormat):
                rec, sep = fmt.record_sql(cf, job), ","
            else:
                rec, sep = fmt.record_sql(cf, job, tag=child.name), ""
            subs.append(
                (
                    child.name,
                    f"(SELECT group_concat(r, '{sep}') FROM (SELECT {rec} AS r FROM {child.source} "
                    f"WHERE {child.link} = p.puid ORDER BY {child.order}))",
                )
            )
        if isinstance(fmt, JsonFormat):
            record = fmt.record_sql(fields, job, subs)
        else:
            record = fmt.record_sql(fields, job, subs, tag=main.name)
        sql = f"SELECT {record} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
        first = itemgetter(0)
        for rows in _chunks(job.db.execute_sql(sql)):
            written += len(rows)
            yield list(map(first, rows))
            job.check(written)
        return

    # Generic path: the product cursor and one cursor per child, merged by puid.
    columns = ", ".join(field_sql(f, job) for f in fields)
    cursor = job.db.execute_sql(
        f"SELECT p.puid, {columns} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
    )
    kids = []
    for child in profile.children:
        cf = child.fields_for(fl, nested=True)
        ccols = ", ".join(field_sql(f, job) for f in cf)
        ccur = job.db.execute_sql(
            f"SELECT {child.link}, {ccols} FROM {child_flat_from(child)} "
            f"WHERE {child.link} = {SELECTION_TABLE}.puid "
            f"ORDER BY {SELECTION_TABLE}.puid, {child.order}"
        )
        kids.append([child, fmt.record_py(cf), _Merge(ccur)])
    encode = fmt.record_py(fields)
    is_json = isinstance(fmt, JsonFormat)
    for rows in _chunks(cursor):
        out = []
        for row in rows:
            puid = row[0]
            parts = encode(row[1:])
            nested = []
            for child, cenc, merge in kids:
                items = [cenc(r[1:]) for r in merge.take(puid)]
                if is_json:
                    nested.append((child.name, [fmt.join_record(i, []) for i in items]))
                else:
                    nested.append((child.name, [f"<{child.name}>{''.join(i)}</{child.name}>" for i in items]))
            if is_json:
                out.append(fmt.join_record(parts, nested))
            else:
                out.append(
                    f"<{main.name}>" + "".join(parts) + "".join("".join(n[1]) for n in nested)
                    + f"</{main.name}>"
                )
        written += len(rows)
        yield out
        job.check(written)


class _Merge:
    """Rows of an ordered child cursor, handed out per puid (merge join)."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.buffer: list[tuple] = []
        self.pos = 0
        self.done = False

    def _peek(self):
        if self.pos >= len(self.buffer):
            if self.done:
                return None
            self.buffer = self.cursor.fetchmany(CHUNK * 4)
            self.pos = 0
            if not self.buffer:
                self.done = True
                return None
        return self.buffer[self.pos]

    def take(self, puid: int) -> list[tuple]:
        rows = []
        while (row := self._peek()) is not None and row[0] <= puid:
            if row[0] == puid:
                rows.append(row)
            self.pos += 1
        return rows


def supplier_shares(job: ExportJob) -> tuple[dict[str, int], int]:
    """Products per supplier name, and the number of offers, of the selected products."""
    shares: dict[str, int] = {}
    offers = 0
    cursor = job.db.execute_sql(
        f"SELECT s.name, COUNT(DISTINCT si.product_id), COUNT(*) FROM {SELECTION_TABLE} "
        f"CROSS JOIN supplier_item si JOIN supplier s ON s.id = si.supplier_id "
        f"WHERE si.product_id = {SELECTION_TABLE}.puid GROUP BY s.name ORDER BY s.name"
    )
    for name, products, rows in cursor.fetchall():
        shares[name] = shares.get(name, 0) + products
        offers += rows
    return shares, offers


def _generator() -> str:
    try:
        from importlib.metadata import version

        return f"tuiexport {version('tuiexport')}"
    except Exception:  # not installed (running from a source tree)
        return "tuiexport"


GENERATOR = _generator()


def child_count(job: ExportJob, element: Element) -> int:
    return job.db.execute_sql(
        f"SELECT COUNT(*) FROM {child_flat_from(element)} WHERE {element.link} = {SELECTION_TABLE}.puid"
    ).fetchone()[0]


def iso(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(job: ExportJob) -> dict:
    """The export's own description, written at the top of JSON and XML documents."""
    return {
        "exportId": job.export_id,
        "name": job.export_name,
        "logId": job.log_id,
        "profile": job.profile,
        "output": job.output,
        "language": job.language,
        "fallbackLanguage": job.fallback_language,
        "longDescriptions": bool(job.long_descriptions),
        "created": iso(job.started),
        "productCount": job.total,
        "omittedCount": job.omitted,
        "limit": job.limit,
        "generator": GENERATOR,
    }


def limit_reason(job: ExportJob) -> str:
    return f"over the product limit of {job.limit}"
