"""A tiny hand-made catalog whose every row a test can reason about."""

from __future__ import annotations

from datetime import datetime

from tuiexport.models import Manufacturer, Product, ProductText, ProductType, Supplier, SupplierItem
from tuiexport.schema import FTS_TABLE, bump_catalog_version

BASE = datetime(2026, 1, 1, 8, 0)


def build() -> None:
    """Suppliers 1 (partner), 2 (partner), 3; manufacturers 1..3; types 1..2; products 1001..1020.

    Product 1000+i: manufacturer (i % 3) + 1, type (i % 2) + 1, qualification i % 4, condition
    'used' when i % 5 == 0, exportable image when i is even, updated BASE + i days.
    Offers: supplier 1 for every product (price 10*i, stock i % 3), supplier 3 for i % 4 == 0
    (price 5*i, stock 7), no offer at all for i == 20. Product 1007 has no price anywhere.
    """
    Supplier.insert_many(
        [(1, "Alpha Distribution", True), (2, "Beta IT", True), (3, "Gamma Großhandel", False)],
        fields=[Supplier.id, Supplier.name, Supplier.partner],
    ).execute()
    Manufacturer.insert_many(
        [(1, "Lenovo", "LEN"), (2, "Hewlett-Packard", "HP"), (3, "Logitech", "LOG")],
        fields=[Manufacturer.id, Manufacturer.name, Manufacturer.short_name],
    ).execute()
    ProductType.insert_many(
        [(1, "Notebooks", "NBK"), (2, "Mäuse", "MOU")],
        fields=[ProductType.id, ProductType.name, ProductType.group_code],
    ).execute()
    from tuiexport.db import database

    for i in range(1, 21):
        puid = 1000 + i
        updated = BASE.replace(day=min(i, 28))
        Product.create(
            puid=puid,
            ean=f"40000000{i:05d}",
            manufacturer_sku=f"SKU-{i}",
            manufacturer=(i % 3) + 1,
            product_type=(i % 2) + 1,
            qualification=i % 4,
            condition="used" if i % 5 == 0 else "new",
            image_url=f"https://img.example.com/{puid}.jpg",
            image_exportable=i % 2 == 0,
            weight=0.1 * i,
            eclass="19010203",
            created=BASE,
            updated=updated,
        )
        name_de = f'ThinkPad {i}, "Büro" Modell' if i % 3 == 1 else f"Maus {i}"
        ProductText.create(
            product=puid,
            lang="de",
            name=name_de,
            short_description=f"Kurz {i}",
            long_description=f"Lang {i}\nmit Zeilenumbruch",
        )
        if i % 2 == 0:
            ProductText.create(
                product=puid,
                lang="en",
                name=f"Mouse {i}",
                short_description="",
                long_description="",
            )
        database.execute_sql(
            f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (?, ?)",
            (puid, f"{name_de} SKU-{i} 40000000{i:05d}"),
        )
        if i == 20:
            continue
        SupplierItem.create(
            product=puid,
            supplier=1,
            supplier_sku=f"A-{i}",
            price=None if i == 7 else 10.0 * i,
            stock=i % 3,
            stock_status="in_stock" if i % 3 else "out_of_stock",
            updated=updated,
        )
        if i % 4 == 0:
            SupplierItem.create(
                product=puid,
                supplier=3,
                supplier_sku=f"G-{i}",
                price=5.0 * i,
                stock=7,
                stock_status="in_stock",
                updated=updated,
            )
    bump_catalog_version()
