"""The products as encoded records (JSON objects, XML elements, children nested), in chunks.

Two paths produce the same bytes:

* **fast** (SQLite): each record, with its nested supplier items, is built by SQLite itself
  (:meth:`Format.record_sql`), so Python only moves one string per product — on worker
  processes when the selection is large (:mod:`.parallel`);
* **generic** (any database, e.g. PostgreSQL): raw values through a raw cursor, children merged
  in by puid from a second cursor, formatted in Python (:meth:`Format.record_py`).

Tests run both on the same catalog and compare the output byte for byte.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Generator, Iterator

from tuiexport.exporters import fingerprints
from tuiexport.exporters.base import SELECTION_TABLE, ExportJob
from tuiexport.exporters.format import Format, NestingFormat, Row
from tuiexport.exporters.parallel import PAR_SELECTION, parallel_workers, run_parallel
from tuiexport.exporters.profiles import Element, Profile
from tuiexport.exporters.sql import (
    CHUNK,
    Cursor,
    blob,
    child_flat_from,
    chunks,
    field_sql,
    flags,
    literal,
    main_from,
    use_fast_path,
)
from tuiexport.exporters.summary import CHUNK_SHARES, supplier_counts


def reference_records(job: ExportJob, element: Element, fmt: Format) -> Iterator[str]:
    """Records of a reference element (small: manufacturers, types, suppliers)."""
    fields = element.fields_for(flags(job))
    columns = ", ".join(field_sql(f, job) for f in fields)
    encode = fmt.record_py(fields)
    for row in job.db.execute_sql(
        f"SELECT {columns} FROM {element.source} ORDER BY {element.order}"
    ):
        yield fmt.join(element.name, encode(row))


def product_chunks(
    job: ExportJob,
    profile: Profile,
    fmt: NestingFormat,
    sep: bytes,
    wrap: tuple[bytes, bytes] = (b"", b""),
    end: bytes = b"",
    post: Callable[[bytes], bytes] | None = None,
    shares: Counter[int] | None = None,
    sql_post: Callable[[bytes], bytes] | None = None,
) -> Iterator[bytes]:
    """The products, one encoded record each (UTF-8, children nested), per chunk as
    ``post(sep.join(wrap[0] + record + wrap[1]) + end)``; ``sql_post`` instead of ``post`` for
    the chunks SQLite built (the fast path), if given.

    Adds the selected products per supplier id to ``shares`` if given: counted by the workers
    along with the chunks (in parallel), else in one pass after them (see supplier_counts).
    Calls ``job.check`` once per chunk (raises Cancelled)."""
    counted = yield from _product_chunks(job, profile, fmt, sep, wrap, end, post, shares, sql_post)
    if shares is not None and not counted:
        shares.update(supplier_counts(job))


def _product_chunks(
    job: ExportJob,
    profile: Profile,
    fmt: NestingFormat,
    sep: bytes,
    wrap: tuple[bytes, bytes],
    end: bytes,
    post: Callable[[bytes], bytes] | None,
    shares: Counter[int] | None,
    sql_post: Callable[[bytes], bytes] | None,
) -> Generator[bytes, None, bool]:
    """:func:`product_chunks`; returns True if it counted ``shares``."""
    head, tail = wrap
    main = profile.main
    fl = flags(job)
    fields = main.fields_for(fl)
    written = 0
    builder = job.fingerprints
    noter = builder.noter(main.name, sep) if builder is not None else None
    fast = use_fast_path(job)
    if fast:
        post = sql_post or post

    def chunk(records: list[bytes], puids: list[int], figures: list[str] | None) -> bytes:
        """The chunk of these records (``head + record + tail`` each), fingerprinted."""
        if not records:
            return b""
        data = sep.join(records) + end
        if builder is not None and noter is not None:
            builder.feed(noter.part, noter.note(data, puids, list(map(len, records)), figures))
        return post(data) if post else data

    if fast:
        subs = [
            (c.name, fmt.child_sql(c, c.fields_for(fl, nested=True), job)) for c in profile.children
        ]
        record = fmt.record_sql(fields, job, subs, tag=main.name)
        if head or tail:
            record = f"{literal(head.decode())} || {record} || {literal(tail.decode())}"
        # Fingerprinted (issue 12): the puid and the offers' figures come with each record.
        figures = fingerprints.OFFER_FIGURES.format(puid="p.puid")
        if parallel_workers(job):
            # CROSS JOIN keeps the puid list (in order) as the outer loop: no ORDER BY needed.
            # One row per chunk (group_concat): the worker's single step builds the whole chunk
            # without the GIL, so workers and writer really run at the same time.
            inner, noted, handler = "", "", ""
            if noter is not None:  # the worker hashes the records (fingerprints.noted)
                inner = f"p.puid AS fp_puid, {figures} AS fp_fig, "
                noted = fingerprints.chunk_columns(noter.part, sep, figures=True)
                handler = fingerprints.HANDLER
            sql = (
                # ``end`` is appended in SQL: one copy of the chunk fewer in this process.
                f"SELECT CAST(group_concat(r, {literal(sep.decode())}) || "
                f"{literal(end.decode())} AS BLOB), COUNT(*), "
                f"{CHUNK_SHARES if shares is not None else 'NULL'}{noted} "
                f"FROM (SELECT {inner}{blob(record) if noted else record} AS r "
                f"FROM {main_from(main, job, PAR_SELECTION)}{' LIMIT -1' if noted else ''})"
            )
            for result in run_parallel(job, sql, handler):
                (data, n, counts), entries = result if handler else (result[0], b"")
                if builder is not None and noter is not None:
                    builder.feed(noter.part, entries)
                if counts and shares is not None:
                    shares.update({int(k): v for k, v in json.loads(counts).items()})
                written += n
                yield (post(data) if post else data) if n else b""
                job.check(written)
            return True
        if noter is None:
            sql = (
                f"SELECT {blob(record)} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
            )
            for rows in chunks(job.db.execute_sql(sql)):
                written += len(rows)
                yield chunk([r[0] for r in rows], [], None)
                job.check(written)
            return False
        sql = (
            f"SELECT p.puid, {blob(record)}, {figures} FROM {main_from(main, job)} "
            f"ORDER BY {SELECTION_TABLE}.puid"
        )
        for rows in chunks(job.db.execute_sql(sql)):
            written += len(rows)
            puids, records, figured = map(list, zip(*rows, strict=True))
            yield chunk(records, puids, figured)
            job.check(written)
        return False

    # Generic path: the product cursor and one cursor per child, merged by puid.
    columns = ", ".join(field_sql(f, job) for f in fields)
    # Fingerprinted: the offers' figures in the last column (the run diff's price or stock).
    with_figures = noter is not None
    if with_figures:
        columns += ", " + fingerprints.PORTABLE_OFFER_FIGURES.format(puid="p.puid")
    cursor = job.db.execute_sql(
        f"SELECT p.puid, {columns} FROM {main_from(main, job)} ORDER BY {SELECTION_TABLE}.puid"
    )
    kids: list[tuple[Element, Callable[[Row], list[str]], Merge]] = []
    for child in profile.children:
        cf = child.fields_for(fl, nested=True)
        ccols = ", ".join(field_sql(f, job) for f in cf)
        ccur = job.db.execute_sql(
            f"SELECT {child.link}, {ccols} FROM {child_flat_from(child)} "
            f"WHERE {child.link} = {SELECTION_TABLE}.puid "
            f"ORDER BY {SELECTION_TABLE}.puid, {child.order}"
        )
        kids.append((child, fmt.record_py(cf), Merge(ccur)))
    encode = fmt.record_py(fields)
    join = fmt.join
    stop = -1 if with_figures else None
    for rows in chunks(cursor):
        out = []
        for row in rows:
            nested = [
                (child.name, [join(child.name, cenc(r[1:])) for r in merge.take(row[0])])
                for child, cenc, merge in kids
            ]
            out.append(head + join(main.name, encode(row[1:stop]), nested).encode() + tail)
        written += len(rows)
        yield chunk(
            out, [row[0] for row in rows], [row[-1] for row in rows] if with_figures else None
        )
        job.check(written)
    return False


class Merge:
    """Rows of an ordered child cursor, handed out per puid (merge join)."""

    def __init__(self, cursor: Cursor):
        self.cursor = cursor
        self.buffer: list[Row] = []
        self.pos = 0
        self.done = False

    def _peek(self) -> Row | None:
        if self.pos >= len(self.buffer):
            if self.done:
                return None
            self.buffer = self.cursor.fetchmany(CHUNK * 4)
            self.pos = 0
            if not self.buffer:
                self.done = True
                return None
        return self.buffer[self.pos]

    def take(self, puid: int) -> list[Row]:
        rows = []
        while (row := self._peek()) is not None and row[0] <= puid:
            if row[0] == puid:
                rows.append(row)
            self.pos += 1
        return rows
