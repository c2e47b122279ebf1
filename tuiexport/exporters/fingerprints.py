"""Fingerprints of what a run wrote per product (issue 12): the manifest beside its artifact.

A writer hands the records it built to a :class:`Noter`, chunk after chunk: the chunk's bytes,
and per record its puid and its length in bytes (SQLite builds both lists with the chunk, see
:func:`chunk_columns`; nothing is called back per record). A product's records follow one
another (one record each for JSON, JSON Lines and XML; its lines of one member for the CSV ZIP):
their bytes, the separators between them included, are hashed in one call — on the worker
process that built the chunk (:func:`noted`), or on the export's own connection. The members of
a CSV ZIP are parts of their own (``part``, the hash's key): their hashes are summed per puid
when the manifest is finished. ``figures`` (the main record only) is the product's offers' prices and stock,
noted separately, so that a run diff can tell how many changed products changed those.

The manifest is a flat binary file: :data:`MAGIC`, then one :data:`ENTRY` (puid, content hash,
figures; big-endian) per product, sorted by puid. 24 bytes per product; memory stays flat while
it is written (entries go to part files chunk by chunk) and read (streamed). A manifest of an
older version (:data:`OLD_MAGICS`: other hashes) is not compared with a current one.

Standard library only: the worker processes import it.
"""

from __future__ import annotations

import hashlib
import operator
import os
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate, islice
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

MAGIC = b"TXFP\x00\x00\x00\x02"
#: Version 1 summed a BLAKE2b of every CSV line and noted the figures' double: its entries mean
#: nothing next to version 2's.
OLD_MAGICS = (b"TXFP\x00\x00\x00\x01",)
ENTRY = struct.Struct(">QQQ")
#: The same 24 bytes as ENTRY, packed from a digest (``8s`` keeps its first 8 bytes) and the
#: figures (signed).
_PACKED = struct.Struct(">Q8sq")
MASK = (1 << 64) - 1
#: A product's offers' prices and stock as one number (a weighted sum over its offers, read
#: from the covering index supplier_item_offer): cheap to make, and a price or stock change
#: changes it (a cent of a price by 79). It only counts changes for the run diff; what a delta
#: holds is the content hash. An integer: SQLite writes it as text (a worker's group_concat)
#: faster than a double, and every path reads back the same number.
OFFER_FIGURES = (
    "(SELECT CAST(total(IFNULL(fo.price, -1.0) * 7919.0 + IFNULL(fo.stock, -1) * 104729.0 "
    "+ fo.supplier_id * 15485863.0) AS INTEGER) FROM supplier_item fo WHERE fo.product_id = {puid})"
)
#: :data:`OFFER_FIGURES` in SQL that PostgreSQL speaks too (the generic path): the same number
#: on SQLite (SUM of the same doubles in the same order, truncated), and on PostgreSQL a number
#: of its own, compared only with the manifests of its own runs.
PORTABLE_OFFER_FIGURES = (
    "(SELECT CAST(COALESCE(SUM(COALESCE(fo.price, -1.0) * 7919.0 + COALESCE(fo.stock, -1) "
    "* 104729.0 + fo.supplier_id * 15485863.0), 0) AS BIGINT) FROM supplier_item fo "
    "WHERE fo.product_id = {puid})"
)
#: The worker handler of chunks whose SQL ends with :func:`chunk_columns`.
HANDLER = f"{__name__}:noted"
#: How many columns :func:`chunk_columns` adds.
COLUMNS = 5

#: The content hash: the first 8 bytes of a SHA-256 (OpenSSL's: with the CPU's SHA extensions,
#: 1 KB records hash in under half the time of BLAKE2b, measured at 1M products).
_sha256 = hashlib.sha256


class Noter:
    """Entries of one part: :meth:`note` a chunk's records, :meth:`close` after the last.

    The content hash is a SHA-256 of the part's key (none for part 0) and the product's bytes.
    ``sep`` separates the records in the chunk's bytes. With ``spans_chunks`` a product's records
    may go on in the next chunk (the serial CSV path reads lines, not products): the last product
    of a chunk is finished by the next one. Either way the hash is over the same bytes, so the
    serial path and the workers give a product the same entry; so does the generic path (records
    built in Python, as on PostgreSQL), except in XML, where the fast path hashes SQLite's markup
    before it becomes XML (switching ``generic_path`` on SQLite shows every XML product changed
    once)."""

    __slots__ = ("key", "part", "pending", "sep", "spans_chunks")

    def __init__(self, part: int, sep: bytes, spans_chunks: bool = False):
        self.part, self.sep, self.spans_chunks = part, sep, spans_chunks
        #: So that two members' contents swapped still change a product's sum.
        self.key = part.to_bytes(4, "big") if part else b""
        self.pending: tuple[int, Any, int] | None = None

    def _hasher(self, data: memoryview) -> Any:
        if not self.key:
            return _sha256(data)
        hasher = _sha256(self.key)
        hasher.update(data)
        return hasher

    def note(
        self,
        data: bytes,
        puids: Sequence[int],
        lengths: Sequence[int],
        figures: Sequence[str | int] | None = None,
    ) -> bytes:
        """The packed entries of the products whose records in ``data`` are complete:
        ``data`` holds ``len(lengths)`` records separated by ``sep``, the i-th of
        ``lengths[i]`` bytes, of product ``puids[i]`` (``figures[i]``: :data:`OFFER_FIGURES`
        of a main record)."""
        n = len(lengths)
        if not n:
            return b""
        view = memoryview(data)
        starts = [0, *accumulate(map(len(self.sep).__add__, lengths))]
        numbers = list(map(int, figures)) if figures else [0] * n
        if self.pending is None and not self.spans_chunks and len(set(puids)) == n:
            # One record per product (the nested formats, the CSV product member): no runs.
            h = self._hasher if self.key else _sha256
            digests = [h(view[a : a + k]).digest() for a, k in zip(starts, lengths, strict=False)]
            return b"".join(map(_PACKED.pack, puids, digests, numbers))
        entries: list[bytes] = []
        i = 0
        if self.pending is not None:  # the product the last chunk ended with
            puid, hasher, number = self.pending
            while i < n and puids[i] == puid:
                i += 1
            if i:
                hasher.update(self.sep)
                hasher.update(view[: starts[i - 1] + lengths[i - 1]])
            if i == n and self.spans_chunks:
                return b""  # it may go on further still
            entries.append(_PACKED.pack(puid, hasher.digest(), number))
            self.pending = None
        while i < n:
            puid, first = puids[i], i
            i += 1
            while i < n and puids[i] == puid:
                i += 1
            hasher = self._hasher(view[starts[first] : starts[i - 1] + lengths[i - 1]])
            if i == n and self.spans_chunks:
                self.pending = (puid, hasher, numbers[first])
            else:
                entries.append(_PACKED.pack(puid, hasher.digest(), numbers[first]))
        return b"".join(entries)

    def close(self) -> bytes:
        """The entry of the product the last chunk ended with, if it is still open."""
        if self.pending is None:
            return b""
        puid, hasher, number = self.pending
        self.pending = None
        return _PACKED.pack(puid, hasher.digest(), number)


def chunk_columns(part: int, sep: bytes, figures: bool) -> str:
    """The columns a worker's chunk SQL ends with when the run keeps a manifest, aggregated
    over its subquery's rows ``fp_puid``, ``r`` (the record, a BLOB) and, with ``figures``,
    ``fp_fig`` (:data:`OFFER_FIGURES`). Its first column is the chunk's bytes; the subquery must
    end with ``LIMIT -1``, or SQLite flattens it and builds every record twice (once for the
    chunk, once for its length). See :func:`noted`."""
    return (
        f", {part}, x'{sep.hex()}', group_concat(iif(r IS NULL, NULL, fp_puid)), "
        f"group_concat(length(r)), {'group_concat(fp_fig)' if figures else 'NULL'}"
    )


def noted(rows: list[tuple[Any, ...]]) -> tuple[tuple[Any, ...], bytes]:
    """Worker handler (:data:`HANDLER`): the chunk's row without :func:`chunk_columns`, and its
    products' packed entries."""
    row = rows[0]
    part, sep, puids, lengths, figures = row[-COLUMNS:]
    entries = b""
    if lengths:
        entries = Noter(part, sep).note(
            row[0],
            list(map(int, puids.split(","))),
            list(map(int, lengths.split(","))),
            figures.split(",") if figures else None,
        )
    return row[:-COLUMNS], entries


class Builder:
    """Gathers a run's entries into part files beside ``target`` and finishes the manifest."""

    def __init__(self, target: Path):
        self.target = target
        self.parts: dict[str, int] = {}
        self.files: dict[int, BinaryIO] = {}
        self.noters: dict[int, Noter] = {}

    def part(self, element: str) -> int:
        return self.parts.setdefault(element, len(self.parts))

    def noter(self, element: str, sep: bytes, spans_chunks: bool = False) -> Noter:
        """The :class:`Noter` of ``element``'s records built in this process; :meth:`finish`
        closes it."""
        part = self.part(element)
        noter = self.noters[part] = Noter(part, sep, spans_chunks)
        return noter

    def _path(self, part: int) -> Path:
        return self.target.with_name(f"{self.target.name}.{part}.part")

    def feed(self, part: int, data: bytes) -> None:
        if not data:
            return
        f = self.files.get(part)
        if f is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            f = self.files[part] = open(self._path(part), "wb")  # noqa: SIM115 - closed in finish
        f.write(data)

    def finish(self) -> int:
        """Write the manifest at ``target``; returns the number of products in it."""
        for part, noter in self.noters.items():
            self.feed(part, noter.close())
        for f in self.files.values():
            f.close()
        paths = [self._path(part) for part in sorted(self.files)]
        tmp = self.target.with_name(self.target.name + ".tmp")
        try:
            for path in paths:  # never expected: the writers note in puid order
                _check_order(path)
            with open(tmp, "wb") as out:
                out.write(MAGIC)
                if len(paths) == 1:  # JSON, JSON Lines, XML: the part file is the manifest
                    with open(paths[0], "rb") as f:
                        while block := f.read(1 << 20):
                            out.write(block)
                else:  # the CSV ZIP's members: summed per puid
                    merged: Iterator[tuple[int, int, int]] = iter(())
                    for path in paths:
                        merged = _added(merged, _entries(path))
                    pack = ENTRY.pack
                    while some := list(islice(merged, 40_000)):
                        out.write(b"".join([pack(*entry) for entry in some]))
            os.replace(tmp, self.target)
        finally:
            self.discard()
        return count(self.target)

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


def _check_order(path: Path) -> None:
    """ValueError unless the puids of a part file increase strictly (checked a block at a
    time in C: the first of every three 8-byte numbers)."""
    last = -1
    with open(path, "rb") as f:
        while block := f.read(ENTRY.size * 40_000):
            numbers = array("Q", block)
            if sys.byteorder == "little":
                numbers.byteswap()
            puids = numbers[0::3]
            if puids[0] <= last or not all(map(operator.lt, puids, puids[1:])):
                raise ValueError(f"the records of {path.name} were not in puid order")
            last = puids[-1]


def _added(
    a: Iterator[tuple[int, int, int]], b: Iterator[tuple[int, int, int]]
) -> Iterator[tuple[int, int, int]]:
    """Two streams of entries in puid order merged, the entries of a puid in both summed."""
    x, y = next(a, None), next(b, None)
    while x is not None and y is not None:
        if x[0] == y[0]:
            yield x[0], (x[1] + y[1]) & MASK, (x[2] + y[2]) & MASK
            x, y = next(a, None), next(b, None)
        elif x[0] < y[0]:
            yield x
            x = next(a, None)
        else:
            yield y
            y = next(b, None)
    if x is not None:
        yield x
        yield from a
    if y is not None:
        yield y
        yield from b


def current(path: Path) -> bool:
    """Whether ``path`` is a manifest of this version (False: missing, of an older version, or
    no manifest at all)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read(path: Path) -> Iterator[tuple[int, int, int]]:
    """The manifest's entries, in puid order; ValueError if it is no manifest of this version."""
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
    if magic in OLD_MAGICS:
        raise ValueError(f"{path} is a fingerprint manifest of an older version of tuiexport.")
    if magic != MAGIC:
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
