"""CSV exports: a ZIP holding one CSV per element, ``Log.csv``, and ``ERROR.txt`` when products
were left out or errors occurred.

The CSV lines come out of SQLite ready-made (:meth:`CsvFormat.record_sql`); deflating runs on a second
thread fed through a bounded queue — zlib and crc32 release the GIL, so the database and the
compressor use both cores while memory stays flat.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import IO, Any, BinaryIO

from tuiexport.exporters import fingerprints
from tuiexport.exporters.base import SELECTION_TABLE, ExportJob, WriteStats
from tuiexport.exporters.format import IN_BOUND, NUMBER_BOUND, Row, parse_dt
from tuiexport.exporters.parallel import PAR_SELECTION, parallel_workers, run_parallel
from tuiexport.exporters.profiles import LOG_FIELDS, PROFILES, Element, Field
from tuiexport.exporters.sql import (
    blob,
    chunks,
    field_sql,
    flags,
    flat_source,
    release_memory,
    use_fast_path,
)
from tuiexport.exporters.summary import (
    limit_reason,
    omitted_puids,
    removed_puids,
    supplier_names,
)
from tuiexport.exporters.text import round_half_up

#: Deflate level: 1 like ``gzip -1``; the files are text and compress well even so.
ZIP_LEVEL = 1
#: Members above this many products may pass 4 GiB: write them with ZIP64 sizes.
ZIP64_FROM = 400_000
_BOM = "\ufeff"
#: Excel variant: a text cell starting with one of these is neutralised with a leading ``'``
#: (OWASP's advice against CSV/formula injection); numbers are not text and are left alone.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_SQL = ", ".join(
    {"\t": "char(9)", "\r": "char(13)"}.get(c, f"'{c}'") for c in FORMULA_STARTS
)


class ZipPump:
    """Writes ZIP members from a second thread; :meth:`write` blocks when it is 8 chunks behind."""

    def __init__(self, out: BinaryIO, when: datetime, zip64: bool, level: int = ZIP_LEVEL):
        self.zf = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level)
        self.when = when.timetuple()[:6]
        self.zip64 = zip64
        self.level = level
        self.queue: queue.Queue[tuple[str, bytes | str | None] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zip-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        member: IO[bytes] | None = None
        try:
            while (item := self.queue.get()) is not None:
                kind, payload = item
                if kind == "open":
                    assert isinstance(payload, str)
                    info = zipfile.ZipInfo(payload, date_time=self.when)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    if sys.version_info >= (3, 13):
                        info.compress_level = self.level
                    else:  # private before 3.13, so typeshed does not declare it
                        info._compresslevel = self.level  # type: ignore[attr-defined]
                    # A regular file (S_IFREG), rw-r--r--: without the type bits unzip and
                    # zipinfo show "?rw-r--r--".
                    info.external_attr = 0o100644 << 16
                    member = self.zf.open(info, "w", force_zip64=self.zip64)
                elif kind == "data":
                    assert member is not None and isinstance(payload, bytes)
                    member.write(payload)
                else:
                    assert member is not None
                    member.close()
                    member = None
        except BaseException as exc:  # noqa: BLE001 - re-raised by the producer on its next put / at the end
            self.error = exc
            while self.queue.get() is not None:
                pass
        finally:
            if member is not None:
                # A member left open keeps the ZipFile "writing": closing it (here, or when it is
                # garbage-collected) would raise again and print a traceback after the sentence.
                # The file is thrown away; the first error is the one reported.
                with contextlib.suppress(Exception):
                    member.close()

    def _put(self, item: tuple[str, bytes | str | None]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def member(self, name: str) -> None:
        self._put(("open", name))

    def write(self, data: bytes) -> None:
        self._put(("data", data))

    def end_member(self) -> None:
        self._put(("close", None))

    def finish(self, ok: bool = True) -> None:
        self.queue.put(None)
        self.thread.join()
        if ok and self.error is None:
            self.zf.close()
            return
        # The file is thrown away: close it now (the disk may still be full; the first error is
        # the one reported) so that garbage collection has nothing left to write.
        with contextlib.suppress(Exception):
            self.zf.close()
        if self.error is not None:
            raise self.error


def _csv_time(d: datetime) -> str:
    """``dd.MM.yyyy HH:mm``, the year zero-padded like SQLite's ``%Y`` (``01.01.0001 00:00``)."""
    return f"{d.day:02d}.{d.month:02d}.{d.year:04d} {d.hour:02d}:{d.minute:02d}"


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
            if self.excel:  # OWASP: a leading ' keeps a spreadsheet from evaluating the cell
                v = f"CASE WHEN substr({v}, 1, 1) IN ({_FORMULA_SQL}) THEN '''' || {v} ELSE {v} END"
            # instr() (unlike GLOB) sees past an embedded NUL character.
            return (
                f"CASE WHEN instr({v}, '\"') OR instr({v}, '{self.sep}') OR instr({v}, char(10)) "
                f"OR instr({v}, char(13)) THEN '\"' || replace({v}, '\"', '\"\"') || '\"' "
                f"ELSE IFNULL({v}, '') END"
            )
        if kind in ("price", "weight"):
            places = 2 if kind == "price" else 3
            formatted = self._num(f"printf('%.{places}f', {v})")
            return f"CASE WHEN {IN_BOUND.format(v)} THEN {formatted} ELSE '' END"
        if kind == "datetime":
            return f"IFNULL(strftime('%d.%m.%Y %H:%M', {v}), '')"
        if kind == "bool":
            return f"CASE WHEN {v} IS NULL THEN '' WHEN {v} THEN 'true' ELSE 'false' END"
        raise ValueError(kind)

    def text(self, value: object) -> str:
        if value is None:
            return ""
        text = str(value)
        if self.excel and text.startswith(FORMULA_STARTS):
            text = "'" + text
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
                return lambda v: (
                    ""
                    if v is None or not abs(v) < NUMBER_BOUND
                    else round_half_up(v, places).replace(".", ",")
                )
            return lambda v: (
                "" if v is None or not abs(v) < NUMBER_BOUND else round_half_up(v, places)
            )
        if kind == "datetime":
            return lambda v: "" if v is None else _csv_time(parse_dt(v))
        if kind == "bool":
            return lambda v: "" if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(
        self,
        fields: tuple[Field, ...],
        job: ExportJob,
        children: Sequence[tuple[str, str]] = (),
        tag: str = "",
    ) -> str:
        assert not children, "CSV writes children as files of their own"
        # A chain of || rather than one printf('%s,…'): printf's %s stops at a NUL character.
        sep = f" || '{self.sep}' || "
        return sep.join(self.sql(f.kind, field_sql(f, job)) for f in fields)

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[Row], list[str]]:
        encoders = [self.py(f.kind) for f in fields]
        return lambda row: [enc(v) for enc, v in zip(encoders, row, strict=False)]

    def join(
        self, tag: str, parts: list[str], children: Sequence[tuple[str, list[str]]] = ()
    ) -> str:
        return self.sep.join(parts)

    def header(self, fields: tuple[Field, ...]) -> str:
        return self.sep.join(f.name for f in fields)


class CsvChunk:
    """CSV lines of one chunk, with what the writer needs for progress and statistics
    (``suppliers``: rows per supplier id, for supplier items)."""

    __slots__ = ("data", "products", "rows", "suppliers")

    def __init__(self, data: bytes, rows: int, products: int, suppliers: Counter[int] | None):
        self.data, self.rows, self.products, self.suppliers = data, rows, products, suppliers


def csv_chunks(job: ExportJob, element: Element, fmt: CsvFormat) -> Iterator[CsvChunk]:
    """One element as CSV lines (CRLF after each), in chunks.

    Child rows carry their puid (progress counts products) and, for supplier items, the
    supplier id (the run's supplier shares), so no extra pass over the offers is needed.
    A run that keeps a manifest fingerprints each product's lines of the element (reference
    lines are not), the product's line with its offers' figures."""
    fields = element.fields_for(flags(job))
    nl_text = fmt.newline
    nl = nl_text.encode()
    join = fmt.join
    from_sql, order, extra, by_index = flat_source(job, element)
    builder = job.fingerprints if element.role != "reference" else None
    main = element.role == "main"
    noter = None
    if builder is not None:
        # A product's lines of a child element may go on in the next chunk of the cursor.
        noter = builder.noter(element.name, nl, spans_chunks=not main)
        if not extra:
            extra = [f"{SELECTION_TABLE}.puid"]  # the product member: the puid of each line
    k = len(extra)
    head = ", ".join(extra) + (", " if extra else "")
    encode = None
    record_sql = fmt.record_sql(fields, job)
    figures = fingerprints.OFFER_FIGURES.format(puid=f"{SELECTION_TABLE}.puid")
    if use_fast_path(job):
        line = itemgetter(k)
        record = blob(record_sql)
    else:
        record = ", ".join(field_sql(f, job) for f in fields)
        encode = fmt.record_py(fields)
        figures = fingerprints.PORTABLE_OFFER_FIGURES.format(puid=f"{SELECTION_TABLE}.puid")
    tail = f", {figures}" if builder is not None and main else ""
    stop = -1 if tail else None

    def chunk(rows: list[tuple[Any, ...]]) -> CsvChunk:
        lines = (
            list(map(line, rows))
            if encode is None
            else [join("", encode(row[k:stop])).encode() for row in rows]
        )
        data = nl.join(lines) + nl
        if builder is not None and noter is not None:
            puids = [row[0] for row in rows]
            figured = [row[-1] for row in rows] if tail else None
            builder.feed(noter.part, noter.note(data, puids, list(map(len, lines)), figured))
        if element.role == "child":
            products = len(set(map(itemgetter(0), rows)))
            suppliers = Counter(map(itemgetter(1), rows)) if k == 2 else None
        else:
            products, suppliers = len(rows), None
        return CsvChunk(data, len(rows), products, suppliers)

    if element.role != "reference" and parallel_workers(job):
        from_par = from_sql.replace(SELECTION_TABLE + " ", PAR_SELECTION + " ", 1)
        # The puid list is the outer loop (in order); an ordering index orders each product's rows.
        order_par = f" ORDER BY {order}" if element.role == "child" and not by_index else ""
        # One row per chunk: the worker's single step runs the whole chunk without the GIL.
        # Progress counts the chunk's products (?1 is their puids: no DISTINCT, whose temporary
        # B-tree cost a few per cent of the worker's time); the supplier ids come as one text,
        # counted here as strings (C) rather than parsed one by one.
        sids = "group_concat(k_sid)" if k == 2 else "NULL"
        inner, r, noted, handler = "", record_sql, "", ""
        if builder is not None and noter is not None:  # the worker hashes the lines
            inner = f"{SELECTION_TABLE}.puid AS fp_puid, "
            if main:
                inner += f"{figures} AS fp_fig, "
            r = blob(record_sql)  # length(r) in bytes
            # A child member: a product's lines follow one another, hashed in one call; an
            # entry for every product of the chunk, lines or not, so that the members' parts
            # are added up in blocks at the end (fingerprints.Builder.finish). Read flat, as
            # without fingerprints: a subquery per product, its lines joined, cost the worker
            # about 5 µs a product more.
            noted = fingerprints.chunk_columns(noter.part, nl, figures=main, every=not main)
            handler = fingerprints.HANDLER
            order_par += " LIMIT -1"  # see chunk_columns
        k_sid = "si.supplier_id AS k_sid, " if k == 2 else ""
        sql = (
            # The last CRLF is appended in SQL: one copy of the chunk fewer in this process.
            f"SELECT CAST(group_concat(r, char(13, 10)) || char(13, 10) AS BLOB), "
            f"json_array_length(?1), COUNT(*), {sids}{noted} FROM (SELECT {inner}{k_sid}"
            f"{r} AS r FROM {from_par}{order_par})"
        )

        def aggregated(result: Any) -> CsvChunk:
            (data, products, n, text), entries = result if handler else (result[0], b"")
            if builder is not None and noter is not None:
                builder.feed(noter.part, entries)
            suppliers = None
            if k == 2:
                counted = Counter(text.split(",")) if text else Counter()
                suppliers = Counter({int(sid): c for sid, c in counted.items()})
            return CsvChunk(data or b"", n, products, suppliers)

        yield from map(aggregated, run_parallel(job, sql, handler))
        return
    cursor = job.db.execute_sql(f"SELECT {head}{record}{tail} FROM {from_sql} ORDER BY {order}")
    for rows in chunks(cursor):
        yield chunk(rows)


def error_lines(job: ExportJob) -> list[str]:
    """``ERROR.txt``: why the file is not the whole selection (products left out), then the
    errors the writer met; empty when there is nothing to say (no ``ERROR.txt`` then)."""
    lines = []
    if job.omitted:
        matched = job.total + job.omitted
        lines.append(
            f"{job.omitted:,} of {matched:,} products that matched were left out: "
            f"{limit_reason(job)} (see Log.csv)."
        )
    return [*lines, *job.errors]


@dataclass
class CsvZipWriter:
    profile: str
    output: str = "csv"
    extension: str = "zip"
    media_type: str = "application/zip"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        release_memory(job)
        excel = job.options.csv_variant == "excel"
        fmt = CsvFormat(excel=excel)
        prefix = _BOM if excel else ""
        nl = fmt.newline
        fl = flags(job)
        suppliers: Counter[int] = Counter()
        # Progress in products: each per-product file (product, then its children) is an
        # equal share of the run.
        phases = 1 + len(profile.children)
        total = job.total

        pump = ZipPump(out, job.started, zip64=total > ZIP64_FROM)
        # The ZIP's comment names the run (``unzip -z``): its log ID is a delta's cursor.
        pump.zf.comment = f"tuiexport logId={job.log_id}".encode()
        ok = False
        try:
            phase = 0
            for element in profile.elements:
                pump.member(f"{element.name}.csv")
                pump.write((prefix + fmt.header(element.fields_for(fl)) + nl).encode())
                done = 0
                for chunk in csv_chunks(job, element, fmt):
                    pump.write(chunk.data)
                    if chunk.suppliers is not None:
                        suppliers.update(chunk.suppliers)
                    if element.role != "reference":
                        done += chunk.products
                        job.check(min(total, (phase * total + min(done, total)) // phases))
                pump.end_member()
                if element.role != "reference":
                    phase += 1

            pump.member("Log.csv")
            pump.write((prefix + fmt.header(LOG_FIELDS) + nl).encode())
            reason = fmt.text(limit_reason(job))
            for puids in omitted_puids(job):
                pump.write("".join(f"{p}{fmt.sep}{reason}{nl}" for p in puids).encode())
            pump.end_member()

            if job.since:  # a delta (issue 12): the puids to delete
                pump.member("removed.csv")
                pump.write((prefix + "puid" + nl).encode())
                for puids in removed_puids(job):
                    pump.write("".join(f"{p}{nl}" for p in puids).encode())
                pump.end_member()

            problems = error_lines(job)
            if problems:
                pump.member("ERROR.txt")
                pump.write((nl.join(problems) + nl).encode())
                pump.end_member()
            ok = True
        finally:
            pump.finish(ok)
        job.check(total)
        return WriteStats(total, supplier_names(job, suppliers))
