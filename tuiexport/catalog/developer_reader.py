"""The reader of the developer profile's JSON Lines: the export the catalog can be rebuilt from.

The developer profile ("everything, normalised") writes one entity per line, wrapped in its element
name: ``{"manufacturer": {...}}``, ``{"productType": {...}}``, ``{"supplier": {...}}``, then
``{"product": {..., "productText": [...], "supplierItem": [...]}}`` (see
:mod:`tuiexport.exporters.json_out`). Each line is decoded by msgspec into the Structs below and
turned into the import's own records (:mod:`~tuiexport.catalog.records`), so the writer's checks
and the error reporting are those of the catalog format.

What a developer file holds that a catalog does not keep: an offer's ``id`` (the catalog numbers
its offers itself; nothing refers to the id), checked and then dropped.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from tuiexport.catalog.jsonl_reader import duplicate_key, read_lines, same_keys
from tuiexport.catalog.records import (
    Condition,
    Id,
    Language,
    ManufacturerRecord,
    Name,
    Offer,
    ProductRecord,
    ProductTypeRecord,
    Record,
    RowError,
    StockStatus,
    SupplierRecord,
    Text,
)
from tuiexport.catalog.writer import CatalogWriter

#: The start of a developer line: ``{"element":{`` (what :func:`is_developer_jsonl` looks for).
_FIRST = re.compile(
    rb'^(?:\xef\xbb\xbf)?\s*\{\s*"(manufacturer|productType|supplier|product)"\s*:\s*\{'
)


def is_developer_jsonl(head: bytes) -> bool:
    """Whether the first bytes of a JSON Lines file are the developer profile's (the catalog
    format's records have a ``kind`` and none of these element names as a field)."""
    return _FIRST.match(head) is not None


class _Dev(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


class DevManufacturer(_Dev):
    id: Id
    name: Name
    short_name: str = ""


class DevProductType(_Dev):
    id: Id
    name: Name
    group_code: Annotated[str, Meta(pattern=r"^[A-Z0-9]{3}$")]


class DevSupplier(_Dev):
    id: Id
    name: Name
    partner: bool = False


class DevText(_Dev):
    lang: Language
    name: str = ""
    short_description: str = ""
    #: Absent when the export left long descriptions out (then none is imported).
    long_description: str | UnsetType = UNSET


class DevOffer(_Dev):
    supplier_id: Id
    #: The exporting catalog's offer id: not kept (see the module's docstring).
    id: Id | None = None
    supplier_sku: str = ""
    price: Annotated[float, Meta(ge=0)] | None = None
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "EUR"
    stock: Annotated[int, Meta(ge=0)] | None = None
    stock_status: StockStatus = "unknown"
    condition: Condition = "new"
    updated: datetime | None = None


class DevProduct(_Dev):
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
    product_text: list[DevText] = []
    supplier_item: list[DevOffer] = []


class DevLine(_Dev, omit_defaults=True):
    """One line: exactly one of the fields is set."""

    manufacturer: DevManufacturer | None = None
    product_type: DevProductType | None = None
    supplier: DevSupplier | None = None
    product: DevProduct | None = None


_decoder = msgspec.json.Decoder(DevLine)
_encoder = msgspec.json.Encoder()


def to_record(line: DevLine) -> Record:
    """The import record of a decoded developer line (raises RowError)."""
    p = line.product
    set_ = [
        name
        for name, value in (
            ("manufacturer", line.manufacturer),
            ("productType", line.product_type),
            ("supplier", line.supplier),
            ("product", p),
        )
        if value is not None
    ]
    if len(set_) != 1:
        raise RowError(
            "a developer line holds one entity (manufacturer, productType, supplier or "
            f"product), this one {len(set_) or 'none'}" + (f" ({', '.join(set_)})" if set_ else "")
        )
    if p is not None:
        texts: dict[Language, Text] = {}
        for i, t in enumerate(p.product_text):
            if t.lang in texts:
                raise RowError(f"product.productText[{i}].lang: a second text in '{t.lang}'")
            long = t.long_description
            texts[t.lang] = Text(
                name=t.name,
                short_description=t.short_description,
                long_description="" if isinstance(long, UnsetType) else long,
            )
        return ProductRecord(
            puid=p.puid,
            ean=p.ean,
            manufacturer_sku=p.manufacturer_sku,
            manufacturer_id=p.manufacturer_id,
            product_type_id=p.product_type_id,
            qualification=p.qualification,
            condition=p.condition,
            image_url=p.image_url,
            image_exportable=p.image_exportable,
            weight=p.weight,
            eclass=p.eclass,
            created=p.created,
            updated=p.updated,
            texts=texts,
            offers=[
                Offer(
                    supplier_id=o.supplier_id,
                    supplier_sku=o.supplier_sku,
                    price=o.price,
                    currency=o.currency,
                    stock=o.stock,
                    stock_status=o.stock_status,
                    condition=o.condition,
                    updated=o.updated,
                )
                for o in p.supplier_item
            ],
        )
    if line.manufacturer is not None:
        m = line.manufacturer
        return ManufacturerRecord(id=m.id, name=m.name, short_name=m.short_name)
    if line.product_type is not None:
        pt = line.product_type
        return ProductTypeRecord(id=pt.id, name=pt.name, group_code=pt.group_code)
    assert line.supplier is not None
    s = line.supplier
    return SupplierRecord(id=s.id, name=s.name, partner=s.partner)


def read_developer_jsonl(stream: io.BufferedIOBase, writer: CatalogWriter, name: str) -> None:
    read_lines(stream, writer, name, _record)


def _record(line: bytes) -> Record:
    decoded = _decoder.decode(line)
    # The exporter writes every field (DevLine leaves out the elements not there): the same key
    # count means no key twice (see jsonl_reader).
    if not same_keys(_encoder.encode(decoded), line):
        duplicate_key(line)
    return to_record(decoded)
