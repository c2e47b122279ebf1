"""The reader of the developer profile's CSV ZIP: ``manufacturer.csv``, ``productType.csv``,
``supplier.csv``, then ``product.csv`` with its ``productText.csv`` and ``supplierItem.csv``.

The three per-product files are ordered by puid (the exporter's promise), so they are read side
by side, one product at a time, with flat memory: a product's texts and offers are the rows of
the child files with its puid. Each product's fields go through the developer JSON Lines'
Structs (:mod:`~tuiexport.catalog.developer_reader`), so the checks are the same.

What the CSV cannot say, the import cannot keep: timestamps are written to the minute
(``dd.MM.yyyy HH:mm``, UTC), an empty cell is NULL for the fields that may be NULL (EAN, SKU,
image URL, eClass, ids, price, stock, weight). Only the platform dialect is read (the Excel
variant's decimal comma and neutralised cells are not meant to come back).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any, cast

import msgspec

from tuiexport.catalog.bounds import MAX_INFLATE_RATIO, MAX_LINE, MAX_OFFERS, MIN_INFLATE, reason
from tuiexport.catalog.developer_reader import (
    DevLine,
    DevManufacturer,
    DevProduct,
    DevProductType,
    DevSupplier,
    to_record,
)
from tuiexport.catalog.records import RowError
from tuiexport.catalog.writer import CatalogWriter
from tuiexport.errors import UserError

#: The members that make a ZIP the developer profile's CSV export.
MEMBERS = (
    "manufacturer.csv",
    "productType.csv",
    "supplier.csv",
    "product.csv",
    "productText.csv",
    "supplierItem.csv",
)
#: Columns where an empty cell means NULL (elsewhere it is the empty text).
_NULLABLE = {
    "ean",
    "manufacturerSku",
    "manufacturerId",
    "productTypeId",
    "imageUrl",
    "weight",
    "eclass",
    "created",
    "updated",
    "price",
    "stock",
    "id",
    "imageExportable",
}
_DATES = {"created", "updated"}
#: The key under which a row carries what is wrong with its shape.
_ERROR = "\0error"
_BOOLS = {"imageExportable", "partner"}


def is_developer_zip(names: list[str]) -> bool:
    return set(MEMBERS) <= set(names)


def _iso(value: str) -> str:
    return datetime.strptime(value, "%d.%m.%Y %H:%M").replace(tzinfo=UTC).isoformat()


class _Member:
    """One CSV member as (line number, {column: value}) rows, values ready for msgspec."""

    def __init__(self, zf: zipfile.ZipFile, name: str, zip_name: str):
        self.name = name
        self.text = io.TextIOWrapper(zf.open(name), encoding="utf-8", newline="")
        self.reader = csv.reader(self.text, strict=True)
        try:
            self.header = next(self.reader)
        except StopIteration:
            raise UserError(f"{name} in {zip_name} is empty, not even a header.") from None
        if (self.header and self.header[0].startswith("\ufeff")) or ";" in "".join(self.header):
            raise UserError(
                f"{zip_name} is the Excel variant of the CSV export; import the platform dialect "
                "(or the developer JSON Lines) instead."
            )

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        header, width = self.header, len(self.header)
        for row in self.reader:
            line = self.reader.line_num
            if len(row) != width:
                yield line, {_ERROR: f"{len(row)} columns, the header has {width}"}
                continue
            rec: dict[str, Any] = {}
            for key, value in zip(header, row, strict=True):
                if len(value) > MAX_LINE:
                    raise UserError(f"Line {line:,} of {self.name} is longer than any catalog row.")
                if value == "" and key in _NULLABLE:
                    rec[key] = None
                elif key in _DATES:
                    try:
                        rec[key] = _iso(value)
                    except ValueError:
                        rec[key] = value  # msgspec names the field
                elif key in _BOOLS:
                    rec[key] = {"true": True, "false": False}.get(value, value)
                else:
                    rec[key] = value
            yield line, rec


def read_developer_zip(
    raw: io.BufferedIOBase, writer: CatalogWriter, name: str, total: int
) -> None:
    try:
        zf = zipfile.ZipFile(cast(IO[bytes], raw))  # a file opened "rb"
    except zipfile.BadZipFile:
        raise UserError(f"{name} is not a complete ZIP file.") from None
    with zf:
        names = zf.namelist()
        if not is_developer_zip(names):
            missing = ", ".join(m for m in MEMBERS if m not in names)
            raise UserError(
                f"{name} is not a developer profile CSV export (it lacks {missing}); import the "
                "developer profile's export, or a .jsonl / .csv file in the catalog format."
            )
        inflated = sum(zf.getinfo(m).file_size for m in MEMBERS)
        if inflated > max(MIN_INFLATE, MAX_INFLATE_RATIO * total):
            raise UserError(
                f"{name} inflates to {inflated >> 20:,} MiB, over {MAX_INFLATE_RATIO} times its "
                "size, which no catalog does (a damaged file or a ZIP bomb?)."
            )
        try:
            _read(zf, writer, name)
        except csv.Error as exc:
            raise UserError(
                f"{name} has a broken CSV row ({exc}); the rows before it were imported."
            ) from None
        except (zipfile.BadZipFile, EOFError):
            raise UserError(
                f"{name} is not a complete ZIP file; the rows before the damage were imported."
            ) from None
        except UnicodeDecodeError:
            raise UserError(
                f"{name} holds text that is not UTF-8; the rows before it were imported."
            ) from None


_REFS: list[tuple[str, type[Any], str]] = [
    ("manufacturer.csv", DevManufacturer, "manufacturer"),
    ("productType.csv", DevProductType, "product_type"),
    ("supplier.csv", DevSupplier, "supplier"),
]


def _convert(rec: dict[str, Any], kind: type[Any]) -> Any:
    if _ERROR in rec:
        raise RowError(str(rec[_ERROR]))
    return msgspec.convert(rec, kind, strict=False)


def _read(zf: zipfile.ZipFile, writer: CatalogWriter, name: str) -> None:
    for member, kind, field in _REFS:
        for line, rec in _Member(zf, member, name).rows():
            writer.grow(64)
            try:
                writer.add(to_record(DevLine(**{field: _convert(rec, kind)})))
            except msgspec.ValidationError as exc:
                writer.error(line, f"{member}: {reason(exc)}")
            except RowError as exc:
                writer.error(line, f"{member}: {exc}")
    texts = _Children(_Member(zf, "productText.csv", name), writer)
    offers = _Children(_Member(zf, "supplierItem.csv", name), writer)
    for line, rec in _Member(zf, "product.csv", name).rows():
        writer.grow(1024)
        try:
            puid = int(rec.get("puid") or 0)
        except ValueError:
            puid = 0
        try:
            rec["productText"] = texts.of(puid)
            rec["supplierItem"] = offers.of(puid)
            writer.add(to_record(DevLine(product=_convert(rec, DevProduct))))
        except msgspec.ValidationError as exc:
            writer.error(line, f"product.csv: {reason(exc)}")
        except RowError as exc:
            writer.error(line, f"product.csv: {exc}")
    texts.orphans()
    offers.orphans()


class _Children:
    """The rows of a child file for one puid after another (they come in puid order)."""

    def __init__(self, member: _Member, writer: CatalogWriter):
        self.member, self.writer = member, writer
        self.rows = member.rows()
        self.ahead: tuple[int, dict[str, Any]] | None = next(self.rows, None)

    def _orphan(self, line: int, why: str) -> None:
        self.writer.error(line, f"{self.member.name}: {why}")
        self.ahead = next(self.rows, None)

    def of(self, puid: int) -> list[dict[str, Any]]:
        """The rows of ``puid`` (raises RowError, after reading them all, if one is bad)."""
        out: list[dict[str, Any]] = []
        problem = ""
        while self.ahead is not None:
            line, rec = self.ahead
            try:
                key = int(rec.get("puid") or 0)
            except ValueError:
                self._orphan(line, f"puid '{rec.get('puid')}' is not a number")
                continue
            if key > puid:
                break
            if key < puid:
                self._orphan(line, f"puid {key} is not in product.csv (or not in puid order)")
                continue
            rec.pop("puid")
            bad = rec.get(_ERROR)
            if bad is not None and not problem:
                problem = f"{self.member.name} line {line:,}: {bad}"
            if len(out) >= MAX_OFFERS and not problem:
                problem = f"{self.member.name}: more than {MAX_OFFERS:,} rows for one product"
            if not problem:
                out.append(rec)
            self.ahead = next(self.rows, None)
        if problem:
            raise RowError(problem)
        return out

    def orphans(self) -> None:
        """Report the rows left after the last product."""
        while self.ahead is not None:
            line, rec = self.ahead
            self._orphan(line, f"puid {rec.get('puid')} is not in product.csv")
