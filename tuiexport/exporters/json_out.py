"""JSON (one streamed document) and JSON Lines (one product per line).

Document shape::

    {"meta": {...},
     "manufacturer": [...], "productType": [...], "supplier": [...],   # developer only
     "product": [
      {"puid": 1001, ..., "supplierItem": [{...}, ...]},
      ...
     ],
     "log": [{"puid": 1201, "reason": "over the product limit of 200"}, ...]}

JSON Lines: standard / standardUpdate write one product object per line; developer writes one
entity per line, wrapped in its element name (``{"manufacturer": {...}}`` … ``{"product": {...}}``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgspec

from tuiexport.exporters.base import ExportJob, WriteStats
from tuiexport.exporters.format import IN_BOUND, NUMBER_BOUND, Row, iso_utc
from tuiexport.exporters.profiles import PROFILES, Element, Field
from tuiexport.exporters.records import product_chunks, reference_records
from tuiexport.exporters.sql import field_sql, indexed, ordered_index, release_memory
from tuiexport.exporters.summary import (
    limit_reason,
    meta,
    omitted_puids,
    removed_puids,
    supplier_names,
)
from tuiexport.exporters.text import round_half_up

_enc = msgspec.json.Encoder()
_json_str = _enc.encode


class JsonFormat:
    """Objects whose keys are the field names; ISO 8601 UTC timestamps; null for NULL.

    The fast path uses SQLite's ``json_object``: numbers come out as SQLite prints doubles
    (``12.5``, ``10.0``), which the generic path reproduces with ``repr`` of the rounded value."""

    name = "json"

    def sql(self, kind: str, v: str) -> str:
        if kind in ("int", "text"):
            return v
        if kind == "price":
            return f"CASE WHEN {IN_BOUND.format(v)} THEN round({v}, 2) END"
        if kind == "weight":
            return f"CASE WHEN {IN_BOUND.format(v)} THEN round({v}, 3) END"
        if kind == "datetime":
            # datetime(v) is strftime('%Y-%m-%d %H:%M:%S', v) (SQLite's documented equivalence),
            # about 130 ns a value cheaper than strftime with an ISO format (4.6 values a
            # product).
            return f"replace(datetime({v}), ' ', 'T') || 'Z'"
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
            return lambda v: (
                "null"
                if v is None or not abs(v) < NUMBER_BOUND
                else repr(float(round_half_up(v, places)))
            )
        if kind == "datetime":
            return lambda v: "null" if v is None else f'"{iso_utc(v)}"'
        if kind == "bool":
            return lambda v: "null" if v is None else ("true" if v else "false")
        raise ValueError(kind)

    def record_sql(
        self,
        fields: tuple[Field, ...],
        job: ExportJob,
        children: Sequence[tuple[str, str]] = (),
        tag: str = "",
    ) -> str:
        args = [f"'{f.name}', {self.sql(f.kind, field_sql(f, job))}" for f in fields]
        args += [f"'{name}', {sub}" for name, sub in children]
        return f"json_object({', '.join(args)})"

    def child_sql(self, child: Element, fields: tuple[Field, ...], job: ExportJob) -> str:
        index = ordered_index(job, child)
        if index:
            source = indexed(child.source, index)
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

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[Row], list[str]]:
        encoders = [(f'"{f.name}":', self.py(f.kind)) for f in fields]
        return lambda row: [key + enc(v) for (key, enc), v in zip(encoders, row, strict=False)]

    def join(
        self, tag: str, parts: list[str], children: Sequence[tuple[str, list[str]]] = ()
    ) -> str:
        if children:
            parts = parts + [f'"{name}":[' + ",".join(items) + "]" for name, items in children]
        return "{" + ",".join(parts) + "}"


@dataclass
class JsonWriter:
    profile: str
    output: str = "json"
    extension: str = "json"
    media_type: str = "application/json"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        release_memory(job)
        fmt = JsonFormat()
        shares: Counter[int] = Counter()
        out.write(b'{"meta":' + _enc.encode(meta(job)))
        for element in profile.references:
            out.write(f',\n"{element.name}":[\n'.encode())
            out.write(",\n".join(reference_records(job, element, fmt)).encode())
            out.write(b"\n]")
        out.write(f',\n"{profile.main.name}":['.encode())
        first = True
        for data in product_chunks(job, profile, fmt, sep=b",\n", shares=shares):
            if data:
                out.write(b",\n" if not first else b"\n")
                out.write(data)  # not joined to the separator: one copy of the chunk fewer
                first = False
        if job.since:  # a delta (issue 12): the puids to delete
            out.write(b'\n],\n"removed":[')
            sep = "\n"
            for puids in removed_puids(job):
                out.write((sep + ",\n".join(map(str, puids))).encode())
                sep = ",\n"
        out.write(b'\n],\n"log":[')
        reason = _enc.encode(limit_reason(job)).decode()
        sep = "\n"
        for puids in omitted_puids(job):
            out.write(
                (sep + ",\n".join(f'{{"puid":{p},"reason":{reason}}}' for p in puids)).encode()
            )
            sep = ",\n"
        out.write(b"\n]}\n")
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, supplier_names(job, shares))


#: U+2028 and U+2029 in UTF-8, and their escapes.
_LINE_SEPARATORS = re.compile(rb"\xe2\x80[\xa8\xa9]")
_ESCAPED = {"\u2028".encode(): b"\\u2028", "\u2029".encode(): b"\\u2029"}


def _escape(match: re.Match[bytes]) -> bytes:
    return _ESCAPED[match[0]]


def line_safe(data: bytes) -> bytes:
    """U+2028 / U+2029 as ``\\u2028`` / ``\\u2029``: valid JSON either way, but readers that
    split lines on every Unicode line break (Python's ``str.splitlines``, for one) would break a
    record there.
    They can only occur inside strings, so a byte-wise replace is safe. One regex search (both
    share the lead bytes ``E2 80``) instead of two substring scans: at 1M products a third of the
    CPU the two ``in`` scans took in the export process."""
    if _LINE_SEPARATORS.search(data) is None:
        return data
    return _LINE_SEPARATORS.sub(_escape, data)


@dataclass
class JsonLinesWriter:
    profile: str
    output: str = "jsonl"
    extension: str = "jsonl"
    media_type: str = "application/jsonl"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        release_memory(job)
        fmt = JsonFormat()
        shares: Counter[int] = Counter()
        wrap = bool(profile.references)
        for element in profile.references:
            for record in reference_records(job, element, fmt):
                out.write(line_safe(f'{{"{element.name}":{record}}}\n'.encode()))
        envelope = (f'{{"{profile.main.name}":'.encode(), b"}") if wrap else (b"", b"")
        for data in product_chunks(
            job, profile, fmt, sep=b"\n", wrap=envelope, end=b"\n", post=line_safe, shares=shares
        ):
            out.write(data)
        head, tail = envelope
        for puids in removed_puids(job):  # a delta (issue 12): the puids to delete
            out.write(
                b"".join(head + b'{"puid":%d,"removed":true}' % p + tail + b"\n" for p in puids)
            )
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, supplier_names(job, shares))
