"""CSV exports: a ZIP holding one CSV per element, ``Log.csv``, and ``ERROR.txt`` when needed.

The CSV lines come out of SQLite ready-made (see :mod:`encode`); deflating runs on a second
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
from dataclasses import dataclass
from datetime import datetime
from typing import IO, BinaryIO

from tuiexport.exporters import encode
from tuiexport.exporters.base import ExportJob, WriteStats
from tuiexport.exporters.profiles import LOG_FIELDS, PROFILES

#: Deflate level: 1 like ``gzip -1``; the files are text and compress well even so.
ZIP_LEVEL = 1
#: Members above this many products may pass 4 GiB: write them with ZIP64 sizes.
ZIP64_FROM = 400_000
_BOM = "\ufeff"


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
                    info.external_attr = 0o644 << 16
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


@dataclass
class CsvZipWriter:
    profile: str
    output: str = "csv"
    extension: str = "zip"
    media_type: str = "application/zip"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        encode.release_memory(job)
        excel = job.options.get("csv_variant") == "excel"
        fmt = encode.CsvFormat(excel=excel)
        prefix = _BOM if excel else ""
        nl = fmt.newline
        fl = encode.flags(job)
        suppliers: Counter[int] = Counter()
        # Progress in products: each per-product file (product, then its children) is an
        # equal share of the run.
        phases = 1 + len(profile.children)
        total = job.total

        pump = ZipPump(out, job.started, zip64=total > ZIP64_FROM)
        ok = False
        try:
            phase = 0
            for element in profile.elements:
                pump.member(f"{element.name}.csv")
                pump.write((prefix + fmt.header(element.fields_for(fl)) + nl).encode())
                done = 0
                for chunk in encode.csv_chunks(job, element, fmt):
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
            reason = fmt.text(encode.limit_reason(job))
            for puids in encode.omitted_puids(job):
                pump.write("".join(f"{p}{fmt.sep}{reason}{nl}" for p in puids).encode())
            pump.end_member()

            if job.errors:
                pump.member("ERROR.txt")
                pump.write((nl.join(job.errors) + nl).encode())
                pump.end_member()
            ok = True
        finally:
            pump.finish(ok)
        job.check(total)
        return WriteStats(total, encode.supplier_names(job, suppliers))
