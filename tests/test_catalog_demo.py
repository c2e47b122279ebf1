"""The demo catalog generator, on real SQLite files."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta

import pytest

from tests.catalog_fixtures import catalog_rows, demo_fixture, ean13_ok  # noqa: F401 - fixture
from tuiexport import db as dbmod
from tuiexport import schema, setup
from tuiexport.catalog.demo import FIRST_PUID, base_date, generate_demo
from tuiexport.catalog.dump import export_jsonl
from tuiexport.catalog.stats import catalog_stats
from tuiexport.models import (
    CONDITIONS,
    STOCK_STATUSES,
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
)
from tuiexport.selection import Criteria, count


def sql(query: str, *params):
    return dbmod.database.execute_sql(query, params).fetchall()


def test_same_seed_gives_the_same_catalog_and_another_seed_does_not(tmp_path):
    dumps, exports = [], []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        database = setup.prepare_database(tmp_path / f"{name}.sqlite", load_sample=False)
        generate_demo(250, seed=seed)
        dumps.append(catalog_rows(database))
        export_jsonl(tmp_path / f"{name}.jsonl")
        exports.append((tmp_path / f"{name}.jsonl").read_bytes())
        dbmod.close_database()
    assert dumps[0] == dumps[1]
    assert exports[0] == exports[1]
    assert dumps[0]["product"] != dumps[2]["product"]


def test_reference_data_looks_like_an_it_catalog(demo):
    manufacturers = list(Manufacturer.select())
    assert 55 <= len(manufacturers) <= 70
    names = {m.name for m in manufacturers}
    assert {
        "Lenovo",
        "HP Inc.",
        "Dell Technologies",
        "Apple",
        "Samsung",
        "Logitech",
        "Kingston Technology",
    } <= names
    assert all(m.short_name and len(m.short_name) <= 4 for m in manufacturers)
    types = list(ProductType.select())
    assert 35 <= len(types) <= 50
    assert all(re.fullmatch(r"[A-Z]{3}", t.group_code) for t in types)
    assert {("Notebooks", "NBK"), ("Monitore", "MON"), ("Mäuse", "MOU")} <= {
        (t.name, t.group_code) for t in types
    }
    suppliers = list(Supplier.select())
    assert len(suppliers) == 12
    assert 1 <= sum(s.partner for s in suppliers) < 12


def test_products_have_valid_eans_and_realistic_fields(demo):
    rows = sql(
        "SELECT puid, ean, manufacturer_sku, qualification, condition, image_url, "
        "image_exportable, weight, eclass, created, updated FROM product ORDER BY puid"
    )
    assert len(rows) == demo.products == 400
    puids = [r[0] for r in rows]
    assert puids[0] == FIRST_PUID > 2**32 and puids[-1] == demo.last_puid
    assert all(b > a for a, b in itertools.pairwise(puids))
    assert any(b - a > 1 for a, b in itertools.pairwise(puids)), "puids are not contiguous"
    eans = [r[1] for r in rows if r[1] is not None]
    assert len(eans) > 380 and all(ean13_ok(e) for e in eans)
    assert len(set(eans)) == len(eans)
    assert all(r[2] for r in rows)
    assert {r[3] for r in rows} == {0, 1, 2, 3}
    conditions = [r[4] for r in rows]
    assert set(conditions) <= set(CONDITIONS) and conditions.count("new") > 300
    assert any(r[5] is None for r in rows)  # no image
    assert any(r[5] and not r[6] for r in rows)  # image without export rights
    assert any(r[5] and r[6] for r in rows)
    assert all(r[7] is not None and r[7] >= 0 and re.fullmatch(r"\d{8}", r[8]) for r in rows)
    end = base_date(7) + timedelta(days=1)
    for created, updated in (r[9:11] for r in rows):
        assert datetime.fromisoformat(created) <= datetime.fromisoformat(updated) < end
    assert end < datetime(2027, 1, 1)  # from the seed, not the clock


def test_offers_one_to_six_per_product_some_without_price_or_stock(demo):
    per_product = dict(sql("SELECT product_id, COUNT(*) FROM supplier_item GROUP BY product_id"))
    assert len(per_product) == 400
    assert set(per_product.values()) == {1, 2, 3, 4, 5, 6}
    assert sum(per_product.values()) == demo.supplier_items == SupplierItem.select().count()
    (no_price,) = sql(
        "SELECT COUNT(*) FROM product WHERE puid NOT IN "
        "(SELECT product_id FROM supplier_item WHERE price IS NOT NULL)"
    )[0]
    (no_stock,) = sql(
        "SELECT COUNT(*) FROM product WHERE puid NOT IN "
        "(SELECT product_id FROM supplier_item WHERE stock > 0)"
    )[0]
    assert 0 < no_price < 60 and 0 < no_stock < 150
    offers = list(SupplierItem.select())
    assert {o.stock_status for o in offers} == set(STOCK_STATUSES)
    assert {o.currency for o in offers} == {"EUR"}
    assert all(o.supplier_sku for o in offers)
    assert all(o.price is None or o.price > 0 for o in offers)
    assert all((o.stock is None) == (o.stock_status == "unknown") for o in offers)


def test_texts_in_german_and_english_with_nasty_characters(demo):
    texts = list(ProductText.select())
    langs = {}
    for t in texts:
        langs.setdefault(t.product_id, set()).add(t.lang)
    assert len(langs) == 400 and all("de" in v for v in langs.values())
    assert sum("en" in v for v in langs.values()) > 250
    german = [t for t in texts if t.lang == "de"]
    assert all(t.name for t in texts)
    everything = "".join(t.name + t.short_description + t.long_description for t in german)
    for char in 'äöüß,"\n':
        assert char in everything, repr(char)
    assert any('"' in t.name for t in german)
    assert any("\n" in t.long_description for t in texts)
    assert any(t.long_description == "" for t in texts)  # not every product is fully described


def test_search_index_has_one_row_per_product_and_finds_names_skus_eans(demo):
    assert sql(f"SELECT COUNT(*) FROM {schema.FTS_TABLE}")[0][0] == Product.select().count()
    product = Product.select().where(Product.ean.is_null(False)).order_by(Product.puid).first()
    name = ProductText.get(product=product, lang="de").name
    word = re.findall(r"\w{4,}", name)[1]
    assert product.puid in {
        r[0]
        for r in sql(
            f"SELECT rowid FROM {schema.FTS_TABLE} WHERE {schema.FTS_TABLE} MATCH ?", f'"{word}"'
        )
    }
    for term in (product.ean, product.manufacturer_sku):
        assert count(Criteria(suppliers="all", search=term)) >= 1


def test_analyze_ran_and_catalog_version_bumped(demo):
    assert sql("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'product'")[0][0] > 0
    assert schema.catalog_version() == 1


def test_a_second_run_adds_after_the_highest_puid_and_reuses_reference_rows(demo):
    manufacturers = Manufacturer.select().count()
    second = generate_demo(50, seed=7)
    assert second.first_puid > demo.last_puid
    assert Product.select().count() == 450
    assert Manufacturer.select().count() == manufacturers
    assert Supplier.select().count() == 12
    assert sql(f"SELECT COUNT(*) FROM {schema.FTS_TABLE}")[0][0] == 450
    assert schema.catalog_version() == 2


def test_stats_match_the_tables(demo):
    stats = catalog_stats()
    assert stats.products == 400
    assert stats.supplier_items == demo.supplier_items
    assert stats.manufacturers == Manufacturer.select().count()
    assert stats.product_types == ProductType.select().count()
    assert (stats.suppliers, stats.partners) == (
        12,
        Supplier.select().where(Supplier.partner).count(),
    )
    assert (
        stats.products_with_price
        == sql("SELECT COUNT(DISTINCT product_id) FROM supplier_item WHERE price IS NOT NULL")[0][0]
    )
    assert (
        stats.products_in_stock
        == sql("SELECT COUNT(DISTINCT product_id) FROM supplier_item WHERE stock > 0")[0][0]
    )
    assert (
        stats.products_with_exportable_image
        == Product.select()
        .where(Product.image_exportable & Product.image_url.is_null(False))
        .count()
    )
    assert (
        stats.last_update
        == Product.select(Product.updated).order_by(Product.updated.desc()).scalar()
    )
    assert catalog_stats() == stats  # kept for this catalog version
    generate_demo(10, seed=1)
    assert catalog_stats().products == 410


def test_stats_of_an_empty_catalog(empty_db):
    stats = catalog_stats()
    assert stats.products == stats.supplier_items == stats.products_with_price == 0
    assert stats.last_update is None


def test_an_interrupted_demo_keeps_whole_batches_and_bumps_the_version(empty_db):
    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_demo(25_000, seed=2, progress=interrupt)
    written = Product.select().count()
    assert 0 < written < 25_000
    assert sql(f"SELECT COUNT(*) FROM {schema.FTS_TABLE}")[0][0] == written
    assert schema.catalog_version() == 1


def test_offer_masks_are_exact_after_a_demo_and_triggers_are_back(demo):
    query = (
        "SELECT puid, offer_mask, stock_mask, price_mask, price_low, price_high FROM product "
        "ORDER BY puid"
    )
    after_demo = sql(query)
    assert any(row[1] for row in after_demo)
    schema.refresh_offer_summary()
    assert sql(query) == after_demo
    assert sql("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'")[0][0] >= 3


def test_a_big_demo_rebuilds_the_indexes_it_dropped(empty_db, monkeypatch):
    from tuiexport.catalog import writer as demo_module

    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    before = sql(query)
    monkeypatch.setattr(demo_module, "REBUILD_INDEXES_FROM", 100)
    generate_demo(300, seed=3)
    assert sql(query) == before
    assert sql("PRAGMA integrity_check") == [("ok",)]
    assert count(Criteria(suppliers="partners", only_in_stock=True)) > 0
    masks = (
        "SELECT puid, offer_mask, stock_mask, price_mask, price_low, price_high FROM product "
        "ORDER BY puid"
    )
    after = sql(masks)
    schema.refresh_offer_summary()
    assert sql(masks) == after
