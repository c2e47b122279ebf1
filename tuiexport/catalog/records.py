"""The catalog file format's records: what one line of JSON Lines (or one product's CSV rows)
decodes to, and the report of an import.

The file format is documented in docs/guide/catalog.md ("JSON Lines schema", "CSV schema"); the
Structs below are its definition. The checks msgspec cannot express (a valid GTIN, references to
rows that exist) are the bulk writer's (:mod:`tuiexport.catalog.writer`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

#: The report lists at most this many bad rows (``skipped`` counts them all).
MAX_REPORTED_ERRORS = 1_000

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
RefRecord = SupplierRecord | ManufacturerRecord | ProductTypeRecord


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


def gtin_valid(code: str) -> bool:
    """EAN-8, UPC-A (12), EAN-13 or GTIN-14 with a correct check digit."""
    if not code.isdigit() or len(code) not in (8, 12, 13, 14) or not code.isascii():
        return False
    digits = [int(d) for d in code]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check
