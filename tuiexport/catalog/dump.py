"""The catalog as JSON Lines in the import schema (``export_jsonl``): what ``catalog import``
reads back into the same catalog."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tuiexport.catalog.records import (
    Language,
    ManufacturerRecord,
    Offer,
    ProductRecord,
    ProductTypeRecord,
    Record,
    SupplierRecord,
    Text,
)
from tuiexport.catalog.writer import PRODUCT_COLUMNS
from tuiexport.models import (
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
    tuples,
)

_encoder = msgspec.json.Encoder()
#: msgspec leaves a default out only when the value is the default object itself (identity):
#: the enum-like texts from the database are interned, so that the dump writes no explicit
#: defaults and the import's duplicate-key check (jsonl_reader.same_keys) stays on its fast path.


def _interned(value: Any) -> Any:
    return sys.intern(value)


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
                    currency=_interned(cur),
                    stock=stock,
                    stock_status=_interned(status),
                    condition=_interned(cond),
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
                condition=_interned(cond),
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
