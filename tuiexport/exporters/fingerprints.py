"""Fingerprints of what a run wrote per product (issue 12): the manifest beside its artifact.

Every record a writer builds for a product goes through one SQL function, ``tx_fp(part, puid,
record[, figures])`` (:func:`wrap`): it returns the record unchanged and notes
``(puid, hash of the record's bytes)`` on the connection that evaluated it — the export's own, or
a worker's, whose notes travel back with its chunk (:mod:`.worker`, :mod:`.parallel`). Nested
formats (JSON, JSON Lines, XML) write one record per product, children inside; the CSV ZIP writes
a product's lines in several members (``part``): their hashes are summed per puid when the
manifest is finished. ``figures`` (the main record only) is the product's offers' prices and
stock, hashed separately, so that a run diff can tell how many changed products changed those.

The manifest is a flat binary file: :data:`MAGIC`, then one :data:`ENTRY` (puid, content hash,
figures hash; big-endian) per product, sorted by puid. 24 bytes per product; memory stays flat
while it is written (notes are spilled to part files every megabyte) and read (streamed).

Standard library only: the worker processes import it.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

if TYPE_CHECKING:
    import sqlite3

    from tuiexport.exporters.base import ExportJob

FUNCTION = "tx_fp"
MAGIC = b"TXFP\x00\x00\x00\x01"
ENTRY = struct.Struct(">QQQ")
MASK = (1 << 64) - 1
#: Notes a collector keeps before it spills them (bytes).
SPILL = 1 << 20
#: A product's offers' prices and stock as one number (a weighted sum over its offers, read
#: from the covering index supplier_item_offer): cheap to make, and a price or stock change
#: changes it. It only counts changes for the run diff; what a delta holds is the content hash.
OFFER_FIGURES = (
    "(SELECT total(IFNULL(fo.price, -1.0) * 7919.0 + IFNULL(fo.stock, -1) * 104729.0 "
    "+ fo.supplier_id * 15485863.0) FROM supplier_item fo WHERE fo.product_id = {puid})"
)
_DOUBLE = struct.Struct(">d")


_blake2b = hashlib.blake2b


def _hash(person: bytes, data: bytes | str | None) -> int:
    if data is None:
        return 0
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return int.from_bytes(_blake2b(data, digest_size=8, person=person).digest(), "big")


def _figures(value: object) -> int:
    if not isinstance(value, (int, float)):
        return 0
    return int.from_bytes(_DOUBLE.pack(float(value)), "big") or 1


class _Part:
    """One part's packed entries, and the product being summed (its lines come one after
    another)."""

    __slots__ = ("buf", "content", "figures", "person", "puid")

    def __init__(self, part: int):
        self.buf = bytearray()
        self.person = part.to_bytes(4, "big")
        self.puid: int | None = None
        self.content = self.figures = 0

    def close(self) -> None:
        if self.puid is not None:
            self.buf += ENTRY.pack(self.puid, self.content, self.figures)
            self.puid = None


class Collector:
    """The notes of one connection, per part: packed entries, consecutive lines of the same
    puid summed. ``spill(part, data)``, if given, receives them every :data:`SPILL` bytes."""

    def __init__(self, spill: Callable[[int, bytes], None] | None = None):
        self.parts: dict[int, _Part] = {}
        self.spill = spill

    def record(
        self, part: int, puid: int, value: bytes | None, figures: object = None
    ) -> bytes | None:
        p = self.parts.get(part)
        if p is None:
            p = self.parts[part] = _Part(part)
        content = _hash(p.person, value)
        extra = _figures(figures)
        if p.puid == puid:  # another line of the same product (CSV)
            p.content = (p.content + content) & MASK
            p.figures = (p.figures + extra) & MASK
            return value
        p.close()
        p.puid, p.content, p.figures = puid, content, extra
        if self.spill is not None and len(p.buf) >= SPILL:
            self.spill(part, bytes(p.buf))
            p.buf.clear()
        return value

    def sql_function(self, *args: object) -> bytes | None:
        """``tx_fp(part, puid, record BLOB[, figures])`` -> the record."""
        part, puid, value = args[0], args[1], args[2]
        assert isinstance(part, int) and isinstance(puid, int)
        assert value is None or isinstance(value, bytes)
        return self.record(part, puid, value, args[3] if len(args) > 3 else None)

    def take(self) -> list[tuple[int, bytes]]:
        """The notes so far (and forget them)."""
        taken = []
        for part, p in self.parts.items():
            p.close()
            if p.buf:
                taken.append((part, bytes(p.buf)))
        self.parts.clear()
        return taken


def register(conn: sqlite3.Connection, collector: Collector) -> None:
    """Make ``tx_fp`` note into ``collector`` on this connection."""
    conn.create_function(FUNCTION, -1, collector.sql_function)


def wrap(
    job: ExportJob, element: str, puid_sql: str, record_sql: str, figures: bool = False
) -> str:
    """``record_sql`` fingerprinted (as a BLOB) when the run keeps a manifest, else unchanged."""
    builder = job.fingerprints
    if builder is None:
        return record_sql
    extra = f", {OFFER_FIGURES.format(puid=puid_sql)}" if figures else ""
    return f"{FUNCTION}({builder.part(element)}, {puid_sql}, CAST({record_sql} AS BLOB){extra})"


class Builder:
    """Gathers a run's notes into part files beside ``target`` and finishes the manifest."""

    def __init__(self, target: Path):
        self.target = target
        self.parts: dict[str, int] = {}
        self.files: dict[int, BinaryIO] = {}
        self.local = Collector(spill=self.feed)

    def part(self, element: str) -> int:
        return self.parts.setdefault(element, len(self.parts))

    def _path(self, part: int) -> Path:
        return self.target.with_name(f"{self.target.name}.{part}.part")

    def feed(self, part: int, data: bytes) -> None:
        f = self.files.get(part)
        if f is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            f = self.files[part] = open(self._path(part), "wb")  # noqa: SIM115 - closed in finish
        f.write(data)

    def feed_all(self, taken: Iterable[tuple[int, bytes]]) -> None:
        for part, data in taken:
            self.feed(part, data)

    def record(self, element: str, puid: int, value: bytes | str, figures: object = None) -> None:
        """A record built in Python (the generic path)."""
        data = value.encode() if isinstance(value, str) else value
        self.local.record(self.part(element), puid, data, figures)

    def finish(self) -> int:
        """Write the manifest at ``target``; returns the number of products in it."""
        self.feed_all(self.local.take())
        for f in self.files.values():
            f.close()
        paths = [self._path(part) for part in sorted(self.files)]
        tmp = self.target.with_name(self.target.name + ".tmp")
        count = 0
        try:
            with open(tmp, "wb") as out:
                out.write(MAGIC)
                buffer = bytearray()
                last = -1
                for entry in _summed(heapq.merge(*(_entries(p) for p in paths))):
                    if entry[0] <= last:  # a part noted out of puid order: no manifest
                        raise ValueError(f"the records were not in puid order at {entry[0]}")
                    last = entry[0]
                    buffer += ENTRY.pack(*entry)
                    count += 1
                    if len(buffer) >= SPILL:
                        out.write(buffer)
                        buffer.clear()
                out.write(buffer)
            os.replace(tmp, self.target)
        finally:
            self.discard()
        return count

    def discard(self) -> None:
        for f in self.files.values():
            f.close()
        for part in self.files:
            self._path(part).unlink(missing_ok=True)
        self.target.with_name(self.target.name + ".tmp").unlink(missing_ok=True)


def _entries(path: Path, skip: int = 0) -> Iterator[tuple[int, int, int]]:
    with open(path, "rb") as f:
        f.seek(skip)
        while data := f.read(ENTRY.size * 40_000):
            yield from ENTRY.iter_unpack(data)


def _summed(entries: Iterable[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    current: list[int] | None = None
    for puid, content, figures in entries:
        if current is not None and current[0] == puid:
            current[1] = (current[1] + content) & MASK
            current[2] = (current[2] + figures) & MASK
            continue
        if current is not None:
            yield current[0], current[1], current[2]
        current = [puid, content, figures]
    if current is not None:
        yield current[0], current[1], current[2]


def read(path: Path) -> Iterator[tuple[int, int, int]]:
    """The manifest's entries, in puid order; ValueError if it is not a manifest."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a fingerprint manifest.")
    return _entries(path, len(MAGIC))


def count(path: Path) -> int:
    return (path.stat().st_size - len(MAGIC)) // ENTRY.size


class Change(NamedTuple):
    puid: int
    #: "added", "changed" or "removed"
    kind: str
    #: For a changed product: its offers' prices or stock changed.
    figures: bool = False


def diff(old: Path, new: Path) -> Iterator[Change]:
    """What changed from the run of manifest ``old`` to that of ``new``, in puid order."""
    a, b = read(old), read(new)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            assert x is not None
            yield Change(x[0], "removed")
            x = next(a, None)
        elif x is None or y[0] < x[0]:
            yield Change(y[0], "added")
            y = next(b, None)
        else:
            if x[1] != y[1]:
                yield Change(x[0], "changed", x[2] != y[2])
            x, y = next(a, None), next(b, None)
