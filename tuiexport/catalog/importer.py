"""Catalog import (JSON Lines or CSV, maybe gzipped, in the catalog format or as the developer
profile exports them): opens the file, picks the reader, hands the records to the bulk writer.

Every row is decoded and checked on its own: a bad row is reported with its line number and a
one-line reason and skipped, good rows are kept (see :mod:`tuiexport.catalog.writer`).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuiexport import db as dbmod
from tuiexport import schema
from tuiexport.catalog.bounds import MAX_INFLATE_RATIO, MIN_INFLATE
from tuiexport.catalog.csv_reader import read_csv
from tuiexport.catalog.developer_csv_reader import read_developer_zip
from tuiexport.catalog.developer_reader import is_developer_jsonl, read_developer_jsonl
from tuiexport.catalog.jsonl_reader import read_jsonl
from tuiexport.catalog.records import ImportReport
from tuiexport.catalog.writer import CatalogWriter, analyze, bulk_load
from tuiexport.errors import UserError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class _Counting(io.RawIOBase):
    """A file wrapper that reports how many bytes of the (maybe compressed) file were read."""

    def __init__(
        self, raw: io.BufferedIOBase, total: int, progress: Callable[[int, int], None] | None
    ):
        self.raw, self.total, self.progress, self.done, self.next_report = (
            raw,
            total,
            progress,
            0,
            0,
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self.raw.readinto(buffer)
        self.done += n or 0
        if self.progress is not None and self.done >= self.next_report:
            self.next_report = self.done + (1 << 20)
            self.progress(self.done, self.total)
        return n


class _Inflated(io.RawIOBase):
    """The decompressed stream of a gzip file, refused once it inflates beyond ``limit``."""

    def __init__(self, gz: gzip.GzipFile, limit: int, name: str):
        self.gz, self.limit, self.name, self.done = gz, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.gz.readinto(buffer)
        self.done += n
        if self.done > self.limit:
            raise UserError(
                f"{self.name} inflates to more than {self.limit >> 20:,} MiB, over "
                f"{MAX_INFLATE_RATIO} times its size, which no catalog does (a damaged file or "
                "a gzip bomb?); the rows before were imported, and to import it anyway, gunzip "
                "it and import the uncompressed file."
            )
        return n


def _format(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    for ext in ("jsonl", "csv"):
        if name.endswith("." + ext):
            return ext, gz
    if name.endswith(".zip") and not gz:
        return "zip", False
    raise UserError(
        f"Cannot tell the format of {path.name}: name it .jsonl, .jsonl.gz, .csv or .csv.gz "
        "(or .zip for the developer profile's CSV export)."
    )


def import_file(
    path: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Import a catalog file; ``progress(bytes_read, file_size)`` is called as it goes."""
    path = Path(path)
    kind, gz = _format(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    report = ImportReport()
    writer = CatalogWriter(report)
    db = dbmod.database.obj
    try:
        total = os.fstat(raw.fileno()).st_size
        with bulk_load(db, _estimated_products(total, gz)) as bulk:
            _read(path, raw, total, gz, kind, writer, progress)
        if bulk:
            analyze(db)
    finally:
        raw.close()
        if writer.changed:
            schema.bump_catalog_version()
    return report


def _estimated_products(size: int, gz: bool) -> int:
    """About how many products a file of ``size`` bytes holds (on the low side: a demo product
    is about 1.2 kB of JSON Lines, a real one with long texts more; gzip shrinks 5-10 times)."""
    return size * (5 if gz else 1) // 2_000


def _read(
    path: Path,
    raw: io.BufferedIOBase,
    total: int,
    gz: bool,
    kind: str,
    writer: CatalogWriter,
    progress: Callable[[int, int], None] | None,
) -> None:
    counted = io.BufferedReader(_Counting(raw, total, progress), 1 << 16)
    stream: io.BufferedReader[Any] = counted
    if gz:
        inflated = gzip.GzipFile(fileobj=counted, mode="rb")
        limit = max(MIN_INFLATE, MAX_INFLATE_RATIO * total)
        stream = io.BufferedReader(_Inflated(inflated, limit, path.name), 1 << 16)
    try:
        if kind == "zip":
            # Read by members (a ZIP needs seeking): progress at the start and the end only.
            read_developer_zip(raw, writer, path.name, total)
        elif kind == "jsonl":
            # The developer profile's JSON Lines, told by its first line: {"manufacturer":{…
            if is_developer_jsonl(stream.peek(1 << 12)[: 1 << 12]):
                read_developer_jsonl(stream, writer, path.name)
            else:
                read_jsonl(stream, writer, path.name)
        else:
            read_csv(stream, writer, path.name)
    except UserError:
        writer.flush()  # the good rows before the damage are kept, as the message says
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error):
        writer.flush()
        raise UserError(
            f"{path.name} is not a complete gzip file; the rows before the damage were imported."
        ) from None
    except IsADirectoryError:
        raise UserError(f"Cannot read {path}: it is a folder.") from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    writer.flush()
    if progress is not None:
        progress(total, total)
