"""What the catalog holds, in numbers.

The per-product offer figures need one pass over the supplier items (about 1.5 s at 2.5 million
offers), so the result is kept in the meta table under the catalog version: every change to the
catalog bumps that version (``schema.bump_catalog_version``), which makes the kept figures stale.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import msgspec
import peewee

from tuiexport import db as dbmod
from tuiexport import schema


class CatalogStats(msgspec.Struct, kw_only=True):
    products: int
    supplier_items: int
    manufacturers: int
    product_types: int
    suppliers: int
    partners: int
    #: Products with at least one offer that has a price / stock > 0.
    products_with_price: int
    products_in_stock: int
    #: Products with an image URL that may be exported.
    products_with_exportable_image: int
    #: The newest product update time (UTC), None for an empty catalog.
    last_update: datetime | None
    catalog_version: int


_CACHE_KEY = "catalog_stats"


def _compute(version: int) -> CatalogStats:
    db = dbmod.database.obj

    def one(sql: str) -> tuple[Any, ...]:
        row: tuple[Any, ...] = db.execute_sql(sql).fetchone()
        return row

    products, exportable = one(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN image_exportable AND image_url IS NOT NULL "
        "THEN 1 ELSE 0 END), 0) FROM product"
    )
    (last_update,) = one("SELECT MAX(updated) FROM product")
    items, with_price, in_stock = one(
        "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(priced), 0), COALESCE(SUM(stocked), 0) FROM ("
        " SELECT COUNT(*) AS n,"
        " MAX(CASE WHEN price IS NOT NULL THEN 1 ELSE 0 END) AS priced,"
        " MAX(CASE WHEN stock > 0 THEN 1 ELSE 0 END) AS stocked"
        " FROM supplier_item GROUP BY product_id) AS per_product"
    )
    (manufacturers,) = one("SELECT COUNT(*) FROM manufacturer")
    (types,) = one("SELECT COUNT(*) FROM product_type")
    suppliers, partners = one(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN partner THEN 1 ELSE 0 END), 0) FROM supplier"
    )
    if isinstance(last_update, str):
        last_update = datetime.fromisoformat(last_update)
    return CatalogStats(
        products=products,
        supplier_items=int(items),
        manufacturers=manufacturers,
        product_types=types,
        suppliers=suppliers,
        partners=int(partners),
        products_with_price=int(with_price),
        products_in_stock=int(in_stock),
        products_with_exportable_image=int(exportable),
        last_update=last_update,
        catalog_version=version,
    )


def catalog_stats() -> CatalogStats:
    version = schema.catalog_version()
    kept = schema.get_meta(_CACHE_KEY)
    if kept:
        try:
            stats = msgspec.json.decode(kept, type=CatalogStats)
        except msgspec.DecodeError:  # written by another version: compute again
            stats = None
        if stats is not None and stats.catalog_version == version:
            return stats
    stats = _compute(version)
    with contextlib.suppress(peewee.DatabaseError):  # a read-only database still gets its figures
        schema.set_meta(_CACHE_KEY, msgspec.json.encode(stats).decode())
    return stats
