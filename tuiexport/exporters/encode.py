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

import contextlib
import json
import os
import pickle
import re
import sqlite3
import struct
import subprocess
import sys
import threading
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Any, Protocol

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


def release_memory(job: ExportJob) -> None:
    """Give back the page cache that filling ``sel`` left behind (SQLite): the export reads
    through the OS cache anyway, and peak memory must not grow with the catalog."""
    if dbmod.is_sqlite(job.db):
        job.db.execute_sql("PRAGMA shrink_memory")


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


def main_from(element: Element, job: ExportJob, sel: str = SELECTION_TABLE) -> str:
    # SQLite: CROSS JOIN makes sel the outer loop, so rows come out in puid order without a
    # sort; left alone, the planner may scan product and sort every finished record.
    join = "CROSS JOIN" if dbmod.is_sqlite(job.db) else "JOIN"
    sql = f"{sel} {join} product p ON p.puid = {SELECTION_TABLE}.puid"
    if element.source:
        sql += " " + element.source
    if element.texts:
        lang, fallback = _languages(job)
        sql += f" LEFT JOIN product_text t ON t.product_id = p.puid AND t.lang = '{lang}'"
        if fallback != lang:
            sql += f" LEFT JOIN product_text f ON f.product_id = p.puid AND f.lang = '{fallback}'"
    return sql


def child_flat_from(element: Element, sel: str = SELECTION_TABLE) -> str:
    # CROSS JOIN keeps sel as the outer loop in SQLite: rows come out in puid order, no sort.
    return f"{sel} CROSS JOIN {element.source}"


def ordered_index(job: ExportJob, child: Element) -> str:
    """The child's ordering index if the database has it (fast path only), else ''."""
    if not child.index or job.options.get("no_index_order"):
        return ""
    found = job.db.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (child.index,)
    ).fetchone()
    return child.index if found else ""


def _indexed(source: str, index: str) -> str:
    """``supplier_item si JOIN …`` -> ``supplier_item si INDEXED BY <index> JOIN …``: a scan of
    this index for one product returns its rows in (product, order) order."""
    table, alias, *rest = source.split(" ", 2)
    return " ".join([table, alias, f"INDEXED BY {index}", *rest])


# --- formats -------------------------------------------------------------------------------


def _parse_dt(value: object) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime.fromisoformat(str(value))


def _round(value: float, places: str) -> str:
    """Round half up on the shortest decimal form, as SQLite's printf does: 2.675 -> 2.68."""
    text = repr(float(value))
    digits = len(places) - 2
    _, _, decimals = text.partition(".")
    if "e" not in text and decimals[digits:] != "5":
        return f"{float(value):.{digits}f}"  # not a tie: nearest is half-up
    return str(Decimal(text).quantize(Decimal(places), rounding=ROUND_HALF_UP))


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

    def text(self, value: object) -> str:
        if value is None:
            return ""
        text = str(value)
        if '"' in text or self.sep in text or "\n" in text or "\r" in text:
            return '"' + text.replace('"', '""') + '"'
        return text

    def py(self, kind: str) -> Callable[[Any], str]:
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
        # A chain of || rather than one printf('%s,…'): printf's %s stops at a NUL character.
        sep = f" || '{self.sep}' || "
        return sep.join(self.sql(f.kind, field_sql(f, job)) for f in fields)

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[tuple[Any, ...]], str]:
        encoders = [self.py(f.kind) for f in fields]
        sep = self.sep
        return lambda row: sep.join([enc(v) for enc, v in zip(encoders, row, strict=False)])

    def header(self, fields: tuple[Field, ...]) -> str:
        return self.sep.join(f.name for f in fields)


_json_str = msgspec.json.Encoder().encode


class JsonFormat:
    """Objects whose keys are the field names; ISO 8601 UTC timestamps; null for NULL.

    The fast path uses SQLite's ``json_object``: numbers come out as SQLite prints doubles
    (``12.5``, ``10.0``), which the generic path reproduces with ``repr`` of the rounded value."""

    name = "json"

    def sql(self, kind: str, v: str) -> str:
        if kind in ("int", "text"):
            return v
        if kind == "price":
            return f"round({v}, 2)"
        if kind == "weight":
            return f"round({v}, 3)"
        if kind == "datetime":
            return f"strftime('%Y-%m-%dT%H:%M:%SZ', {v})"
        if kind == "bool":
            return (
                f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} THEN json('true') ELSE json('false') END"
            )
        raise ValueError(kind)

    def py(self, kind: str) -> Callable[[Any], str]:
        if kind == "int":
            return lambda v: "null" if v is None else str(int(v))
        if kind == "text":
            return lambda v: "null" if v is None else _json_str(str(v)).decode()
        if kind in ("price", "weight"):
            places = "0.01" if kind == "price" else "0.001"
            return lambda v: "null" if v is None else repr(float(_round(v, places)))
        if kind == "datetime":
            return lambda v: "null" if v is None else _parse_dt(v).strftime('"%Y-%m-%dT%H:%M:%SZ"')
        if kind == "bool":
            return lambda v: "null" if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(
        self,
        fields: tuple[Field, ...],
        job: ExportJob,
        children: Sequence[tuple[str, str]] = (),
    ) -> str:
        args = [f"'{f.name}', {self.sql(f.kind, field_sql(f, job))}" for f in fields]
        args += [f"'{name}', {sub}" for name, sub in children]
        return f"json_object({', '.join(args)})"

    def child_sql(self, child: Element, fields: tuple[Field, ...], job: ExportJob) -> str:
        index = ordered_index(job, child)
        if index:
            source = _indexed(child.source, index)
            return (
                f"(SELECT json_group_array({self.record_sql(fields, job)}) FROM {source} "
                f"WHERE {child.link} = p.puid)"
            )
        # Ordered in a subquery; json() gives the objects back their JSON subtype, which a
        # subquery's column does not keep.
        return (
            f"(SELECT json_group_array(json(r)) FROM (SELECT {self.record_sql(fields, job)} AS r "
            f"FROM {child.source} WHERE {child.link} = p.puid ORDER BY {child.order}))"
        )

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[tuple[Any, ...]], list[str]]:
        encoders = [(f'"{f.name}":', self.py(f.kind)) for f in fields]
        return lambda row: [key + enc(v) for (key, enc), v in zip(encoders, row, strict=False)]

    def join_record(self, parts: list[str], children: list[tuple[str, list[str]]]) -> str:
        parts = parts + [f'"{name}":[' + ",".join(items) + "]" for name, items in children]
        return "{" + ",".join(parts) + "}"


class XmlFormat:
    """Elements named like the fields; NULL leaves the element out; CR kept as ``&#13;``
    (parsers turn a raw CR into LF); forbidden characters are stripped afterwards."""

    name = "xml"

    def sql(self, kind: str, v: str) -> str:
        if kind == "int":
            return f"{v}"
        if kind == "text":
            # instr() only scans; each replace() copies the text, so replace only when needed.
            return (
                f"CASE WHEN instr({v}, '&') OR instr({v}, '<') OR instr({v}, '>') "
                f"OR instr({v}, char(13)) THEN replace(replace(replace(replace({v}, '&', '&amp;'), "
                f"'<', '&lt;'), '>', '&gt;'), char(13), '&#13;') ELSE {v} END"
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
    def escape(value: object) -> str:
        return (
            str(value)
            .replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("\r", "&#13;")
        )

    def py(self, kind: str) -> Callable[[Any], str | None]:
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

    def record_sql(
        self,
        fields: tuple[Field, ...],
        job: ExportJob,
        children: Sequence[tuple[str, str]] = (),
        tag: str = "",
    ) -> str:
        parts = [
            f"IFNULL('<{f.name}>' || {self.sql(f.kind, field_sql(f, job))} || '</{f.name}>', '')"
            for f in fields
        ]
        parts += [f"IFNULL({sub}, '')" for _, sub in children]
        # || rather than printf('%s…'), which would cut a text at a NUL character.
        return f"'<{tag}>' || " + " || ".join(parts) + f" || '</{tag}>'"

    def child_sql(self, child: Element, fields: tuple[Field, ...], job: ExportJob) -> str:
        index = ordered_index(job, child)
        if index:
            return (
                f"(SELECT group_concat({self.record_sql(fields, job, tag=child.name)}, '') "
                f"FROM {_indexed(child.source, index)} WHERE {child.link} = p.puid)"
            )
        return (
            f"(SELECT group_concat(r, '') FROM (SELECT {self.record_sql(fields, job, tag=child.name)} "
            f"AS r FROM {child.source} WHERE {child.link} = p.puid ORDER BY {child.order}))"
        )

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[tuple[Any, ...]], list[str]]:
        encoders = [(f.name, self.py(f.kind)) for f in fields]

        def encode(row: tuple[Any, ...]) -> list[str]:
            out: list[str] = []
            for (name, enc), v in zip(encoders, row, strict=False):
                text = enc(v)
                if text is not None:
                    out.append(f"<{name}>{text}</{name}>")
            return out

        return encode


#: The formats that nest child records (CSV writes one file per element instead).
_Format = JsonFormat | XmlFormat

# --- streams -------------------------------------------------------------------------------

#: The forbidden C0 controls as bytes: in UTF-8 they are single bytes that never occur inside a
#: multi-byte sequence, so deleting them byte-wise is safe (and far faster than a regex).
_C0_FORBIDDEN = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_NONCHARS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF


def strip_xml_forbidden_utf8(data: bytes) -> bytes:
    """Remove what XML 1.0 forbids from UTF-8 text (surrogates cannot occur in valid UTF-8)."""
    data = data.translate(None, _C0_FORBIDDEN)
    for seq in _NONCHARS:
        if seq in data:
            data = data.replace(seq, b"")
    return data


class _Cursor(Protocol):
    """A DB-API cursor, as far as reading it in chunks goes."""

    def fetchmany(self, size: int = ...) -> list[Any]: ...


def _chunks(cursor: _Cursor, size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(size):
        yield rows


def _blob(sql: str) -> str:
    # Text out of SQLite as bytes: no UTF-8 decoding into str and encoding back.
    return f"CAST({sql} AS BLOB)"


class CsvChunk:
    """CSV lines of one chunk, with what the writer needs for progress and statistics."""

    __slots__ = ("data", "products", "rows", "suppliers")

    def __init__(self, data: bytes, rows: int, products: int, suppliers: list[int] | None):
        self.data, self.rows, self.products, self.suppliers = data, rows, products, suppliers


def _counts_suppliers(element: Element) -> bool:
    return element.role == "child" and element.link == "si.product_id"


def csv_chunks(job: ExportJob, element: Element, fmt: CsvFormat) -> Iterator[CsvChunk]:
    """One element as CSV lines (CRLF after each), in chunks.

    Child rows carry their puid (progress counts products) and, for supplier items, the
    supplier id (the run's supplier shares), so no extra pass over the offers is needed."""
    fields = element.fields_for(flags(job))
    nl = fmt.newline.encode()
    extra: list[str] = []
    index = ""
    if element.role == "main":
        from_sql, order = main_from(element, job), f"{SELECTION_TABLE}.puid"
    elif element.role == "child":
        source = child_flat_from(element)
        index = ordered_index(job, element) if use_fast_path(job) else ""
        if index:  # rows of one product come in order: no sort at all
            source = f"{SELECTION_TABLE} CROSS JOIN {_indexed(element.source, index)}"
        from_sql = source + f" WHERE {element.link} = {SELECTION_TABLE}.puid"
        order = f"{SELECTION_TABLE}.puid" + ("" if index else f", {element.order}")
        extra.append(f"{SELECTION_TABLE}.puid")
        if _counts_suppliers(element):
            extra.append("si.supplier_id")
    else:
        from_sql, order = element.source, element.order
    k = len(extra)
    head = ", ".join(extra) + (", " if extra else "")
    encode = None
    if use_fast_path(job):
        line = itemgetter(k)
        record = _blob(fmt.record_sql(fields, job))
    else:
        record = ", ".join(field_sql(f, job) for f in fields)
        encode = fmt.record_py(fields)

    def chunk(rows: list[tuple[Any, ...]]) -> CsvChunk:
        if encode is None:
            data = nl.join(map(line, rows)) + nl
        else:
            data = (fmt.newline.join(encode(row[k:]) for row in rows) + fmt.newline).encode()
        if element.role == "child":
            products = len(set(map(itemgetter(0), rows)))
            suppliers = list(map(itemgetter(1), rows)) if k == 2 else None
        else:
            products, suppliers = len(rows), None
        return CsvChunk(data, len(rows), products, suppliers)

    if element.role != "reference" and parallel_workers(job):
        from_par = from_sql.replace(SELECTION_TABLE + " ", PAR_SELECTION + " ", 1)
        # The puid list is the outer loop (in order); an ordering index orders each product's rows.
        order_par = f" ORDER BY {order}" if element.role == "child" and not index else ""
        # One row per chunk: the worker's single step runs the whole chunk without the GIL.
        cols = f"{SELECTION_TABLE}.puid AS k_puid, " + (
            "si.supplier_id AS k_sid, " if k == 2 else "NULL AS k_sid, "
        )
        sql = (
            # The last CRLF is appended in SQL: one copy of the chunk fewer in this process.
            f"SELECT CAST(group_concat(r, char(13, 10)) || char(13, 10) AS BLOB), "
            f"COUNT(DISTINCT k_puid), "
            f"COUNT(*), group_concat(k_sid) FROM (SELECT {cols}{fmt.record_sql(fields, job)} AS r "
            f"FROM {from_par}{order_par})"
        )

        def aggregated(rows: list[tuple[Any, ...]]) -> CsvChunk:
            data, products, n, sids = rows[0]
            suppliers = [int(x) for x in sids.split(",")] if sids else ([] if k == 2 else None)
            return CsvChunk(data or b"", n, products, suppliers)

        yield from run_parallel(job, sql, aggregated)
        return
    cursor = job.db.execute_sql(f"SELECT {head}{record} FROM {from_sql} ORDER BY {order}")
    for rows in _chunks(cursor):
        yield chunk(rows)


# --- both cores ----------------------------------------------------------------------------

#: Workers (processes) that build records while the caller writes; 1 = everything on the
#: job's own connection. Each chunk is one aggregated row.
#: Threads gained little (SQLite connections in one process share a global allocator mutex):
#: 1M XML 3.79x -> 2.69x the shell, JSON 1.71x -> 1.43x, CSV ZIP 3.45x -> 1.49x with processes.
#: ``{"workers": n}`` in a definition's options overrides it.
WORKERS = max(1, min(2, os.cpu_count() or 1))
#: Below this many products the start of the workers (~0.3 s) is not worth it.
PAR_MIN = 20_000
#: Products per parallel task.
PAR_CHUNK = 1000
#: The selection as seen by a worker connection: one chunk of puids, bound as a JSON array
#: (temporary tables belong to the connection that made them).
PAR_SELECTION = f"(SELECT value AS puid FROM json_each(?1)) AS {SELECTION_TABLE}"


def parallel_workers(job: ExportJob) -> int:
    """How many worker connections to use; 0 means "one connection, the job's own"."""
    if not use_fast_path(job):
        return 0
    workers = int(job.options.get("workers", WORKERS))
    path = getattr(job.db, "database", "") or ""
    if workers < 2 or path in ("", ":memory:") or path.startswith("file::memory:"):
        return 0
    if job.total < int(job.options.get("parallel_min", PAR_MIN)):
        return 0
    return workers


def _connect(job: ExportJob) -> sqlite3.Connection:
    path = urllib.parse.quote(os.path.abspath(job.db.database))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA cache_size = -4000")
    return conn


#: The worker process: reads the database URI, the SQL and optional Python source defining
#: ``process(rows)`` (stdlib only), then runs the SQL once per task (a JSON array of puids) and
#: sends back the rows (or what ``process`` made of them), pickled (a pickle knows where it
#: ends). Tasks are read on a thread of their own, so the parent can never block on a full stdin
#: while the worker blocks on a full stdout. Only the standard library: no tuiexport import.
_WORKER_CODE = r"""
import os, pickle, queue, sqlite3, struct, sys, threading
inp, out = sys.stdin.buffer, sys.stdout.buffer
def read():
    head = inp.read(4)
    return inp.read(struct.unpack("<I", head)[0]) if len(head) == 4 else None
uri, sql, code = read().decode(), read().decode(), read().decode()
process = lambda rows: rows
if code:  # Python source that defines process(rows): runs here, next to the query
    scope = {"__name__": "tuiexport_worker"}
    exec(code, scope)
    process = scope["process"]
conn = sqlite3.connect(uri, uri=True, timeout=60)
conn.execute("PRAGMA busy_timeout = 60000")
conn.execute("PRAGMA cache_size = -4000")
tasks = queue.Queue()
def reader():
    while (task := read()) is not None:
        tasks.put(task)
    tasks.put(None)
threading.Thread(target=reader, daemon=True).start()
try:
    while (task := tasks.get()) is not None:
        pickle.dump(process(conn.execute(sql, (task.decode(),)).fetchall()), out, protocol=5)
        out.flush()
except BaseException as exc:  # one line for the parent; _exit: the reader thread may be in a read
    sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
    sys.stderr.flush()
    os._exit(1)
"""


def _frame(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


class _WorkerProcess:
    """One worker process and its pipes; results come back in the order tasks went in."""

    def __init__(self, uri: str, sql: str, code: str = ""):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._send(uri.encode())
        self._send(sql.encode())
        self._send(code.encode())

    def _send(self, data: bytes) -> None:
        assert self.proc.stdin is not None  # opened with stdin=PIPE
        self.proc.stdin.write(_frame(data))
        self.proc.stdin.flush()

    def submit(self, puids: list[int]) -> None:
        self._send(json.dumps(puids).encode())

    def result(self) -> list[tuple[Any, ...]]:
        assert self.proc.stdout is not None and self.proc.stderr is not None  # PIPEs
        try:
            # Unpickled straight from the pipe: the chunk is read into its bytes object once.
            rows: list[tuple[Any, ...]] = pickle.load(self.proc.stdout)
            return rows
        except (EOFError, pickle.UnpicklingError):
            self.proc.kill()
            error = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(
                f"Export worker failed: {error[-1] if error else 'no output'}"
            ) from None

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if self.proc.poll() is None:
            self.proc.kill()  # only when the export stopped early: the worker may be mid-task
        self.proc.wait()


def _run_processes(
    job: ExportJob, sql: str, process: Callable[[list[tuple[Any, ...]]], object], code: str = ""
) -> Iterator[Any]:
    """:func:`run_parallel` on worker processes: SQLite serialises the memory allocation of all
    connections of one process (a global mutex), so two threads building records in SQLite run
    hardly faster than one; two processes use both cores. Task i goes to worker i mod n."""
    workers = parallel_workers(job)
    size = int(job.options.get("parallel_chunk", PAR_CHUNK))
    path = urllib.parse.quote(os.path.abspath(job.db.database))
    procs: list[_WorkerProcess] = []
    try:
        for _ in range(workers):
            procs.append(_WorkerProcess(f"file:{path}?mode=ro", sql, code))
        pending: deque[_WorkerProcess] = deque()
        turn = 0
        cursor = job.db.execute_sql(f"SELECT puid FROM {SELECTION_TABLE} ORDER BY puid")
        while rows := cursor.fetchmany(size):
            worker = procs[turn % workers]
            turn += 1
            worker.submit([r[0] for r in rows])
            pending.append(worker)
            # At most two tasks per worker: one being built, one waiting; memory stays flat.
            if len(pending) >= 2 * workers:
                yield process(pending.popleft().result())
        while pending:
            yield process(pending.popleft().result())
    finally:
        for worker in procs:
            worker.close()


def run_parallel(
    job: ExportJob,
    sql: str,
    process: Callable[[list[tuple[Any, ...]]], object],
    remote: Callable[[list[tuple[Any, ...]]], object] | None = None,
    remote_code: str = "",
) -> Iterator[Any]:
    """Run ``sql`` (its one ``?`` is a chunk of selected puids, see PAR_SELECTION) on worker
    connections, chunk after chunk; yields ``process(rows)`` of each chunk in puid order
    (``remote`` runs in the worker thread first).

    Without ``remote``, the workers are processes (see :func:`_run_processes`); so they are with
    ``remote_code``, stdlib-only Python source that defines ``process(rows)`` doing what
    ``remote`` does, run in the worker process; with ``remote`` alone, threads, so that
    ``remote`` can be any Python callable.
    At most ``workers + 1`` chunks are in flight, so memory stays flat."""
    if (remote is None or remote_code) and not job.options.get("worker_threads"):
        yield from _run_processes(job, sql, process, remote_code)
        return
    workers = parallel_workers(job)
    size = int(job.options.get("parallel_chunk", PAR_CHUNK))
    local = threading.local()
    conns: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def task(puids: list[int]) -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = _connect(job)
            with lock:
                conns.append(conn)
        rows = conn.execute(sql, (json.dumps(puids),)).fetchall()
        return remote(rows) if remote is not None else rows

    pending: deque[Future[Any]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="export")
    try:
        cursor = job.db.execute_sql(f"SELECT puid FROM {SELECTION_TABLE} ORDER BY puid")
        while rows := cursor.fetchmany(size):
            pending.append(pool.submit(task, [r[0] for r in rows]))
            if len(pending) > workers:
                yield process(pending.popleft().result())
        while pending:
            yield process(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        for conn in conns:
            conn.close()


def omitted_puids(job: ExportJob) -> Iterator[list[int]]:
    if not job.omitted:
        return
    cursor = job.db.execute_sql(f"SELECT puid FROM {OMITTED_TABLE} ORDER BY puid")
    for rows in _chunks(cursor, 10_000):
        yield [r[0] for r in rows]


def reference_records(job: ExportJob, element: Element, fmt: _Format) -> Iterator[str]:
    """Records of a reference element (small: manufacturers, types, suppliers)."""
    fields = element.fields_for(flags(job))
    columns = ", ".join(field_sql(f, job) for f in fields)
    encode = fmt.record_py(fields)
    for row in job.db.execute_sql(
        f"SELECT {columns} FROM {element.source} ORDER BY {element.order}"
    ):
        parts = encode(row)
        if isinstance(fmt, JsonFormat):
            yield fmt.join_record(parts, [])
        else:
            yield f"<{element.name}>" + "".join(parts) + f"</{element.name}>"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def product_chunks(
    job: ExportJob,
    profile: Profile,
    fmt: _Format,
    sep: bytes,
    wrap: tuple[bytes, bytes] = (b"", b""),
    end: bytes = b"",
    post: Callable[[bytes], bytes] | None = None,
    shares: Counter[int] | None = None,
) -> Iterator[bytes]:
    """The products, one encoded record each (JSON object or XML element, UTF-8, children
    nested), per chunk as ``post(sep.join(wrap[0] + record + wrap[1]) + end)``.

    Adds the selected products per supplier id to ``shares`` if given: counted by the workers
    along with the chunks (in parallel), else in one pass after them (see supplier_counts).
    Calls ``job.check`` once per chunk (raises Cancelled)."""
    counted = yield from _product_chunks(job, profile, fmt, sep, wrap, end, post, shares)
    if shares is not None and not counted:
        shares.update(supplier_counts(job))


#: Offers per supplier id among a worker's chunk of puids (index-only), as a JSON object.
_CHUNK_SHARES = (
    "(SELECT json_group_object(sid, n) FROM (SELECT si.supplier_id AS sid, COUNT(*) AS n "
    "FROM json_each(?1) AS c CROSS JOIN supplier_item si WHERE si.product_id = c.value "
    "GROUP BY si.supplier_id))"
)


def _product_chunks(
    job: ExportJob,
    profile: Profile,
    fmt: _Format,
    sep: bytes,
    wrap: tuple[bytes, bytes],
    end: bytes,
    post: Callable[[bytes], bytes] | None,
    shares: Counter[int] | None,
) -> Generator[bytes, None, bool]:
    """:func:`product_chunks`; returns True if it counted ``shares``."""
    head, tail = wrap

    def finish(records: list[bytes]) -> bytes:
        if not records:
            return b""
        data = sep.join([head + r + tail for r in records] if head or tail else records) + end
        return post(data) if post else data

    main = profile.main
    fl = flags(job)
    fields = main.fields_for(fl)
    written = 0
    if use_fast_path(job):
        subs = [
            (c.name, fmt.child_sql(c, c.fields_for(fl, nested=True), job)) for c in profile.children
        ]
        record = (
            fmt.record_sql(fields, job, subs)
            if isinstance(fmt, JsonFormat)
            else fmt.record_sql(fields, job, subs, tag=main.name)
        )
        if parallel_workers(job):
            # CROSS JOIN keeps the puid list (in order) as the outer loop: no ORDER BY needed.
            # One row per chunk (group_concat): the worker's single step builds the whole chunk
            # without the GIL, so workers and writer really run at the same time.
            if head or tail:
                record = (
                    f"{_sql_literal(head.decode())} || {record} || {_sql_literal(tail.decode())}"
                )
            sql = (
                # ``end`` is appended in SQL: one copy of the chunk fewer in this process.
                f"SELECT COUNT(*), CAST(group_concat(r, {_sql_literal(sep.decode())}) || "
                f"{_sql_literal(end.decode())} AS BLOB), "
                f"{_CHUNK_SHARES if shares is not None else 'NULL'} "
                f"FROM (SELECT {record} AS r FROM {main_from(main, job, PAR_SELECTION)})"
            )

            def aggregated(rows: list[tuple[Any, ...]]) -> tuple[int, bytes]:
                n, data, counts = rows[0]
                if counts and shares is not None:
                    shares.update({int(k): v for k, v in json.loads(counts).items()})
                if not n:
                    return 0, b""
                return n, post(data) if post else data

            for n, chunk in run_parallel(job, sql, aggregated):
                written += n
                yield chunk
                job.check(written)
            return True
        first = itemgetter(0)
        sql = f"SELECT {_blob(record)} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
        for rows in _chunks(job.db.execute_sql(sql)):
            written += len(rows)
            yield finish(list(map(first, rows)))
            job.check(written)
        return False

    # Generic path: the product cursor and one cursor per child, merged by puid.
    columns = ", ".join(field_sql(f, job) for f in fields)
    cursor = job.db.execute_sql(
        f"SELECT p.puid, {columns} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
    )
    kids: list[tuple[Element, Callable[[tuple[Any, ...]], list[str]], _Merge]] = []
    for child in profile.children:
        cf = child.fields_for(fl, nested=True)
        ccols = ", ".join(field_sql(f, job) for f in cf)
        ccur = job.db.execute_sql(
            f"SELECT {child.link}, {ccols} FROM {child_flat_from(child)} "
            f"WHERE {child.link} = {SELECTION_TABLE}.puid "
            f"ORDER BY {SELECTION_TABLE}.puid, {child.order}"
        )
        kids.append((child, fmt.record_py(cf), _Merge(ccur)))
    encode = fmt.record_py(fields)
    for rows in _chunks(cursor):
        out = []
        for row in rows:
            puid = row[0]
            parts = encode(row[1:])
            nested = []
            for child, cenc, merge in kids:
                items = [cenc(r[1:]) for r in merge.take(puid)]
                if isinstance(fmt, JsonFormat):
                    nested.append((child.name, [fmt.join_record(i, []) for i in items]))
                else:
                    nested.append(
                        (child.name, [f"<{child.name}>{''.join(i)}</{child.name}>" for i in items])
                    )
            if isinstance(fmt, JsonFormat):
                out.append(fmt.join_record(parts, nested).encode())
            else:
                out.append(
                    (
                        f"<{main.name}>"
                        + "".join(parts)
                        + "".join("".join(n[1]) for n in nested)
                        + f"</{main.name}>"
                    ).encode()
                )
        written += len(rows)
        yield finish(out)
        job.check(written)
    return False


class _Merge:
    """Rows of an ordered child cursor, handed out per puid (merge join)."""

    def __init__(self, cursor: _Cursor):
        self.cursor = cursor
        self.buffer: list[tuple[Any, ...]] = []
        self.pos = 0
        self.done = False

    def _peek(self) -> tuple[Any, ...] | None:
        if self.pos >= len(self.buffer):
            if self.done:
                return None
            self.buffer = self.cursor.fetchmany(CHUNK * 4)
            self.pos = 0
            if not self.buffer:
                self.done = True
                return None
        return self.buffer[self.pos]

    def take(self, puid: int) -> list[tuple[Any, ...]]:
        rows = []
        while (row := self._peek()) is not None and row[0] <= puid:
            if row[0] == puid:
                rows.append(row)
            self.pos += 1
        return rows


def supplier_names(job: ExportJob, counts: dict[int, int]) -> dict[str, int]:
    """Supplier id -> count, turned into supplier name -> count."""
    names = dict(job.db.execute_sql("SELECT id, name FROM supplier").fetchall())
    shares: dict[str, int] = {}
    for sid, n in sorted(counts.items()):
        name = names.get(sid, f"#{sid}")
        shares[name] = shares.get(name, 0) + n
    return dict(sorted(shares.items()))


def supplier_shares(job: ExportJob) -> dict[str, int]:
    """Products per supplier name among the selected products (one offer per product and
    supplier, so counting offers per supplier counts products)."""
    return supplier_names(job, supplier_counts(job))


def supplier_counts(job: ExportJob) -> Counter[int]:
    """Products per supplier id among the selected products.

    Counted in Python over an index-only scan: a GROUP BY would sort every offer in memory."""
    counts: Counter[int] = Counter()
    cursor = job.db.execute_sql(
        f"SELECT si.supplier_id FROM {SELECTION_TABLE} CROSS JOIN supplier_item si "
        f"WHERE si.product_id = {SELECTION_TABLE}.puid"
    )
    first = itemgetter(0)
    for rows in _chunks(cursor, 20_000):
        counts.update(map(first, rows))
    return counts


def _generator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tuiexport {version('tuiexport')}"
    except PackageNotFoundError:  # not installed (running from a source tree)
        return "tuiexport"


GENERATOR = _generator()


def iso(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(job: ExportJob) -> dict[str, Any]:
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
