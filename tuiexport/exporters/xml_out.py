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
from dataclasses import dataclass
from typing import BinaryIO

from tuiexport.exporters import encode
from tuiexport.exporters.base import ExportJob, WriteStats
from tuiexport.exporters.profiles import PROFILES

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def xml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return encode.strip_xml_forbidden(encode.XmlFormat.escape(value))


@dataclass
class XmlWriter:
    profile: str
    output: str = "xml"
    extension: str = "xml"
    media_type: str = "application/xml"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        encode.release_memory(job)
        fmt = encode.XmlFormat()
        shares: Counter[int] = Counter()
        strip = encode.strip_xml_forbidden
        out.write(XML_DECLARATION + b"<export>\n<meta>")
        out.write(
            "".join(f"<{k}>{xml_value(v)}</{k}>" for k, v in encode.meta(job).items()).encode()
        )
        out.write(b"</meta>\n")
        for element in profile.references:
            for record in encode.reference_records(job, element, fmt):
                out.write((strip(record) + "\n").encode())
        strip_utf8 = encode.strip_xml_forbidden_utf8
        for data in encode.product_chunks(
            job, profile, fmt, sep=b"\n", end=b"\n", post=strip_utf8, shares=shares
        ):
            out.write(data)
        if job.omitted:
            out.write(b"<log>")
            reason = xml_value(encode.limit_reason(job))
            for puids in encode.omitted_puids(job):
                out.write(
                    "".join(
                        f"<entry><puid>{p}</puid><reason>{reason}</reason></entry>" for p in puids
                    ).encode()
                )
            out.write(b"</log>\n")
        out.write(b"</export>\n")
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, encode.supplier_names(job, shares))
