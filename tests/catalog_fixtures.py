"""Fixtures and helpers for the catalog tests (import them into a test module)."""

from __future__ import annotations

import pytest

from tuiexport import db as dbmod
from tuiexport import setup
from tuiexport.catalog.demo import generate_demo


def ean13_ok(code: str) -> bool:
    """An independent EAN-13 check: weights 1,3,1,3,… over all 13 digits sum to a multiple of 10."""
    return (
        len(code) == 13
        and code.isdigit()
        and sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(code)) % 10 == 0
    )


def catalog_rows(database) -> dict[str, list[tuple]]:
    """Every catalog table's rows (FTS included), for comparing two catalogs."""
    tables = {
        "manufacturer": "id",
        "product_type": "id",
        "supplier": "id",
        "product": "puid",
        "product_text": "product_id, lang",
        "supplier_item": "product_id, supplier_id",
        "product_search": "rowid",
    }
    out = {}
    for table, order in tables.items():
        cols = "rowid, text" if table == "product_search" else "*"
        if table == "supplier_item":
            cols = "product_id, supplier_id, supplier_sku, price, currency, stock, stock_status, condition, updated"
        out[table] = database.execute_sql(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall()
    return out


@pytest.fixture(name="demo")
def demo_fixture(tmp_path):
    """A fresh database (the open one) with 400 demo products, seed 7; yields the DemoStats."""
    setup.prepare_database(tmp_path / "demo.sqlite", load_sample=False)
    yield generate_demo(400, seed=7)
    dbmod.close_database()
