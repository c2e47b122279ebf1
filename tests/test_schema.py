"""Schema versioning and the derived offer masks."""

from __future__ import annotations

import sqlite3

import pytest

from tests import tiny_catalog
from tuiexport import db as dbmod
from tuiexport import schema, service, setup
from tuiexport.management import runs
from tuiexport.models import SupplierItem
from tuiexport.selection import Criteria


def masks(database) -> list[tuple]:
    return database.execute_sql(
        "SELECT puid, offer_mask, stock_mask, price_mask, price_low, price_high FROM product "
        "ORDER BY puid"
    ).fetchall()


def recomputed(database) -> list[tuple]:
    schema.refresh_offer_summary()
    return masks(database)


def test_triggers_keep_masks_exact_through_every_kind_of_write(empty_db):
    tiny_catalog.build()
    assert masks(empty_db) == recomputed(empty_db)
    assert dict((p, m) for p, m, *_ in masks(empty_db))[1004] == (1 << 1) | (1 << 3)
    SupplierItem.update(stock=0).where(SupplierItem.product == 1004).execute()
    SupplierItem.delete().where(SupplierItem.product == 1008, SupplierItem.supplier == 3).execute()
    SupplierItem.update(supplier=2).where(SupplierItem.product == 1001).execute()
    SupplierItem.create(product=1020, supplier=2, price=None, stock=5)
    SupplierItem.update(price=999.0).where(SupplierItem.product == 1012).execute()
    after = masks(empty_db)
    assert after == recomputed(empty_db)
    by_puid = {p: rest for p, *rest in after}
    assert by_puid[1004][1] == 0 and by_puid[1008][0] == 1 << 1 and by_puid[1001][0] == 1 << 2
    assert by_puid[1020] == [1 << 2, 1 << 2, 0, None, None]
    assert by_puid[1012][3:] == [999.0, 999.0]


def test_suppliers_beyond_the_mask_bits_still_select_exactly(empty_db):
    tiny_catalog.build()
    from tuiexport.models import Supplier

    Supplier.create(id=500, name="Far Away", partner=True)
    SupplierItem.create(product=1020, supplier=500, price=99.0, stock=3)
    assert service.count_products(Criteria()) == 20  # partners now include 1020 via supplier 500
    assert (
        service.count_products(Criteria(suppliers="list", supplier_ids=[500], only_in_stock=True))
        == 1
    )
    assert (
        service.count_products(Criteria(suppliers="all", only_with_price=True, price_max=100)) == 12
    )


def test_bulk_load_suspends_triggers_and_recomputes(empty_db):
    tiny_catalog.build()
    with schema.bulk_offer_load():
        SupplierItem.update(stock=0).execute()
    assert all(stock == 0 for _, _, stock, *_ in masks(empty_db))
    SupplierItem.update(stock=4).where(SupplierItem.product == 1002).execute()  # triggers are back
    assert masks(empty_db) == recomputed(empty_db)


def test_a_version_1_database_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    dbmod.close_database()
    with sqlite3.connect(path) as con:  # make it look like version 1
        con.execute("DROP INDEX product_filter_puid")  # version 5
        con.execute("DROP INDEX supplier_item_offer")
        for name in ("ins", "del", "upd"):
            con.execute(f"DROP TRIGGER supplier_item_mask_{name}")
        for column in ("offer_mask", "stock_mask", "price_mask", "price_low", "price_high"):
            con.execute(f"ALTER TABLE product DROP COLUMN {column}")  # versions 2 and 7
        con.execute("ALTER TABLE run DROP COLUMN outcome")  # version 3
        con.execute("ALTER TABLE run DROP COLUMN owner")  # version 4
        con.execute("DROP TABLE notification_attempt")  # version 6
        con.execute("DROP TABLE notification")
        for column in DELTA_COLUMNS:  # version 8
            con.execute(f"ALTER TABLE run DROP COLUMN {column}")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    database = setup.prepare_database(path, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    migrated = masks(database)
    assert migrated == recomputed(database) and any(m for _, m, *_ in migrated)
    assert service.count_products(Criteria(only_in_stock=True)) == 13
    assert {"notification", "notification_attempt"} <= set(database.get_tables())


DELTA_COLUMNS = ("delta_since", "delta_base", "added_count", "changed_count", "removed_count")


def test_a_version_6_database_gets_the_delta_columns(tmp_path):
    """Version 8 (issue 12): a delta is a run with its cursor, its base run and its counts."""
    path = tmp_path / "v6.sqlite"
    setup.prepare_database(path, load_sample=False)
    dbmod.close_database()
    with sqlite3.connect(path) as con:
        # Version 6 had neither the delta columns (8) nor the share links' (9) nor the
        # partial downloads' (12).
        con.execute("DROP INDEX run_link_started")
        for column in (*DELTA_COLUMNS, "link_id", "link_name", "source_log_id", "partial"):
            con.execute(f"ALTER TABLE run DROP COLUMN {column}")
        con.execute(
            "INSERT INTO run (log_id, export_id, export_name, trigger, status, started, "
            "heartbeat, api_version, profile, output, file_format, product_count, omitted_count, "
            "artifact_kept, messages, supplier_shares, fingerprint, outcome, host, pid, owner) "
            "VALUES ('OLDRUN0001', 'e', 'old', 'cli', 'success', '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', '', 'standard', 'csv', 'standard CSV (ZIP)', 3, 0, 0, '[]', "
            "'{}', '', 'success', '', 0, '')"
        )
        con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    setup.prepare_database(path, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    old = service.get_run("OLDRUN0001")
    assert (old.is_delta, old.delta_since, old.added_count, old.product_count) == (False, "", 0, 3)
    assert runs.by_log_id("OLDRUN0001").partial is False  # an old row is no piece of a download


def test_a_version_4_database_gets_the_selection_indexes(tmp_path):
    """Version 5 replaced product_filter by product_filter_puid and added supplier_item_offer."""
    path = tmp_path / "v4.sqlite"
    setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    dbmod.close_database()
    with sqlite3.connect(path) as con:  # make it look like version 4
        con.execute("DROP INDEX product_filter_puid")
        con.execute("DROP INDEX supplier_item_offer")
        for name in ("ins", "del", "upd"):  # version 7 (its triggers keep the price range)
            con.execute(f"DROP TRIGGER supplier_item_mask_{name}")
        for column in ("price_low", "price_high"):
            con.execute(f"ALTER TABLE product DROP COLUMN {column}")
        con.execute(
            "CREATE INDEX product_filter ON product (offer_mask, stock_mask, price_mask, "
            "qualification, condition, image_exportable, manufacturer_id, product_type_id, updated)"
        )
        con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    database = setup.prepare_database(path, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    names = {
        name
        for (name,) in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index'"
        ).fetchall()
    }
    assert {"product_filter_puid", "supplier_item_offer"} <= names
    assert "product_filter" not in names
    assert service.count_products(Criteria(only_in_stock=True, price_min=1)) > 0


def test_a_version_6_database_gets_price_ranges_and_their_triggers(tmp_path):
    """Version 7 added each product's price range to the selection index; its triggers keep it."""
    path = tmp_path / "v6.sqlite"
    setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    dbmod.close_database()
    with sqlite3.connect(path) as con:  # make it look like version 6
        con.execute("DROP INDEX product_filter_puid")
        for name in ("ins", "del", "upd"):
            con.execute(f"DROP TRIGGER supplier_item_mask_{name}")
        for column in ("price_low", "price_high"):
            con.execute(f"ALTER TABLE product DROP COLUMN {column}")
        con.execute(
            "CREATE INDEX product_filter_puid ON product (puid, offer_mask, stock_mask, "
            "price_mask, qualification, condition, image_exportable, manufacturer_id, "
            "product_type_id, updated)"
        )
        con.execute(
            "CREATE TRIGGER supplier_item_mask_del AFTER DELETE ON supplier_item BEGIN "
            "UPDATE product SET offer_mask = 0 WHERE puid = OLD.product_id; END"
        )
        con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    database = setup.prepare_database(path, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    (index,) = database.execute_sql(
        "SELECT sql FROM sqlite_master WHERE name = 'product_filter_puid'"
    ).fetchone()
    assert "price_low, price_high" in index
    by_puid = {p: rest for p, *rest in masks(database)}
    assert by_puid[1008][3:] == [40.0, 80.0] and by_puid[1007][3:] == [None, None]
    SupplierItem.delete().where(SupplierItem.product == 1008, SupplierItem.supplier == 1).execute()
    assert masks(database) == recomputed(database)
    assert {p: rest for p, *rest in masks(database)}[1008][3:] == [40.0, 40.0]


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    setup.prepare_database(path, load_sample=False)
    schema.set_meta("schema_version", "99")
    dbmod.close_database()
    with pytest.raises(dbmod.DatabaseError, match="schema version 99, newer than this tuiexport"):
        setup.prepare_database(path, load_sample=False)


def _statements(database, action) -> list[str]:
    """The SQL statements SQLite runs for ``action()`` on the database's connection."""
    seen: list[str] = []
    connection = database.connection()
    connection.set_trace_callback(seen.append)
    try:
        action()
    finally:
        connection.set_trace_callback(None)
    return seen


def test_an_up_to_date_database_is_not_set_up_again(tmp_path):
    """Every start passes through ensure_schema: at the current version with everything in
    place, it reads and writes nothing else (no CREATE ... IF NOT EXISTS for every table)."""
    path = tmp_path / "current.sqlite"
    database = setup.prepare_database(path, load_sample=False)
    seen = _statements(database, lambda: schema.ensure_schema(database))
    assert len(seen) == 2 and not any(
        s.lstrip().upper().startswith(("CREATE", "BEGIN")) for s in seen
    )


def test_what_an_interrupted_bulk_load_left_dropped_comes_back(tmp_path):
    """catalog.writer.bulk_load drops triggers and secondary indexes: the next start, though the
    version is current, sees them missing and creates them again."""
    path = tmp_path / "interrupted.sqlite"
    database = setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    schema.suspend_offer_triggers(database)  # as if the bulk load died before resuming
    database.execute_sql("DROP INDEX product_ean")
    database.execute_sql("DROP INDEX supplier_item_offer")
    dbmod.close_database()
    database = setup.prepare_database(path, load_sample=False)
    names = {n for (n,) in database.execute_sql("SELECT name FROM sqlite_master").fetchall()}
    assert {"supplier_item_mask_ins", "supplier_item_mask_del", "supplier_item_mask_upd"} <= names
    assert {"product_ean", "supplier_item_offer"} <= names
    SupplierItem.update(stock=0).where(SupplierItem.product == 1004).execute()
    assert masks(database) == recomputed(database)
