"""The CSV reader: one row per offer, adjacent rows per product, the texts in ``name.de``-style
columns; rows become :mod:`~tuiexport.catalog.records` for the bulk writer. A stray quote
swallows only its own row: the lines after it are read again.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
from msgspec import Meta

from tuiexport.catalog.bounds import (
    MAX_BLANK_RUN,
    MAX_LINE,
    MAX_OFFERS,
    MAX_STRAY_QUOTES,
    clip,
    reason,
    too_blank,
    too_long,
)
from tuiexport.catalog.records import (
    Condition,
    Id,
    Language,
    ManufacturerRecord,
    Offer,
    ProductRecord,
    ProductTypeRecord,
    RefRecord,
    RowError,
    StockStatus,
    SupplierRecord,
    Text,
)
from tuiexport.catalog.writer import CatalogWriter
from tuiexport.errors import UserError
from tuiexport.models import (
    LANGUAGES,
)

CSV_PRODUCT_COLUMNS = (
    "puid",
    "ean",
    "manufacturerSku",
    "manufacturer",
    "manufacturerShortName",
    "productType",
    "groupCode",
    "qualification",
    "condition",
    "imageUrl",
    "imageExportable",
    "weight",
    "eclass",
    "created",
    "updated",
)
CSV_OFFER_COLUMNS = (
    "supplier",
    "supplierPartner",
    "supplierSku",
    "price",
    "currency",
    "stock",
    "stockStatus",
    "offerCondition",
    "offerUpdated",
)
CSV_TEXT_FIELDS = ("name", "shortDescription", "longDescription")
CSV_COLUMNS = (
    CSV_PRODUCT_COLUMNS
    + tuple(f"{f}.{lang}" for lang in LANGUAGES for f in CSV_TEXT_FIELDS)
    + CSV_OFFER_COLUMNS
)


class _CsvRow(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    puid: Id
    ean: str | None = None
    manufacturer_sku: str | None = None
    manufacturer: str | None = None
    manufacturer_short_name: str = ""
    product_type: str | None = None
    group_code: Annotated[str, Meta(pattern=r"^[A-Z0-9]{3}$")] | None = None
    qualification: Annotated[int, Meta(ge=0, le=3)] = 0
    condition: Condition = "new"
    image_url: str | None = None
    image_exportable: bool = False
    weight: Annotated[float, Meta(ge=0)] | None = None
    eclass: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    supplier: str | None = None
    supplier_partner: bool = False
    supplier_sku: str = ""
    price: Annotated[float, Meta(ge=0)] | None = None
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "EUR"
    stock: Annotated[int, Meta(ge=0)] | None = None
    stock_status: StockStatus = "unknown"
    offer_condition: Condition = "new"
    offer_updated: datetime | None = None


_GERMAN_TIME = re.compile(r"^(\d\d)\.(\d\d)\.(\d{4})(?: (\d\d):(\d\d)(?::(\d\d))?)?$")
_TIME_COLUMNS = ("created", "updated", "offerUpdated")


def _csv_time(value: str) -> str:
    """Also accept the platform's ``dd.MM.yyyy HH:mm`` besides ISO 8601."""
    match = _GERMAN_TIME.match(value)
    if not match:
        return value
    d, mo, y, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h or '00'}:{mi or '00'}:{s or '00'}"


class _CsvProducts:
    """Turns CSV rows (one per offer, adjacent rows per product) into product records."""

    def __init__(self, writer: CatalogWriter):
        self.writer = writer
        self.by_name: dict[str, dict[str, int]] = {
            "manufacturer": {n: i for i, n in writer.manufacturers.items()},
            "productType": {n: i for i, n in writer.types.items()},
            "supplier": {n: i for i, n in writer.suppliers.items()},
        }
        self.current: ProductRecord | None = None
        self.current_line = 0
        #: Suppliers of the current product's offers (two offers of one supplier are an error).
        self.suppliers: set[int] = set()
        #: (puid text, line) of a product whose first row was bad: its other rows go too.
        self.failed: tuple[str, int] | None = None

    def _ref(self, kind: str, name: str, make: Callable[[int], RefRecord]) -> int:
        known = self.by_name[kind]
        if name in known:
            return known[name]
        pool = {
            "manufacturer": self.writer.manufacturers,
            "productType": self.writer.types,
            "supplier": self.writer.suppliers,
        }[kind]
        new_id = max(pool, default=0) + 1
        self.writer.add(make(new_id))
        known[name] = new_id
        return new_id

    def row(self, line: int, values: dict[str, str]) -> None:
        puid = values.get("puid", "").strip()
        if self.failed is not None and self.failed[0] == puid:
            raise RowError(
                f"puid {puid}: skipped because its first row (line {self.failed[1]}) was bad"
            )
        self.failed = None
        continuing = self.current is not None and str(self.current.puid) == puid
        try:
            self._row(line, values)
        except RowError:
            if not continuing:
                self.failed = (puid, line)
            raise

    def _row(self, line: int, values: dict[str, str]) -> None:
        texts: dict[str, Text] = {}
        fields: dict[str, str] = {}
        for key, value in values.items():
            if value == "":
                continue
            if "." in key:
                field, lang = key.split(".", 1)
                text = texts.setdefault(lang, Text())
                setattr(
                    text,
                    {
                        "name": "name",
                        "shortDescription": "short_description",
                        "longDescription": "long_description",
                    }[field],
                    value,
                )
            else:
                fields[key] = _csv_time(value) if key in _TIME_COLUMNS else value
        try:
            row = msgspec.convert(fields, _CsvRow, strict=False)
        except msgspec.ValidationError as exc:
            raise RowError(reason(exc)) from None
        if self.current is not None and self.current.puid == row.puid:
            product = self.current
        else:
            self.finish()
            product = self._product(row, texts)
        if row.supplier:
            if len(product.offers) >= MAX_OFFERS:
                raise RowError(f"puid {row.puid}: more than {MAX_OFFERS:,} offers")
            supplier = row.supplier
            supplier_id = self._ref(
                "supplier",
                supplier,
                lambda i: SupplierRecord(id=i, name=supplier, partner=row.supplier_partner),
            )
            seen = self.suppliers if product is self.current else set()
            if supplier_id in seen:
                raise RowError(
                    f"supplier: '{clip(row.supplier)}' has two offers for puid {row.puid}"
                )
            product.offers.append(
                Offer(
                    supplier_id=supplier_id,
                    supplier_sku=row.supplier_sku,
                    price=row.price,
                    currency=row.currency,
                    stock=row.stock,
                    stock_status=row.stock_status,
                    condition=row.offer_condition,
                    updated=row.offer_updated,
                )
            )
        if product is not self.current:
            self.current, self.current_line = product, line
            self.suppliers = set()
        if row.supplier:
            self.suppliers.add(product.offers[-1].supplier_id)

    def _product(self, row: _CsvRow, texts: dict[str, Text]) -> ProductRecord:
        manufacturer_id = type_id = None
        # Check first what can fail, so a bad row creates no manufacturer or product type.
        self.writer.check_product(ProductRecord(puid=row.puid, ean=row.ean))
        new_type = row.product_type and row.product_type not in self.by_name["productType"]
        if new_type and not row.group_code:
            raise RowError(
                f"groupCode: the new product type '{row.product_type}' needs a group code"
            )
        if row.manufacturer:
            manufacturer = row.manufacturer
            manufacturer_id = self._ref(
                "manufacturer",
                manufacturer,
                lambda i: ManufacturerRecord(
                    id=i, name=manufacturer, short_name=row.manufacturer_short_name
                ),
            )
        if row.product_type:
            product_type = row.product_type
            group_code = row.group_code or ""  # a new type without one was refused above
            type_id = self._ref(
                "productType",
                product_type,
                lambda i: ProductTypeRecord(id=i, name=product_type, group_code=group_code),
            )
        product = ProductRecord(
            puid=row.puid,
            ean=row.ean,
            manufacturer_sku=row.manufacturer_sku,
            manufacturer_id=manufacturer_id,
            product_type_id=type_id,
            qualification=row.qualification,
            condition=row.condition,
            image_url=row.image_url,
            image_exportable=row.image_exportable,
            weight=row.weight,
            eclass=row.eclass,
            created=row.created,
            updated=row.updated,
            # The header's language columns are checked against CSV_COLUMNS (LANGUAGES).
            texts=cast("dict[Language, Text]", texts),
            offers=[],
        )
        self.writer.check_product(product)
        return product

    def finish(self) -> None:
        """Hand the product collected so far to the writer."""
        if self.current is None:
            return
        product, self.current = self.current, None
        try:
            self.writer.add(product)
        except RowError as exc:
            self.writer.error(self.current_line, str(exc))


def _utf8(values: list[str]) -> bool:
    """False when the row held bytes that are not UTF-8 (decoded as lone surrogates)."""
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _RunOn(Exception):
    """The CSV row being read grew past MAX_LINE: a quote was opened and never closed."""


class _CsvLines:
    """The physical lines csv.reader parses: numbered, bounded, and kept per row, so that a row
    swallowed by a stray quote can be skipped and the lines after the quote read again."""

    def __init__(self, text: io.TextIOBase, name: str):
        self.text, self.name = text, name
        self.number = 0  # lines read from the file so far
        self.eof = False
        self.again: deque[tuple[int, str]] = deque()
        #: The lines of the row being parsed, with their numbers.
        self.row: list[tuple[int, str]] = []
        self.size = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self.again:
            number, line = self.again.popleft()
        else:
            line = self.text.readline(MAX_LINE + 1)
            if not line:
                self.eof = True
                raise StopIteration
            self.number += 1
            number = self.number
            if len(line) > MAX_LINE and not line.endswith(("\n", "\r")):
                raise too_long(self.name, number)
        self.row.append((number, line))
        self.size += len(line)
        if self.size > MAX_LINE:
            raise _RunOn
        return line

    def next_row(self) -> None:
        self.row, self.size = [], 0


def _opened_quote(lines: list[tuple[int, str]]) -> tuple[int, bool]:
    """The line where the quoted field that crosses a line break opened, and whether a quote is
    still open at the end of ``lines`` (the csv module's rules, run for a row that went wrong)."""
    quoted = False
    opened = lines[0][0]
    crossing = 0
    for number, line in lines:
        i = 0
        while (j := line.find('"', i)) >= 0:
            if quoted:
                if line.startswith('"', j + 1):  # a doubled quote inside the field
                    i = j + 2
                    continue
                quoted = False
            elif j == 0 or line[j - 1] == ",":  # a quote opens a field only at its start
                quoted, opened = True, number
            i = j + 1
        if quoted and not crossing:
            crossing = opened
    return crossing or opened, quoted


def _holds_rows(row: list[tuple[int, str]], width: int, puid: int) -> bool:
    """Whether a line inside a quoted text reads as a row of its own (the header's number of
    fields, a number as puid): then a stray quote swallowed it, not a long description. With
    fewer than four columns a text line like "12, Stück" would look like a row: not checked."""
    if width < 4:
        return False
    for _, line in row[1:]:
        if line.count(",") + 1 < width:
            continue
        fields = next(csv.reader([line]), [])
        if len(fields) == width and fields[puid].strip().isdigit():
            return True
    return False


def _breaks_outside(values: list[str], multiline: set[int]) -> bool:
    """Whether a field that cannot hold text has a line break (so a stray quote made it)."""
    return any("\n" in v or "\r" in v for i, v in enumerate(values) if i not in multiline)


def read_csv(stream: io.BufferedIOBase, writer: CatalogWriter, name: str) -> None:
    # Bytes that are not UTF-8 make their row bad, not the whole file.
    # (typeshed wants a "buffer" protocol that BufferedIOBase meets at run time but not in stubs)
    buffer = cast("io.BufferedReader[Any]", stream)
    text = io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if csv.field_size_limit() < MAX_LINE:  # our own bound (a row of MAX_LINE) comes first
        csv.field_size_limit(MAX_LINE + 1)
    lines = _CsvLines(text, name)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        while header == [] and lines.number <= MAX_BLANK_RUN:  # blank lines before the header
            lines.next_row()
            header = next(reader, None)
    except _RunOn:
        raise UserError(
            f"The header of {name} runs over {MAX_LINE >> 20} MiB (an unclosed quote?); "
            "fix it and import again."
        ) from None
    if not header:
        return
    if len(lines.row) > 1:
        raise UserError(
            f"The header of {name} has an unclosed quote (a column name runs over several "
            "lines); fix it and import again."
        )
    if not _utf8(header):
        raise UserError(f"{name} is not UTF-8 text; save it as UTF-8 CSV and import again.")
    header = [h.strip() for h in header]
    unknown = [clip(h, 40) for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise UserError(
            f"{name} has unknown CSV columns ({', '.join(unknown[:5])}); "
            "the column names are listed in the docs (docs/guide/catalog.md, CSV schema)."
        )
    if "puid" not in header:
        raise UserError(f"{name} has no 'puid' column; every CSV row needs one.")
    # Columns that may hold line breaks (quoted texts); a break anywhere else is a stray quote.
    multiline = {i for i, h in enumerate(header) if "." in h}
    puid = header.index("puid")
    products = _CsvProducts(writer)
    blanks = strays = 0
    first_stray = 0

    def stray(row: list[tuple[int, str]], why: str) -> None:
        """Skip the row that a stray quote swallowed; read the lines after the quote again."""
        nonlocal strays, first_stray
        opened, still_open = _opened_quote(row)
        strays += 1
        first_stray = first_stray or opened
        if strays > MAX_STRAY_QUOTES:
            raise UserError(
                f"{name} has more than {MAX_STRAY_QUOTES} unclosed quotes (the first on line "
                f"{first_stray:,}); fix the quoting and import again (the rows before were "
                "imported)."
            )
        end = row[-1][0]
        if still_open and lines.eof:
            where = "runs to the end of the file"
        elif why:
            where = why
        else:
            where = f"runs over {end - opened + 1:,} lines (to line {end:,})"
        writer.error(
            opened,
            f"a quoted field opened on this line is not closed: it {where}; the row is skipped "
            "and the lines after it are read again",
        )
        lines.again.extendleft(reversed([item for item in row if item[0] > opened]))

    try:
        while True:
            lines.next_row()
            try:
                values = next(reader)
            except StopIteration:
                break
            except _RunOn:
                stray(lines.row, f"runs over {MAX_LINE >> 20} MiB")
                continue
            row = lines.row
            start, end = row[0][0], row[-1][0]
            writer.grow(lines.size)
            if not values or values == [""]:
                blanks += 1
                if blanks > MAX_BLANK_RUN:
                    raise too_blank(name, start - blanks + 1)
                continue
            blanks = 0
            if end > start and (
                len(values) != len(header)
                or _breaks_outside(values, multiline)
                or (lines.eof and _opened_quote(row)[1])
                or _holds_rows(row, len(header), puid)
            ):
                stray(row, "")
                continue
            if len(values) != len(header):
                writer.error(start, f"{len(values)} fields where the header has {len(header)}")
                continue
            if not _utf8(values):
                writer.error(start, "not UTF-8 text (save the file as UTF-8)")
                continue
            try:
                products.row(start, dict(zip(header, values, strict=True)))
            except RowError as exc:
                writer.error(start, str(exc))
    except csv.Error as exc:
        raise UserError(
            f"{name} cannot be read as CSV after line {lines.number:,} ({exc}); "
            "the rows before it were imported."
        ) from None
    finally:
        products.finish()


# --- entry points --------------------------------------------------------------------------
