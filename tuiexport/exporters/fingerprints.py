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

import functools
import hashlib
import json
import operator
import os
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate, compress, islice
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
COLUMNS = 6
#: The entry of a product that has no records in a part (its hash and figures 0: adding it
#: changes no sum), so that the part holds an entry for every product of the chunk.
_NOTHING = bytes(8)

#: The content hash: the first 8 bytes of a SHA-256 (OpenSSL's: with the CPU's SHA extensions,
#: 1 KB records hash in under half the time of BLAKE2b, measured at 1M products).
_sha256 = hashlib.sha256


@functools.cache
def _keyed(key: bytes) -> Any:
    return _sha256(key)


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
        hasher = _keyed(self.key).copy()  # the key hashed once, not once per product
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
        if self.pending is None and not self.spans_chunks:
            h = self._hasher if self.key else _sha256
            if len(set(puids)) == n:
                # One record per product (the nested formats, the CSV product member): no runs.
                digests = [
                    h(view[a : a + k]).digest() for a, k in zip(starts, lengths, strict=False)
                ]
                return b"".join(map(_PACKED.pack, puids, digests, numbers))
            # A product's lines follow one another (a CSV child member on the workers): the
            # index of each product's first line, found in C, then one hash per product.
            firsts = list(compress(range(n), map(operator.ne, puids, [None, *puids[:-1]])))
            ends = [starts[i] - len(self.sep) for i in firsts[1:]]
            ends.append(starts[n] - len(self.sep))
            digests = [
                h(view[starts[i] : end]).digest() for i, end in zip(firsts, ends, strict=True)
            ]
            return b"".join(
                map(
                    _PACKED.pack,
                    map(puids.__getitem__, firsts),
                    digests,
                    map(numbers.__getitem__, firsts),
                )
            )
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


def chunk_columns(part: int, sep: bytes, figures: bool, every: bool = False) -> str:
    """The columns a worker's chunk SQL ends with when the run keeps a manifest, aggregated
    over its subquery's rows ``fp_puid``, ``r`` (a record or a line, a BLOB; a product's
    records follow one another) and, with ``figures``, ``fp_fig`` (:data:`OFFER_FIGURES`). Its
    first column is the chunk's bytes; the subquery must end with ``LIMIT -1``, or SQLite
    flattens it and builds every record twice (once for the chunk, once for its length).
    ``every``: the part gets an entry for every puid of the chunk (``?1``), records or not
    (:data:`_NOTHING` for none), so that :meth:`Builder.finish` adds the parts up in blocks
    instead of merging them. See :func:`noted`."""
    return (
        f", {part}, x'{sep.hex()}', group_concat(iif(r IS NULL, NULL, fp_puid)), "
        f"group_concat(length(r)), "
        # Skipped where the record is, like the puid: the three lists stay in line.
        f"{'group_concat(iif(r IS NULL, NULL, fp_fig))' if figures else 'NULL'}, "
        f"{'?1' if every else 'NULL'}"
    )


def noted(rows: list[tuple[Any, ...]]) -> tuple[tuple[Any, ...], bytes]:
    """Worker handler (:data:`HANDLER`): the chunk's row without :func:`chunk_columns`, and its
    products' packed entries."""
    row = rows[0]
    part, sep, puids, lengths, figures, every = row[-COLUMNS:]
    entries = b""
    if lengths:
        # The lists of numbers read by the JSON decoder (C): a third of the time of
        # map(int, text.split(",")).
        entries = Noter(part, sep).note(
            row[0],
            json.loads(f"[{puids}]"),
            json.loads(f"[{lengths}]"),
            json.loads(f"[{figures}]") if figures else None,
        )
    if every is not None:
        entries = _every(entries, json.loads(every))
    return row[:-COLUMNS], entries


def _every(entries: bytes, puids: list[int]) -> bytes:
    """``entries`` (in puid order, a subset of ``puids``) with a :data:`_NOTHING` entry for
    each of ``puids`` they lack."""
    if len(entries) == ENTRY.size * len(puids):
        return entries
    size = ENTRY.size
    have = {
        int.from_bytes(entries[i : i + 8], "big"): entries[i : i + size]
        for i in range(0, len(entries), size)
    }
    pack = _PACKED.pack
    return b"".join([have.get(p) or pack(p, _NOTHING, 0) for p in puids])


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
                elif not _add_aligned(paths, out):  # the CSV ZIP's members: summed per puid
                    out.seek(len(MAGIC))
                    out.truncate()
                    merged = _entries(paths[0])
                    for path in paths[1:]:
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


#: Entries per block of :func:`_add_aligned`.
_BLOCK = 40_000


def _add_aligned(paths: list[Path], out: BinaryIO) -> bool:
    """The parts summed block by block, when every part holds the same puids in the same order
    (the workers give a child member an entry for every product: :func:`chunk_columns`'
    ``every``): whole columns added in C, no entry unpacked. False, with part of the sum
    written, as soon as two parts differ (the serial path: a child member has entries only
    for the products with lines)."""
    if not paths:  # no product at all
        return True
    size = paths[0].stat().st_size
    if any(path.stat().st_size != size for path in paths[1:]):
        return False
    files = [open(path, "rb") for path in paths]  # noqa: SIM115 - closed below
    try:
        while block := files[0].read(ENTRY.size * _BLOCK):
            total = array("Q", block)
            swap = sys.byteorder == "little"  # big-endian numbers, added as numbers
            if swap:
                total.byteswap()
            for f in files[1:]:
                other = array("Q", f.read(ENTRY.size * _BLOCK))
                if swap:
                    other.byteswap()
                if other[0::3] != total[0::3]:
                    return False
                for column in (1, 2):
                    sums = map(operator.add, total[column::3], other[column::3])
                    total[column::3] = array("Q", map(MASK.__and__, sums))
            if swap:
                total.byteswap()
            out.write(total.tobytes())
        return True
    finally:
        for f in files:
            f.close()


def _added(
    a: Iterator[tuple[int, int, int]], b: Iterator[tuple[int, int, int]]
) -> Iterator[tuple[int, int, int]]:
    """Entries ``b`` of a member added to those of ``a`` (in puid order): a product is in the
    manifest if it is in ``a`` (the first member: the product lines), its entries in both
    summed. (An entry of ``b`` alone is of a product whose line was not written: one removed
    while the run read the catalog.)"""
    y = next(b, None)
    for x in a:
        while y is not None and y[0] < x[0]:
            y = next(b, None)
        if y is not None and y[0] == x[0]:
            yield x[0], (x[1] + y[1]) & MASK, (x[2] + y[2]) & MASK
            y = next(b, None)
        else:
            yield x


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
