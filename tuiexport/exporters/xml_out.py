"""XML: one streamed document, elements named like the fields, supplier items nested.

Shape::

    <?xml version="1.0" encoding="UTF-8"?>
    <export>
    <meta><exportId>…</exportId>…</meta>
    <manufacturer>…</manufacturer>…            (developer only: reference entities first)
    <product><puid>1001</puid>…<supplierItem>…</supplierItem></product>
    …
    <log><entry><puid>1201</puid><reason>over the product limit of 200</reason></entry></log>
    </export>

A NULL value leaves its element out; an empty text writes an empty element. Characters XML 1.0
forbids are stripped; a CR is written as ``&#13;`` so that parsers keep it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

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
from tuiexport.exporters.text import (
    MARKUP_GT,
    MARKUP_LT,
    markup_to_xml,
    round_half_up,
    strip_xml_forbidden,
    strip_xml_forbidden_utf8,
    xml_escape,
)

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _tag(name: str) -> str:
    """``<name>`` (or ``</name>`` for ``/name``) with placeholder brackets (see
    :func:`markup_to_xml`), as an SQL literal."""
    return f"x'{(MARKUP_LT + name.encode() + MARKUP_GT).hex()}'"


class XmlFormat:
    """Elements named like the fields; NULL leaves the element out; CR kept as ``&#13;``
    (parsers turn a raw CR into LF); forbidden characters are stripped afterwards."""

    name = "xml"

    def sql(self, kind: str, v: str) -> str:
        if kind in ("int", "text"):
            # Text as it is: SQLite builds the markup with placeholder brackets and
            # markup_to_xml escapes each chunk in one pass (a third of the workers' time went
            # into instr() x 4 + a CASE per field).
            return v
        if kind in ("price", "weight"):
            places = 2 if kind == "price" else 3
            return f"CASE WHEN {IN_BOUND.format(v)} THEN printf('%.{places}f', {v}) END"
        if kind == "datetime":
            # Timestamps are stored as ``YYYY-MM-DD HH:MM:SS`` (see models.py): one replace()
            # instead of strftime's parse and format; any other form still goes to strftime.
            return (
                f"CASE WHEN length({v}) = 19 THEN replace({v}, ' ', 'T') || 'Z' "
                f"ELSE strftime('%Y-%m-%dT%H:%M:%SZ', {v}) END"
            )
        if kind == "bool":
            return f"CASE WHEN {v} IS NULL THEN NULL WHEN {v} THEN 'true' ELSE 'false' END"
        raise ValueError(kind)

    def py(self, kind: str) -> Callable[[Any], str | None]:
        if kind == "int":
            return lambda v: None if v is None else str(int(v))
        if kind == "text":
            return lambda v: None if v is None else xml_escape(v)
        if kind in ("price", "weight"):
            places = "0.01" if kind == "price" else "0.001"
            return lambda v: (
                None if v is None or not abs(v) < NUMBER_BOUND else round_half_up(v, places)
            )
        if kind == "datetime":
            return lambda v: None if v is None else iso_utc(v)
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
            f"IFNULL({_tag(f.name)} || {self.sql(f.kind, field_sql(f, job))} || "
            f"{_tag('/' + f.name)}, '')"
            for f in fields
        ]
        parts += [f"IFNULL({sub}, '')" for _, sub in children]
        # || rather than printf('%s…'), which would cut a text at a NUL character.
        return f"{_tag(tag)} || " + " || ".join(parts) + f" || {_tag('/' + tag)}"

    def child_sql(self, child: Element, fields: tuple[Field, ...], job: ExportJob) -> str:
        index = ordered_index(job, child)
        if index:
            return (
                f"(SELECT group_concat({self.record_sql(fields, job, tag=child.name)}, '') "
                f"FROM {indexed(child.source, index)} WHERE {child.link} = p.puid)"
            )
        return (
            f"(SELECT group_concat(r, '') FROM (SELECT {self.record_sql(fields, job, tag=child.name)} "
            f"AS r FROM {child.source} WHERE {child.link} = p.puid ORDER BY {child.order}))"
        )

    def record_py(self, fields: tuple[Field, ...]) -> Callable[[Row], list[str]]:
        encoders = [(f.name, self.py(f.kind)) for f in fields]

        def encode(row: tuple[Any, ...]) -> list[str]:
            out: list[str] = []
            for (name, enc), v in zip(encoders, row, strict=False):
                text = enc(v)
                if text is not None:
                    out.append(f"<{name}>{text}</{name}>")
            return out

        return encode

    def join(
        self, tag: str, parts: list[str], children: Sequence[tuple[str, list[str]]] = ()
    ) -> str:
        inner = "".join(parts)
        if children:
            inner += "".join("".join(items) for _, items in children)
        return f"<{tag}>{inner}</{tag}>"


def xml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return strip_xml_forbidden(xml_escape(value))


@dataclass
class XmlWriter:
    profile: str
    output: str = "xml"
    extension: str = "xml"
    media_type: str = "application/xml"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        release_memory(job)
        fmt = XmlFormat()
        shares: Counter[int] = Counter()
        strip = strip_xml_forbidden
        out.write(XML_DECLARATION + b"<export>\n<meta>")
        out.write("".join(f"<{k}>{xml_value(v)}</{k}>" for k, v in meta(job).items()).encode())
        out.write(b"</meta>\n")
        for element in profile.references:
            for record in reference_records(job, element, fmt):
                out.write((strip(record) + "\n").encode())
        strip_utf8 = strip_xml_forbidden_utf8
        for data in product_chunks(
            job,
            profile,
            fmt,
            sep=b"\n",
            end=b"\n",
            post=strip_utf8,
            sql_post=markup_to_xml,
            shares=shares,
        ):
            out.write(data)
        if job.omitted:
            out.write(b"<log>")
            reason = xml_value(limit_reason(job))
            for puids in omitted_puids(job):
                out.write(
                    "".join(
                        f"<entry><puid>{p}</puid><reason>{reason}</reason></entry>" for p in puids
                    ).encode()
                )
            out.write(b"</log>\n")
        for puids in removed_puids(job):  # a delta (issue 12): the puids to delete
            out.write("".join(f"<removed><puid>{p}</puid></removed>\n" for p in puids).encode())
        out.write(b"</export>\n")
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, supplier_names(job, shares))
