"""Catalog import (JSON Lines or CSV) and the matching JSON Lines export.

The file format is documented in docs/guide/catalog.md ("JSON Lines schema", "CSV schema");
the Structs below are its definition.
Every row is decoded and checked on its own: a bad row is reported with its line number and a
one-line reason and skipped, good rows are kept. Products are upserted by puid (a re-imported
product's texts and offers are replaced, not added to), reference rows (suppliers,
manufacturers, product types) by id. Writes happen in chunks of :data:`CHUNK` rows, one
transaction each, so exports reading the same SQLite file are never blocked for long.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import msgspec
import peewee as pw
from msgspec import Meta

from tuiexport import db as dbmod
from tuiexport import schema
from tuiexport.errors import UserError
from tuiexport.models import (
    LANGUAGES,
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
    tuples,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Rows per transaction.
CHUNK = 2_000
#: The columns the bulk writers (import and demo) fill, in their row tuples' order.
PRODUCT_COLUMNS = (
    "puid, ean, manufacturer_sku, manufacturer_id, product_type_id, qualification, "
    "condition, image_url, image_exportable, weight, eclass, created, updated"
)
TEXT_COLUMNS = "product_id, lang, name, short_description, long_description"
OFFER_COLUMNS = "product_id, supplier_id, supplier_sku, price, currency, stock, stock_status, condition, updated"
#: The report lists at most this many bad rows (``skipped`` counts them all).
MAX_REPORTED_ERRORS = 1_000

# Bounds, so that no file can make an import grow until memory runs out or run for hours.
#: The longest line of JSON Lines, and the longest CSV row (all its physical lines), in bytes
#: (CSV: characters). A real product row with six languages of long descriptions and a hundred
#: offers is well under 1 MiB; 4 MiB leaves room and still keeps memory flat.
MAX_LINE = 4 << 20
#: More blank lines than this in a row is not a catalog (a gzip of newlines inflates to billions).
MAX_BLANK_RUN = 1_000_000
#: A gzip file may inflate to this many times its own size (real catalogs: 5-20x; a gzip bomb:
#: 1,000x), but always to at least MIN_INFLATE bytes. Apache POI uses the same 100x ratio for ZIP.
MAX_INFLATE_RATIO = 100
MIN_INFLATE = 64 << 20
#: Rows queued before they are written: CHUNK rows or about this many bytes of input.
CHUNK_BYTES = 32 << 20
#: Offers (CSV rows) of one product; a real product has at most a few hundred suppliers.
MAX_OFFERS = 10_000
#: Unclosed CSV quotes repaired (row skipped, the lines after it read again) before giving up.
MAX_STRAY_QUOTES = 100

Condition = Literal["new", "used", "refurbished"]
StockStatus = Literal["in_stock", "low_stock", "out_of_stock", "on_order", "unknown"]
Language = Literal["de", "en", "fr", "it", "nl", "es"]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Name = Annotated[str, Meta(min_length=1)]


class _Record(
    msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True, tag_field="kind"
):
    pass


class SupplierRecord(_Record, tag="supplier"):
    id: Id
    name: Name
    partner: bool = False


class ManufacturerRecord(_Record, tag="manufacturer"):
    id: Id
    name: Name
    short_name: str = ""


class ProductTypeRecord(_Record, tag="productType"):
    id: Id
    name: Name
    group_code: Annotated[str, Meta(pattern=r"^[A-Z0-9]{3}$")]


class Text(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    name: str = ""
    short_description: str = ""
    long_description: str = ""


class Offer(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    supplier_id: Id
    supplier_sku: str = ""
    price: Annotated[float, Meta(ge=0)] | None = None
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "EUR"
    stock: Annotated[int, Meta(ge=0)] | None = None
    stock_status: StockStatus = "unknown"
    condition: Condition = "new"
    updated: datetime | None = None


class ProductRecord(_Record, tag="product"):
    puid: Id
    ean: str | None = None
    manufacturer_sku: str | None = None
    manufacturer_id: Id | None = None
    product_type_id: Id | None = None
    qualification: Annotated[int, Meta(ge=0, le=3)] = 0
    condition: Condition = "new"
    image_url: str | None = None
    image_exportable: bool = False
    weight: Annotated[float, Meta(ge=0)] | None = None
    eclass: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    texts: dict[Language, Text] = {}
    offers: list[Offer] = []


Record = SupplierRecord | ManufacturerRecord | ProductTypeRecord | ProductRecord
_RefRecord = SupplierRecord | ManufacturerRecord | ProductTypeRecord


class ImportReport(msgspec.Struct, kw_only=True):
    #: Products that were new / already there (by puid).
    added: int = 0
    updated: int = 0
    #: Bad rows, all of them; ``errors`` lists the first MAX_REPORTED_ERRORS.
    skipped: int = 0
    #: Supplier, manufacturer and product-type rows written (inserted or updated).
    references: int = 0
    errors: list[tuple[int, str]] = []


class RowError(Exception):
    """A row that cannot be imported; the message is its one-line reason."""


def _clip(text: str, width: int = 60) -> str:
    """A value from the file, short and on one line, for a one-line message."""
    text = " ".join(text[: width * 4].split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- checks ------------------------------------------------------------------------------


def gtin_valid(code: str) -> bool:
    """EAN-8, UPC-A (12), EAN-13 or GTIN-14 with a correct check digit."""
    if not code.isdigit() or len(code) not in (8, 12, 13, 14) or not code.isascii():
        return False
    digits = [int(d) for d in code]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


_PATH = re.compile(r"^(.*) - at (`key` in )?`\$\.?(.*)`$")


def _reason(exc: msgspec.MsgspecError) -> str:
    """msgspec's message as one line: ``field: what is wrong``."""
    text = str(exc).replace("\n", " ")
    match = _PATH.match(text)
    if match:
        message, key, path = match.groups()
        if key:
            message += " (as a key)"
        return f"{path}: {message}" if path else message
    return text


def insert_sql(model: type[pw.Model], columns: str, mark: str) -> str:
    """``INSERT INTO table (columns) VALUES (marks)`` for raw ``executemany``.

    Columns of the model that are not listed get their constant default as a literal, so a
    column added to the model later (with a default) does not break the bulk writers.
    """
    names = [c.strip() for c in columns.split(",")]
    values = [mark] * len(names)
    for field in model._meta.sorted_fields:
        if field.column_name in names or isinstance(field, pw.AutoField):
            continue
        default = field.default
        if default is None or callable(default):
            continue
        if isinstance(default, bool):
            literal = "TRUE" if default else "FALSE"
        elif isinstance(default, (int, float)):
            literal = repr(default)
        else:
            literal = "'" + str(default).replace("'", "''") + "'"
        names.append(field.column_name)
        values.append(literal)
    table = model._meta.table_name
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(values)})"


def search_text(names: Iterable[str], sku: str | None, ean: str | None) -> str:
    """What the full-text index holds for a product: its names in every language, SKU, EAN."""
    return " ".join(part for part in (*names, sku, ean) if part)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


# --- the writer --------------------------------------------------------------------------


class _Writer:
    """Checks decoded records against the catalog and writes them in chunks."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.db = dbmod.database.obj
        self.sqlite = dbmod.is_sqlite(self.db)
        self.mark = "?" if self.sqlite else "%s"
        self.suppliers = {i: n for i, n in tuples(Supplier.select(Supplier.id, Supplier.name))}
        self.manufacturers = {
            i: n for i, n in tuples(Manufacturer.select(Manufacturer.id, Manufacturer.name))
        }
        self.types = {i: n for i, n in tuples(ProductType.select(ProductType.id, ProductType.name))}
        self.refs: list[_RefRecord] = []
        self.products: dict[int, ProductRecord] = {}
        self.replaced = 0
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.changed = False
        #: Bytes of input behind the queued rows (see CHUNK_BYTES).
        self.pending_bytes = 0

    def grow(self, size: int) -> None:
        """Note that ``size`` more bytes of input were read for the queued rows."""
        self.pending_bytes += size

    def error(self, line: int, reason: str) -> None:
        self.report.skipped += 1
        if len(self.report.errors) < MAX_REPORTED_ERRORS:
            self.report.errors.append((line, reason))

    def add(self, record: Record) -> None:
        """Check one decoded record (raises RowError) and queue it."""
        if isinstance(record, ProductRecord):
            self.check_product(record)
            if record.puid in self.products:
                self.replaced += 1
            self.products[record.puid] = record
        else:
            # A reference row is usable by the rows after it, even before it is written.
            if isinstance(record, SupplierRecord):
                self.suppliers[record.id] = record.name
            elif isinstance(record, ManufacturerRecord):
                self.manufacturers[record.id] = record.name
            else:
                self.types[record.id] = record.name
            self.refs.append(record)
        if len(self.products) + len(self.refs) >= CHUNK or self.pending_bytes >= CHUNK_BYTES:
            self.flush()

    def check_product(self, p: ProductRecord) -> None:
        if p.ean is not None:
            p.ean = p.ean.strip() or None
        if p.ean is not None and not gtin_valid(p.ean):
            raise RowError(
                f"ean: '{_clip(p.ean)}' is not a valid EAN/GTIN "
                "(8, 12, 13 or 14 digits with check digit)"
            )
        if p.manufacturer_id is not None and p.manufacturer_id not in self.manufacturers:
            raise RowError(f"manufacturerId: unknown manufacturer {p.manufacturer_id}")
        if p.product_type_id is not None and p.product_type_id not in self.types:
            raise RowError(f"productTypeId: unknown product type {p.product_type_id}")
        seen: set[int] = set()
        for i, offer in enumerate(p.offers):
            if offer.supplier_id not in self.suppliers:
                raise RowError(f"offers[{i}].supplierId: unknown supplier {offer.supplier_id}")
            if offer.supplier_id in seen:
                raise RowError(
                    f"offers[{i}].supplierId: supplier {offer.supplier_id} has two offers"
                )
            seen.add(offer.supplier_id)

    def _time(self, value: datetime | None) -> str | datetime:
        if value is None:
            value = self.now
        elif value.tzinfo is not None or value.microsecond:
            value = _utc(value)
        assert value is not None
        return value.isoformat(" ") if self.sqlite else value

    def flush(self) -> None:
        if not self.refs and not self.products:
            return
        m = self.mark
        # Raw cursors raise the driver's errors; the wrapper turns them into peewee's.
        with pw.__exception_wrapper__, self.db.atomic():  # type: ignore[attr-defined]  # not in peewee's stubs
            cursor = self.db.cursor()
            for record in self.refs:
                values: tuple[object, ...]
                if isinstance(record, SupplierRecord):
                    table, cols, values = (
                        "supplier",
                        ("name", "partner"),
                        (record.name, record.partner),
                    )
                elif isinstance(record, ManufacturerRecord):
                    table, cols, values = (
                        "manufacturer",
                        ("name", "short_name"),
                        (record.name, record.short_name),
                    )
                else:
                    table, cols, values = (
                        "product_type",
                        ("name", "group_code"),
                        (record.name, record.group_code),
                    )
                cursor.execute(
                    f"INSERT INTO {table} (id, {', '.join(cols)}) VALUES ({m}, {m}, {m}) "
                    f"ON CONFLICT (id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in cols),
                    (record.id, *values),
                )
            self.report.references += len(self.refs)
            if self.products:
                self._write_products(cursor)
        self.changed = True
        self.refs = []
        self.products = {}
        self.replaced = 0
        self.pending_bytes = 0

    def _write_products(self, cursor: Any) -> None:
        m = self.mark
        puids = list(self.products)
        marks = ", ".join([m] * len(puids))
        cursor.execute(f"SELECT puid FROM product WHERE puid IN ({marks})", puids)
        existing = {row[0] for row in cursor.fetchall()}
        self.report.updated += len(existing) + self.replaced
        self.report.added += len(puids) - len(existing)

        columns = PRODUCT_COLUMNS
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:-2])
        product_sql = (
            insert_sql(Product, columns, m) + " "
            f"ON CONFLICT (puid) DO UPDATE SET {updates}, "
            f"created = COALESCE({m}, product.created), updated = excluded.updated"
        )
        rows, texts, offers, search = [], [], [], []
        for p in self.products.values():
            created = self._time(p.created) if p.created else None
            rows.append(
                (
                    p.puid,
                    p.ean,
                    p.manufacturer_sku,
                    p.manufacturer_id,
                    p.product_type_id,
                    p.qualification,
                    p.condition,
                    p.image_url,
                    # "may export its image" only means something when there is an image.
                    p.image_exportable and bool(p.image_url),
                    p.weight,
                    p.eclass,
                    created or self._time(None),
                    self._time(p.updated),
                    created,
                )
            )
            for lang, t in p.texts.items():
                texts.append((p.puid, lang, t.name, t.short_description, t.long_description))
            for o in p.offers:
                offers.append(
                    (
                        p.puid,
                        o.supplier_id,
                        o.supplier_sku,
                        o.price,
                        o.currency,
                        o.stock,
                        o.stock_status,
                        o.condition,
                        self._time(o.updated),
                    )
                )
            search.append(
                (p.puid, search_text((t.name for t in p.texts.values()), p.manufacturer_sku, p.ean))
            )
        cursor.executemany(product_sql, rows)
        # Texts, offers and index entries of products already there are replaced, not merged.
        replaced = [puid for puid in puids if puid in existing]
        old_marks = ", ".join([m] * len(replaced))
        if replaced:
            cursor.execute(f"DELETE FROM product_text WHERE product_id IN ({old_marks})", replaced)
            cursor.execute(f"DELETE FROM supplier_item WHERE product_id IN ({old_marks})", replaced)
        cursor.executemany(insert_sql(ProductText, TEXT_COLUMNS, m), texts)
        cursor.executemany(insert_sql(SupplierItem, OFFER_COLUMNS, m), offers)
        if self.sqlite:
            # Every puid, not just the replaced ones: no stray index row may block the insert.
            cursor.execute(f"DELETE FROM {schema.FTS_TABLE} WHERE rowid IN ({marks})", puids)
            cursor.executemany(
                f"INSERT INTO {schema.FTS_TABLE} (rowid, text) VALUES (?, ?)", search
            )


# --- readers -----------------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder(Record)


def _too_long(name: str, number: int) -> UserError:
    return UserError(
        f"Line {number:,} of {name} is longer than {MAX_LINE >> 20} MiB, more than any catalog "
        "row (is it the right file, one record per line?); the rows before it were imported."
    )


def _too_blank(name: str, number: int) -> UserError:
    return UserError(
        f"{name} has more than {MAX_BLANK_RUN:,} blank lines in a row from line {number:,} "
        "(is it the right file?); the rows before them were imported."
    )


def _read_jsonl(stream: io.BufferedIOBase, writer: _Writer, name: str) -> None:
    number = blanks = 0
    while line := stream.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise _too_long(name, number)
        writer.grow(len(line))
        line = line.strip()
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark
            line = line[3:]
        if not line:
            blanks += 1
            if blanks > MAX_BLANK_RUN:
                raise _too_blank(name, number - blanks + 1)
            continue
        blanks = 0
        try:
            writer.add(_json_decoder.decode(line))
        except msgspec.ValidationError as exc:
            writer.error(number, _reason(exc))
        except msgspec.DecodeError as exc:
            writer.error(number, f"not valid JSON ({exc})")
        except RowError as exc:
            writer.error(number, str(exc))


#: CSV columns besides the per-language text columns ``name.de``, ``shortDescription.de``, ….
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

    def __init__(self, writer: _Writer):
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

    def _ref(self, kind: str, name: str, make: Callable[[int], _RefRecord]) -> int:
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
            raise RowError(_reason(exc)) from None
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
                    f"supplier: '{_clip(row.supplier)}' has two offers for puid {row.puid}"
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
                raise _too_long(self.name, number)
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


def _read_csv(stream: io.BufferedIOBase, writer: _Writer, name: str) -> None:
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
    unknown = [_clip(h, 40) for h in header if h not in CSV_COLUMNS]
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
                    raise _too_blank(name, start - blanks + 1)
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
    raise UserError(
        f"Cannot tell the format of {path.name}: name it .jsonl, .jsonl.gz, .csv or .csv.gz."
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
    writer = _Writer(report)
    try:
        total = os.fstat(raw.fileno()).st_size
        counted = io.BufferedReader(_Counting(raw, total, progress), 1 << 16)
        stream: io.BufferedIOBase = counted
        if gz:
            inflated = gzip.GzipFile(fileobj=counted, mode="rb")
            limit = max(MIN_INFLATE, MAX_INFLATE_RATIO * total)
            stream = io.BufferedReader(_Inflated(inflated, limit, path.name), 1 << 16)
        try:
            if kind == "jsonl":
                _read_jsonl(stream, writer, path.name)
            else:
                _read_csv(stream, writer, path.name)
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
    finally:
        raw.close()
        if writer.changed:
            schema.bump_catalog_version()
    return report


# --- export in the import schema -----------------------------------------------------------

_encoder = msgspec.json.Encoder()


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


_PRODUCT_FIELDS = [
    c.removesuffix("_id") if c in ("manufacturer_id", "product_type_id") else c
    for c in PRODUCT_COLUMNS.split(", ")
]


def iter_catalog_records(chunk: int = 1_000) -> Iterator[Record]:
    """The whole catalog as import records: suppliers, manufacturers, types, then products by puid."""
    from tuiexport.models import Product, ProductText, SupplierItem

    for id_, name, partner in tuples(
        Supplier.select(Supplier.id, Supplier.name, Supplier.partner).order_by(Supplier.id)
    ):
        yield SupplierRecord(id=id_, name=name, partner=bool(partner))
    for id_, name, short in tuples(
        Manufacturer.select(Manufacturer.id, Manufacturer.name, Manufacturer.short_name).order_by(
            Manufacturer.id
        )
    ):
        yield ManufacturerRecord(id=id_, name=name, short_name=short)
    for id_, name, code in tuples(
        ProductType.select(ProductType.id, ProductType.name, ProductType.group_code).order_by(
            ProductType.id
        )
    ):
        yield ProductTypeRecord(id=id_, name=name, group_code=code)
    after = -1
    while True:
        rows = list(
            tuples(
                Product.select(*(getattr(Product, c) for c in _PRODUCT_FIELDS))
                .where(Product.puid > after)
                .order_by(Product.puid)
                .limit(chunk)
            )
        )
        if not rows:
            return
        after = rows[-1][0]
        puids = [r[0] for r in rows]
        texts: dict[int, dict[Language, Text]] = {}
        for pid, lang, name, short, long in tuples(
            ProductText.select(
                ProductText.product,
                ProductText.lang,
                ProductText.name,
                ProductText.short_description,
                ProductText.long_description,
            )
            .where(ProductText.product.in_(puids))
            .order_by(ProductText.product, ProductText.lang)
        ):
            texts.setdefault(pid, {})[lang] = Text(
                name=name, short_description=short, long_description=long
            )
        offers: dict[int, list[Offer]] = {}
        for pid, sid, sku, price, cur, stock, status, cond, upd in tuples(
            SupplierItem.select(
                SupplierItem.product,
                SupplierItem.supplier,
                SupplierItem.supplier_sku,
                SupplierItem.price,
                SupplierItem.currency,
                SupplierItem.stock,
                SupplierItem.stock_status,
                SupplierItem.condition,
                SupplierItem.updated,
            )
            .where(SupplierItem.product.in_(puids))
            .order_by(SupplierItem.product, SupplierItem.supplier)
        ):
            offers.setdefault(pid, []).append(
                Offer(
                    supplier_id=sid,
                    supplier_sku=sku,
                    price=price,
                    currency=cur,
                    stock=stock,
                    stock_status=status,
                    condition=cond,
                    updated=_aware(upd),
                )
            )
        for (
            puid,
            ean,
            sku,
            mfr,
            ptype,
            qual,
            cond,
            img,
            img_ok,
            weight,
            eclass,
            created,
            updated,
        ) in rows:
            yield ProductRecord(
                puid=puid,
                ean=ean,
                manufacturer_sku=sku,
                manufacturer_id=mfr,
                product_type_id=ptype,
                qualification=qual,
                condition=cond,
                image_url=img,
                image_exportable=bool(img_ok),
                weight=weight,
                eclass=eclass,
                created=_aware(created),
                updated=_aware(updated),
                texts=texts.get(puid, {}),
                offers=offers.get(puid, []),
            )


def export_jsonl(path: str | os.PathLike[str], records: Iterable[Record] | None = None) -> int:
    """Write the catalog (or ``records``) as JSON Lines in the import schema; ``.gz`` compresses.

    The gzip header carries no file name or time, so the same catalog gives the same bytes.
    Returns the number of records written.
    """
    path = Path(path)
    count = 0
    with open(path, "wb") as raw:
        out = (
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0)
            if path.name.endswith(".gz")
            else raw
        )
        try:
            for record in records if records is not None else iter_catalog_records():
                out.write(_encoder.encode(record) + b"\n")
                count += 1
        finally:
            if out is not raw:
                out.close()
    return count
