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

from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

from tuiexport.exporters import encode
from tuiexport.exporters.base import ExportJob, WriteStats
from tuiexport.exporters.profiles import PROFILES

_enc = msgspec.json.Encoder()


@dataclass
class JsonWriter:
    profile: str
    output: str = "json"
    extension: str = "json"
    media_type: str = "application/json"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        encode.release_memory(job)
        fmt = encode.JsonFormat()
        shares: Counter[int] = Counter()
        out.write(b'{"meta":' + _enc.encode(encode.meta(job)))
        for element in profile.references:
            out.write(f',\n"{element.name}":[\n'.encode())
            out.write(",\n".join(encode.reference_records(job, element, fmt)).encode())
            out.write(b"\n]")
        out.write(f',\n"{profile.main.name}":['.encode())
        first = True
        for data in encode.product_chunks(job, profile, fmt, sep=b",\n", shares=shares):
            if data:
                out.write((b",\n" if not first else b"\n") + data)
                first = False
        out.write(b'\n],\n"log":[')
        reason = _enc.encode(encode.limit_reason(job)).decode()
        sep = "\n"
        for puids in encode.omitted_puids(job):
            out.write(
                (sep + ",\n".join(f'{{"puid":{p},"reason":{reason}}}' for p in puids)).encode()
            )
            sep = ",\n"
        out.write(b"\n]}\n")
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, encode.supplier_names(job, shares))


@dataclass
class JsonLinesWriter:
    profile: str
    output: str = "jsonl"
    extension: str = "jsonl"
    media_type: str = "application/jsonl"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        encode.release_memory(job)
        fmt = encode.JsonFormat()
        shares: Counter[int] = Counter()
        wrap = bool(profile.references)
        for element in profile.references:
            for record in encode.reference_records(job, element, fmt):
                out.write(f'{{"{element.name}":{record}}}\n'.encode())
        envelope = (f'{{"{profile.main.name}":'.encode(), b"}") if wrap else (b"", b"")
        for data in encode.product_chunks(
            job, profile, fmt, sep=b"\n", wrap=envelope, end=b"\n", shares=shares
        ):
            out.write(data)
        # Counted along with the products (or after them), so the first bytes go out at once.
        return WriteStats(job.total, encode.supplier_names(job, shares))
