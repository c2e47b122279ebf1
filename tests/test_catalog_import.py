"""Catalog import (JSON Lines, CSV, gzip), the export in the import schema, and the catalog CLI."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.catalog_fixtures import catalog_rows, demo_fixture  # noqa: F401 - fixture
from tuiexport import db as dbmod
from tuiexport import schema, setup
from tuiexport.catalog.demo import generate_demo
from tuiexport.catalog.dump import export_jsonl
from tuiexport.catalog.importer import import_file
from tuiexport.cli import main
from tuiexport.errors import UserError
from tuiexport.models import Manufacturer, Product, ProductText, ProductType, Supplier, SupplierItem
from tuiexport.selection import Criteria, count

REFS = [
    {"kind": "supplier", "id": 1, "name": "Nordwind Distribution GmbH", "partner": True},
    {"kind": "supplier", "id": 2, "name": "Ostsee Office Supply"},
    {"kind": "manufacturer", "id": 10, "name": "Lenovo", "shortName": "LEN"},
    {"kind": "productType", "id": 20, "name": "Notebooks", "groupCode": "NBK"},
]


def product(puid: int, name: str = "ThinkPad E14", **extra) -> dict:
    record = {
        "kind": "product",
        "puid": puid,
        "ean": "4006381333931",
        "manufacturerSku": f"21JK-{puid}",
        "manufacturerId": 10,
        "productTypeId": 20,
        "qualification": 2,
        "updated": "2025-03-01T10:00:00Z",
        "texts": {
            "de": {
                "name": f'{name} 35,6 cm (14"), Größe "M"',
                "longDescription": "Zeile 1\nZeile 2, mit Komma",
            },
            "en": {"name": f"{name} notebook"},
        },
        "offers": [
            {
                "supplierId": 1,
                "supplierSku": "NW-1",
                "price": 899.5,
                "stock": 3,
                "stockStatus": "in_stock",
            },
            {"supplierId": 2, "price": 910},
        ],
    }
    record.update(extra)
    return record


def write_jsonl(path, records) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def fts_count() -> int:
    return dbmod.database.execute_sql(f"SELECT COUNT(*) FROM {schema.FTS_TABLE}").fetchone()[0]


def test_jsonl_good_rows_kept_bad_rows_reported_with_line_numbers(empty_db, tmp_path):
    path = tmp_path / "cat.jsonl"
    write_jsonl(
        path,
        [
            *REFS,  # lines 1-4
            product(100),  # 5
            '{"kind": "product", "puid": 101,',  # 6 broken JSON
            product(102, ean="4006381333932"),  # 7 wrong check digit
            product(103, manufacturerId=99),  # 8 unknown manufacturer
            "",  # 9 blank: ignored
            product(104, qualification=7),  # 10 out of range
            product(105, offers=[{"supplierId": 1, "price": "cheap"}]),  # 11 wrong type
            {"kind": "warehouse", "id": 1},  # 12 unknown kind
            product(106, texts={"xx": {"name": "?"}}),  # 13 unknown language
            product(107, offers=[{"supplierId": 1}, {"supplierId": 1}]),  # 14 duplicate offer
            product(108, colour="red"),  # 15 unknown field
            product(109, ean=None),  # 16 good, no EAN
        ],
    )
    report = import_file(path)
    assert (report.added, report.updated, report.skipped, report.references) == (2, 0, 9, 4)
    lines = [line for line, _ in report.errors]
    assert lines == [6, 7, 8, 10, 11, 12, 13, 14, 15]
    reasons = dict(report.errors)
    assert "JSON" in reasons[6]
    assert reasons[7].startswith("ean:") and "check digit" in reasons[7]
    assert reasons[8] == "manufacturerId: unknown manufacturer 99"
    assert reasons[10].startswith("qualification:")
    assert reasons[11].startswith("offers[0].price:")
    assert "kind" in reasons[12]
    assert reasons[13] == "texts: Invalid enum value 'xx' (as a key)"
    assert "two offers" in reasons[14]
    assert "colour" in reasons[15]
    assert all("\n" not in reason for reason in reasons.values())
    assert sorted(p.puid for p in Product.select()) == [100, 109]
    assert fts_count() == 2
    saved = ProductText.get(product=100, lang="de")
    assert saved.name == 'ThinkPad E14 35,6 cm (14"), Größe "M"'
    assert saved.long_description == "Zeile 1\nZeile 2, mit Komma"
    assert SupplierItem.select().where(SupplierItem.product == 100).count() == 2
    assert Supplier.get_by_id(1).partner and not Supplier.get_by_id(2).partner
    assert schema.catalog_version() == 1


def test_reimport_updates_by_puid_and_replaces_texts_offers_and_search(empty_db, tmp_path):
    path = tmp_path / "cat.jsonl.gz"
    write_jsonl(path, [*REFS, product(100), product(101), product(102)])
    assert import_file(path).added == 3
    created = Product.get_by_id(100).created
    changed = product(100, name="Yoga Slim", offers=[{"supplierId": 2, "price": 1.5}])
    del changed["texts"]["en"]
    write_jsonl(path, [*REFS[:2], changed, product(101), product(103), product(101, name="Again")])
    report = import_file(path)
    assert (report.added, report.updated, report.skipped) == (1, 3, 0)
    assert Product.select().count() == 4 and fts_count() == 4
    assert [t.lang for t in ProductText.select().where(ProductText.product == 100)] == ["de"]
    assert ProductText.get(product=100, lang="de").name.startswith("Yoga Slim")
    assert [
        (o.supplier_id, o.price) for o in SupplierItem.select().where(SupplierItem.product == 100)
    ] == [(2, 1.5)]
    assert ProductText.get(product=101, lang="de").name.startswith("Again")
    assert Product.get_by_id(100).created == created  # not given in the file: kept
    assert count(Criteria(suppliers="all", search="Yoga")) == 1
    assert count(Criteria(suppliers="all", search="ThinkPad")) == 2  # 102, 103; 100 is renamed
    assert schema.catalog_version() == 2


CSV_TEXT = (
    "puid,ean,manufacturerSku,manufacturer,productType,groupCode,qualification,updated,"
    "name.de,longDescription.de,name.en,supplier,supplierPartner,supplierSku,price,stock,stockStatus\r\n"
    # lines 2-5: one product, multi-line long description (lines 2-3), three offers
    "7001,4006381333931,SKU-1,Lenovo,Notebooks,NBK,2,01.03.2025 10:30,"
    '"ThinkPad ""E14"", 14 Zoll","Erste Zeile\r\nzweite, mit Komma",ThinkPad E14,Nordwind,1,NW-1,899.00,5,in_stock\r\n'
    "7001,,,,,,,,,,,Elbtal,,ET-1,905.5,0,out_of_stock\r\n"
    "7001,,,,,,,,,,,Bavaria,,BT-1,,,unknown\r\n"
    # line 6: bad price; line 8: new product type without group code; line 9: good, no offers
    "7002,,SKU-2,Lenovo,Notebooks,NBK,1,,Maus,,,Nordwind,,NW-2,zehn,1,in_stock\r\n"
    "7002,,,,,,,,,,,Elbtal,,ET-2,5.0,1,in_stock\r\n"  # line 7: goes with its bad first row
    "7003,,SKU-3,Logitech,Mäuse,,1,,Maus,,,,,,,,\r\n"
    "7004,,SKU-4,Logitech,Notebooks,,0,2025-02-01T08:00:00,Ärger-Maus,,,,,,,,\r\n"
    # line 10: wrong field count; line 12: repeated offer of a supplier
    "7005,1,2\r\n"
    "7004,,,,,,,,,,,Nordwind,,NW-4,3,3,in_stock\r\n"
    "7004,,,,,,,,,,,Nordwind,,NW-4,3,3,in_stock\r\n"
)


@pytest.mark.parametrize("name", ["cat.csv", "cat.csv.gz"])
def test_csv_rows_per_offer_names_create_reference_rows(empty_db, tmp_path, name):
    path = tmp_path / name
    data = ("\ufeff" + CSV_TEXT).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    report = import_file(path)
    assert [line for line, _ in report.errors] == [6, 7, 8, 10, 12]
    reasons = dict(report.errors)
    assert reasons[6].startswith("price:")
    assert reasons[7] == "puid 7002: skipped because its first row (line 6) was bad"
    assert "group code" in reasons[8]
    assert "3 fields" in reasons[10]
    assert "two offers" in reasons[12]
    assert (report.added, report.updated, report.skipped) == (2, 0, 5)
    p = Product.get_by_id(7001)
    assert p.manufacturer.name == "Lenovo" and p.product_type.group_code == "NBK"
    assert p.qualification == 2 and str(p.updated) == "2025-03-01 10:30:00"
    de = ProductText.get(product=7001, lang="de")
    assert de.name == 'ThinkPad "E14", 14 Zoll'
    assert de.long_description == "Erste Zeile\r\nzweite, mit Komma"
    offers = {o.supplier.name: o for o in SupplierItem.select().where(SupplierItem.product == 7001)}
    assert sorted(offers) == ["Bavaria", "Elbtal", "Nordwind"]
    assert offers["Elbtal"].price == 905.5 and offers["Elbtal"].stock == 0
    assert offers["Bavaria"].price is None and offers["Bavaria"].stock is None
    assert Supplier.get(Supplier.name == "Nordwind").partner
    assert not Supplier.get(Supplier.name == "Elbtal").partner
    assert ProductText.get(product=7004, lang="de").name == "Ärger-Maus"
    assert [o.supplier_sku for o in SupplierItem.select().where(SupplierItem.product == 7004)] == [
        "NW-4"
    ]
    assert Manufacturer.select().count() == 2 and ProductType.select().count() == 1
    assert fts_count() == 2


def test_export_and_reimport_round_trip_is_exact(demo, tmp_path):
    first = tmp_path / "a.jsonl.gz"
    export_jsonl(first)
    before = catalog_rows(dbmod.database)
    dbmod.close_database()
    setup.prepare_database(tmp_path / "copy.sqlite", load_sample=False)
    report = import_file(first)
    assert (report.added, report.skipped) == (400, 0)
    assert catalog_rows(dbmod.database) == before
    second = tmp_path / "b.jsonl.gz"
    export_jsonl(second)
    assert first.read_bytes() == second.read_bytes()
    assert import_file(second).updated == 400
    assert catalog_rows(dbmod.database) == before


def test_bundled_sample_is_small_reproducible_and_loads_on_first_start(tmp_path):
    assert len(setup.sample_catalog().read_bytes()) < 3_000_000
    setup.prepare_database(tmp_path / "demo.sqlite", load_sample=False)
    generate_demo(2_500, seed=1)
    export_jsonl(tmp_path / "sample.jsonl.gz")
    dbmod.close_database()
    assert (tmp_path / "sample.jsonl.gz").read_bytes() == setup.sample_catalog().read_bytes(), (
        "tuiexport/data/sample-catalog.jsonl.gz is stale: run bench/make_sample.py"
    )
    setup.prepare_database(tmp_path / "fresh.sqlite")
    assert Product.select().count() == 2_500
    assert fts_count() == 2_500


def test_unreadable_files_are_one_sentence_user_errors(empty_db, tmp_path):
    with pytest.raises(UserError, match=r"Cannot tell the format of cat\.xlsx"):
        import_file(tmp_path / "cat.xlsx")
    with pytest.raises(UserError, match="Cannot read"):
        import_file(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b"\n".join(json.dumps(r).encode() for r in REFS))[:-12])
    with pytest.raises(UserError, match="not a complete gzip file"):
        import_file(broken)
    header = tmp_path / "header.csv"
    header.write_text("puid,prize\n1,2\n")
    with pytest.raises(UserError, match=r"unknown CSV columns \(prize\)"):
        import_file(header)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("puid,n\xe4me.de\n1,x\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        import_file(latin)
    assert Product.select().count() == 0


def test_csv_rows_that_are_not_utf8_are_bad_rows(empty_db, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b'puid,name.de\n1,Maus\n2,Gr\xf6\xdfe\n3,"Gr\xc3\xb6\xc3\x9fe"\n')
    report = import_file(path)
    assert (report.added, report.errors) == (2, [(3, "not UTF-8 text (save the file as UTF-8)")])
    assert ProductText.get(product=3).name == "Größe"


def test_database_failures_are_one_sentence(tmp_path, capsys):
    db = tmp_path / "cli.sqlite"
    database = setup.prepare_database(db, load_sample=False)
    database.execute_sql(
        "CREATE TRIGGER no_products BEFORE INSERT ON product "
        "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"
    )
    dbmod.close_database()
    path = tmp_path / "cat.jsonl"
    write_jsonl(path, [*REFS, product(1)])
    assert main(["--db", str(db), "catalog", "import", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"tuiexport: Writing {path} to the catalog failed (disk quota exceeded); "
        "the chunks before it were kept.\n"
    )
    assert main(["--db", str(db), "catalog", "demo", "--products", "5"]) == 2
    assert capsys.readouterr().err == (
        "tuiexport: Writing the demo catalog failed (disk quota exceeded); "
        "the batches before it were kept.\n"
    )


# --- CLI ----------------------------------------------------------------------------------


def test_cli_import_reports_bad_lines_on_stderr_and_exits_0(tmp_path, capsys):
    path = tmp_path / "cat.jsonl"
    write_jsonl(path, [*REFS, product(1), product(2, ean="123"), product(3)])
    db = str(tmp_path / "cli.sqlite")
    assert main(["--db", db, "catalog", "import", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "line 6: ean: '123' is not a valid EAN/GTIN (8, 12, 13 or 14 digits with check digit)"
    ]
    assert "2 added, 0 updated, 1 skipped" in out
    assert main(["--db", db, "catalog", "import", str(path), "--json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == {
        "added": 0,
        "updated": 2,
        "skipped": 1,
        "references": 4,
        "errors": [
            [6, "ean: '123' is not a valid EAN/GTIN (8, 12, 13 or 14 digits with check digit)"]
        ],
    }
    # An imported catalog is never mixed with the bundled sample.
    assert main(["--db", db, "catalog", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["products"] == 2


def test_cli_import_of_only_bad_rows_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, ["not json", {"kind": "product"}])
    assert main(["--db", str(tmp_path / "cli.sqlite"), "catalog", "import", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 1: not valid JSON")
    assert err[1] == "line 2: Object missing required field `puid`"
    assert err[2] == (
        f"tuiexport: No row of {path} could be imported (2 bad rows); "
        "fix the lines listed above and import again."
    )


def test_cli_import_errors_are_one_sentence(tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    assert main(["--db", db, "catalog", "import", str(tmp_path / "x.txt")]) == 2
    assert capsys.readouterr().err == (
        "tuiexport: Cannot tell the format of x.txt: name it .jsonl, .jsonl.gz, .csv or .csv.gz "
        "(or .zip for the developer profile's CSV export).\n"
    )
    assert main(["--db", db, "catalog", "import", str(tmp_path / "gone.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tuiexport: Cannot read ") and err.count("\n") == 1
    assert main(["--db", db, "catalog", "demo", "--products", "0"]) == 2
    assert capsys.readouterr().err == (
        "tuiexport: Argument --products: '0' is not a whole number from 1 to 100,000,000 "
        "(see 'tuiexport catalog demo --help').\n"
    )
    assert main(["--db", db, "catalog", "demo"]) == 2
    assert "--products" in capsys.readouterr().err


def test_cli_demo_and_stats(tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    assert main(["--db", db, "catalog", "demo", "--products", "300", "--seed", "5", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["products"] == 300 and stats["seed"] == 5
    assert main(["--db", db, "catalog", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["products"] == 300  # no sample mixed in
    assert main(["--db", db, "exports", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out), "a fresh demo database gets the example exports"
    assert main(["--db", db, "catalog", "demo", "--products", "20"]) == 0
    assert capsys.readouterr().out.startswith("Added 20 demo products")
    assert main(["--db", db, "catalog", "stats"]) == 0
    out = capsys.readouterr().out
    assert "products" in out and "320" in out and "partners" in out


def test_jsonl_with_byte_order_mark_and_crlf(empty_db, tmp_path):
    path = tmp_path / "windows.jsonl"
    lines = [json.dumps(r) for r in [*REFS, product(1)]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    report = import_file(path)
    assert (report.added, report.skipped, report.references) == (1, 0, 4)


def test_offer_masks_follow_imported_and_replaced_offers(empty_db, tmp_path):
    path = tmp_path / "cat.jsonl"
    write_jsonl(path, [*REFS, product(1), product(2, offers=[])])
    import_file(path)
    query = "SELECT puid, offer_mask, stock_mask, price_mask FROM product ORDER BY puid"
    assert dbmod.database.execute_sql(query).fetchall() == [(1, 0b110, 0b010, 0b110), (2, 0, 0, 0)]
    write_jsonl(path, [product(1, offers=[{"supplierId": 2, "stock": 4}])])
    import_file(path)
    assert dbmod.database.execute_sql(query).fetchall() == [(1, 0b100, 0b100, 0), (2, 0, 0, 0)]


def test_price_ranges_follow_imported_and_replaced_offers(empty_db, tmp_path):
    path = tmp_path / "cat.jsonl"
    write_jsonl(path, [*REFS, product(1), product(2, offers=[])])
    import_file(path)
    query = "SELECT puid, price_low, price_high FROM product ORDER BY puid"
    assert dbmod.database.execute_sql(query).fetchall() == [(1, 899.5, 910.0), (2, None, None)]
    cheaper = [{"supplierId": 2, "price": 15, "stock": 4}, {"supplierId": 1, "price": 0}]
    write_jsonl(path, [product(1, offers=cheaper), product(2)])
    import_file(path)
    assert dbmod.database.execute_sql(query).fetchall() == [(1, 15.0, 15.0), (2, 899.5, 910.0)]
    assert count(Criteria(suppliers="all", price_min=10, price_max=20)) == 1
    assert count(Criteria(suppliers="all", price_min=900)) == 1


def test_exportable_image_needs_an_image(empty_db, tmp_path):
    from tuiexport.models import Product

    path = tmp_path / "img.jsonl"
    path.write_text(
        '{"kind":"product","puid":1,"imageExportable":true}\n'
        '{"kind":"product","puid":2,"imageUrl":"https://img.example.com/2.jpg","imageExportable":true}\n'
    )
    assert import_file(path).added == 2
    assert dict(Product.select(Product.puid, Product.image_exportable).tuples()) == {
        1: False,
        2: True,
    }


def test_bulk_import_into_an_empty_catalog_equals_the_row_by_row_path(demo, tmp_path, monkeypatch):
    """An empty catalog takes the bulk path (random-order indexes and the mask triggers off,
    rebuilt at the end); the path for a catalog that holds products keeps them live. Both end with
    the same rows, masks, full-text rows and schema objects, and a later upsert still works."""
    from tuiexport.catalog import writer

    path = tmp_path / "cat.jsonl"
    export_jsonl(path)
    query = "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_stat1' ORDER BY name"
    shape = dbmod.database.execute_sql(query).fetchall()
    rows = catalog_rows(dbmod.database)
    search = f"SELECT rowid, text FROM {schema.FTS_TABLE} ORDER BY rowid"
    masks = (
        "SELECT puid, offer_mask, stock_mask, price_mask, price_low, price_high FROM product "
        "ORDER BY puid"
    )
    dbmod.close_database()
    results = []
    for name, bulk in (("bulk.sqlite", True), ("rows.sqlite", False)):
        setup.prepare_database(tmp_path / name, load_sample=False)
        assert writer.is_bulk(dbmod.database.obj, 400)
        with monkeypatch.context() as patch:
            if not bulk:
                patch.setattr(writer, "is_bulk", lambda db, n: False)
            report = import_file(path)
        assert (report.added, report.skipped) == (400, 0)
        db = dbmod.database
        results.append(
            (
                catalog_rows(db),
                db.execute_sql(masks).fetchall(),
                db.execute_sql(search).fetchall(),
                db.execute_sql(query).fetchall(),
            )
        )
        assert not writer.is_bulk(db.obj, 400)  # the catalog holds products now
        assert import_file(path).updated == 400
        assert catalog_rows(db) == rows
        dbmod.close_database()
    assert results[0] == results[1]
    assert results[0][0] == rows
    assert results[0][3] == shape
