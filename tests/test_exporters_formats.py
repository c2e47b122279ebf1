"""Every writer's output, read back by an independent reader and compared with the catalog."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from tests import tiny_catalog
from tests.exporters_harness import make_job, read_zip_csv, run, xml_records
from tuiexport.exporters import docs, profiles, registry
from tuiexport.exporters.base import Cancelled
from tuiexport.models import Product, ProductText, SupplierItem
from tuiexport.selection import Criteria

PROFILES = ("standard", "standardUpdate", "developer")
OUTPUTS = ("csv", "json", "jsonl", "xml", "xlsx")
ALL_PAIRS = [(p, o) for p in PROFILES for o in OUTPUTS] + [("bmecat12", "xml")]


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return empty_db


# --- what the catalog says, computed with the ORM (not with the exporters' SQL) ------------


def texts_of(puid: int) -> dict[str, ProductText]:
    return {t.lang: t for t in ProductText.select().where(ProductText.product == puid)}


def pick(texts, attr, lang, fallback):
    for code in (lang, fallback):
        value = getattr(texts[code], attr) if code in texts else ""
        if value:
            return value
    return None


def expected_products(lang="de", fallback="de", limit=None):
    rows = []
    for p in Product.select().order_by(Product.puid).limit(limit):
        t = texts_of(p.puid)
        offers = (
            SupplierItem.select()
            .where(SupplierItem.product == p.puid)
            .order_by(SupplierItem.supplier)
        )
        rows.append(
            {
                "puid": p.puid,
                "ean": p.ean,
                "manufacturer": p.manufacturer.name,
                "name": pick(t, "name", lang, fallback),
                "shortDescription": pick(t, "short_description", lang, fallback),
                "longDescription": pick(t, "long_description", lang, fallback),
                "imageUrl": p.image_url if p.image_exportable else None,
                "updated": p.updated,
                "offers": [
                    (
                        o.supplier.name,
                        o.supplier_sku,
                        None if o.price is None else round(o.price, 2),
                        o.stock,
                    )
                    for o in offers
                ],
            }
        )
    return rows


# --- registry ------------------------------------------------------------------------------


def test_every_pair_has_a_writer_and_no_other():
    assert sorted(registry.valid_pairs()) == sorted(ALL_PAIRS)
    assert not registry.is_valid_pair("bmecat12", "csv")
    for pair in ALL_PAIRS:
        writer = registry.get_writer(*pair)
        assert (writer.profile, writer.output) == pair
        assert writer.extension and "/" in writer.media_type
    assert registry.get_writer("standard", "csv").extension == "zip"


def test_docs_show_the_field_lists_of_the_code():
    page = Path(__file__).resolve().parents[1] / docs.PAGE
    text = page.read_text(encoding="utf-8")
    region = text.split(docs.START, 1)[1].split(docs.END, 1)[0]
    assert region == f"\n{docs.markdown()}", (
        f"run: python -m tuiexport.exporters.docs to refresh {docs.PAGE}"
    )


def test_docs_refresh_rewrites_only_the_generated_region(tmp_path):
    page = tmp_path / "formats.md"
    page.write_text(f"# Intro\n{docs.START}\nstale table\n{docs.END}\nAfter.\n", encoding="utf-8")
    assert docs.refresh(page)
    text = page.read_text(encoding="utf-8")
    assert text == f"# Intro\n{docs.START}\n{docs.markdown()}{docs.END}\nAfter.\n"
    assert not docs.refresh(page)


# --- CSV -----------------------------------------------------------------------------------


def test_standard_csv_holds_the_selected_products_and_their_offers(catalog):
    data, stats, _ = run(catalog, "standard", "csv", language="en", fallback="de")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["product.csv", "supplierItem.csv", "Log.csv"]
    files = read_zip_csv(data)
    want = expected_products("en", "de")
    got = files["product.csv"]
    assert list(got[0]) == [f.name for f in profiles.STANDARD_PRODUCT.fields]
    assert [int(r["puid"]) for r in got] == [w["puid"] for w in want]
    for row, w in zip(got, want, strict=True):
        assert row["name"] == (w["name"] or "")
        assert row["shortDescription"] == (w["shortDescription"] or "")
        assert row["longDescription"] == (w["longDescription"] or "")
        assert row["manufacturer"] == w["manufacturer"]
        assert row["imageUrl"] == (w["imageUrl"] or "")
        assert row["updated"] == w["updated"].strftime("%d.%m.%Y %H:%M")
    offers = [
        (int(r["puid"]), r["supplier"], r["supplierSku"], r["price"], r["stock"])
        for r in files["supplierItem.csv"]
    ]
    assert offers == [
        (
            w["puid"],
            s,
            sku,
            "" if price is None else f"{price:.2f}",
            "" if stock is None else str(stock),
        )
        for w in want
        for s, sku, price, stock in w["offers"]
    ]
    assert files["Log.csv"] == []
    assert stats.product_count == 20
    assert stats.supplier_shares == {"Alpha Distribution": 19, "Gamma Großhandel": 4}


def test_csv_dialect_byte_for_byte(catalog):
    ProductText.update(name='Kabel, 2 m "lang"\r\nzweite Zeile', short_description=" Rand ").where(
        ProductText.product == 1001, ProductText.lang == "de"
    ).execute()
    data, _, _ = run(
        catalog, "standardUpdate", "csv", criteria=Criteria(suppliers="all", include=["1001"])
    )
    member = zipfile.ZipFile(io.BytesIO(data)).read("supplierItem.csv")
    assert member == (
        b"puid,supplier,supplierSku,price,currency,stock,stockStatus,updated\r\n"
        b"1001,Alpha Distribution,A-1,10.00,EUR,1,in_stock,01.01.2026 08:00\r\n"
    )
    data, _, _ = run(
        catalog, "standard", "csv", criteria=Criteria(suppliers="all", include=["1001"])
    )
    line = zipfile.ZipFile(io.BytesIO(data)).read("product.csv").split(b"\r\n", 1)[1]
    assert (
        line
        == (
            '1001,4000000000001,SKU-1,Hewlett-Packard,Mäuse,MOU,"Kabel, 2 m ""lang""\r\nzweite Zeile",'
            ' Rand ,"Lang 1\nmit Zeilenumbruch",1,new,,0.100,19010203,01.01.2026 08:00,01.01.2026 08:00\r\n'
        ).encode()
    )


def test_csv_excel_variant(catalog):
    data, _, _ = run(catalog, "standard", "csv", options={"csv_variant": "excel"})
    raw = zipfile.ZipFile(io.BytesIO(data)).read("supplierItem.csv")
    assert raw.startswith(b"\xef\xbb\xbfpuid;supplier;")
    assert b"\r\n1001;Alpha Distribution;A-1;10,00;EUR;1;in_stock;new;01.01.2026 08:00\r\n" in raw
    files = read_zip_csv(data, excel=True)
    assert files["product.csv"][0]["weight"] == "0,100"
    assert files["product.csv"][0]["name"] == 'ThinkPad 1, "Büro" Modell'


def test_limit_cut_is_listed_in_log_csv(catalog):
    data, stats, job = run(catalog, "standard", "csv", limit=5)
    files = read_zip_csv(data)
    assert [int(r["puid"]) for r in files["product.csv"]] == [1001, 1002, 1003, 1004, 1005]
    assert {int(r["puid"]) for r in files["supplierItem.csv"]} == {1001, 1002, 1003, 1004, 1005}
    assert [(int(r["puid"]), r["reason"]) for r in files["Log.csv"]] == [
        (p, "over the product limit of 5") for p in range(1006, 1021)
    ]
    assert stats.product_count == 5 and job.omitted == 15


def test_error_txt_only_when_errors_occurred(catalog):
    job = make_job(catalog, "standard", "csv")
    job.errors.append("Image host unreachable; image URLs left empty.")
    buf = io.BytesIO()
    registry.get_writer("standard", "csv").write(job, buf)
    with zipfile.ZipFile(buf) as zf:
        assert zf.namelist()[-1] == "ERROR.txt"
        assert zf.read("ERROR.txt") == b"Image host unreachable; image URLs left empty.\r\n"
    data, _, _ = run(catalog, "standard", "csv")
    assert "ERROR.txt" not in zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_error_txt_says_when_products_were_left_out(catalog):
    """Issue 11 §2.5: ERROR.txt was promised but nothing ever wrote it."""
    job = make_job(catalog, "developer", "csv", limit=5)
    job.errors.append("Something else went wrong.")
    buf = io.BytesIO()
    registry.get_writer("developer", "csv").write(job, buf)
    with zipfile.ZipFile(buf) as zf:
        assert zf.namelist()[-2:] == ["Log.csv", "ERROR.txt"]
        assert zf.read("ERROR.txt").decode().splitlines() == [
            "15 of 20 products that matched were left out: over the product limit of 5 "
            "(see Log.csv).",
            "Something else went wrong.",
        ]


def test_zip_members_are_regular_files(catalog):
    """Issue 11 §2.5: no file type bits, so zipinfo showed ``?rw-r--r--``."""
    import stat

    data, _, _ = run(catalog, "developer", "csv", limit=5)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "ERROR.txt" in zf.namelist()
        for info in zf.infolist():
            mode = info.external_attr >> 16
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, info.filename
            assert stat.filemode(mode) == "-rw-r--r--"


def test_developer_csv_has_every_entity(catalog):
    files = read_zip_csv(run(catalog, "developer", "csv")[0])
    assert list(files) == [
        "product.csv",
        "productText.csv",
        "supplierItem.csv",
        "manufacturer.csv",
        "productType.csv",
        "supplier.csv",
        "Log.csv",
    ]
    assert len(files["product.csv"]) == 20
    assert len(files["productText.csv"]) == ProductText.select().count() == 30
    assert len(files["supplierItem.csv"]) == SupplierItem.select().count()
    assert [r["name"] for r in files["supplier.csv"]] == ["Alpha Distribution", "Gamma Großhandel"]
    assert [r["groupCode"] for r in files["productType.csv"]] == ["NBK", "MOU"]
    assert files["product.csv"][1]["imageExportable"] == "true"


def test_long_descriptions_switch(catalog):
    files = read_zip_csv(run(catalog, "standard", "csv", long_descriptions=False)[0])
    assert "longDescription" not in files["product.csv"][0]
    product = json.loads(
        run(catalog, "standard", "jsonl", long_descriptions=False)[0].splitlines()[0]
    )
    assert "longDescription" not in product and product["shortDescription"] == "Kurz 1"


# --- JSON, JSON Lines, XML -----------------------------------------------------------------


def test_json_document_streams_the_same_products(catalog):
    data, _, _ = run(catalog, "standard", "json", limit=12, language="en")
    doc = json.loads(data)
    assert doc["meta"]["productCount"] == 12 and doc["meta"]["omittedCount"] == 8
    assert doc["meta"]["created"] == "2026-01-02T03:04:05Z"
    assert [entry["puid"] for entry in doc["log"]] == list(range(1013, 1021))
    want = expected_products("en", "de", limit=12)
    assert [p["puid"] for p in doc["product"]] == [w["puid"] for w in want]
    for p, w in zip(doc["product"], want, strict=True):
        assert (p["name"], p["shortDescription"], p["imageUrl"]) == (
            w["name"],
            w["shortDescription"],
            w["imageUrl"],
        )
        assert p["updated"] == w["updated"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert [
            (o["supplier"], o["supplierSku"], o["price"], o["stock"]) for o in p["supplierItem"]
        ] == w["offers"]
        assert all("puid" not in o for o in p["supplierItem"])


def test_json_lines_one_product_per_line(catalog):
    data, _, _ = run(catalog, "standardUpdate", "jsonl")
    lines = data.decode().splitlines()
    assert len(lines) == 20 and data.endswith(b"\n")
    decoded = [msgspec.json.decode(line) for line in lines]
    assert [d["puid"] for d in decoded] == list(range(1001, 1021))
    assert decoded[19]["supplierItem"] == []
    assert set(decoded[0]) == {"puid", "ean", "manufacturerSku", "supplierItem"}


def test_developer_json_lines_wrap_each_entity(catalog):
    lines = [json.loads(x) for x in run(catalog, "developer", "jsonl")[0].splitlines()]
    kinds = [next(iter(x)) for x in lines]
    assert kinds == ["manufacturer"] * 3 + ["productType"] * 2 + ["supplier"] * 2 + ["product"] * 20
    first = lines[7]["product"]
    assert [t["lang"] for t in lines[8]["product"]["productText"]] == ["de", "en"]
    assert first["supplierItem"][0]["supplierId"] == 1


def test_xml_parses_and_matches(catalog):
    data, _, _ = run(catalog, "standard", "xml", language="en")
    records = xml_records(data)
    want = expected_products("en", "de")
    assert [int(r["puid"]) for r in records] == [w["puid"] for w in want]
    for r, w in zip(records, want, strict=True):
        assert r["name"] == w["name"]
        assert r.get("imageUrl") == w["imageUrl"]
        assert r["longDescription"] == w["longDescription"]
        got = [
            (o["supplier"], o["supplierSku"], o.get("price"), o["stock"])
            for o in r.get("supplierItem", [])
        ]
        assert got == [
            (s, k, None if p is None else f"{p:.2f}", str(st)) for s, k, p, st in w["offers"]
        ]


@pytest.mark.parametrize("profile,output", ALL_PAIRS)
def test_fast_and_generic_paths_write_the_same_bytes(catalog, profile, output):
    ProductText.update(name="Tab\tNUL\x00 & <b> \r\n 😀 \u2028 \u2029").where(
        ProductText.product == 1003
    ).execute()
    # Issue 11 §2.4: year 1 (strftime does not pad it) and figures SQLite cannot print exactly.
    Product.update(created=datetime(1, 1, 1), updated=datetime(1, 2, 3, 4, 5, 6)).where(
        Product.puid == 1002
    ).execute()
    Product.update(weight=1.5e17).where(Product.puid == 1005).execute()
    Product.update(weight=99_999_999_999.999).where(Product.puid == 1006).execute()
    for puid, price in [(1001, 1e15), (1002, 1234567890123456.7), (1003, 1e300), (1004, 1e11)]:
        SupplierItem.update(price=price).where(SupplierItem.product == puid).execute()
    SupplierItem.update(price=99_999_999_999.99, updated=datetime(1, 1, 1)).where(
        SupplierItem.product == 1006
    ).execute()
    generic = run(catalog, profile, output, limit=17, language="en", tuning={"generic_path": True})[
        0
    ]
    for tuning in (
        {"workers": 1},
        {"workers": 2, "parallel_chunk": 3, "parallel_min": 0},
        {"workers": 2, "parallel_chunk": 4, "parallel_min": 0, "worker_threads": True},
        {"workers": 1, "no_index_order": True},
    ):
        fast = run(catalog, profile, output, limit=17, language="en", tuning=tuning)[0]
        if output == "csv":
            fz, gz = zipfile.ZipFile(io.BytesIO(fast)), zipfile.ZipFile(io.BytesIO(generic))
            assert fz.namelist() == gz.namelist()
            for name in fz.namelist():
                assert fz.read(name) == gz.read(name), (name, tuning)
        else:
            assert fast == generic, tuning


@pytest.mark.parametrize("output", ["csv", "jsonl"])
def test_cancel_stops_the_parallel_path(catalog, output):
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    job = make_job(
        catalog,
        "standard",
        output,
        cancelled=cancelled,
        tuning={"workers": 2, "parallel_chunk": 2, "parallel_min": 0},
    )
    with pytest.raises(Cancelled):
        registry.get_writer("standard", output).write(job, io.BytesIO())


@pytest.mark.parametrize("profile,output", ALL_PAIRS)
def test_cancel_stops_every_writer(catalog, profile, output):
    job = make_job(catalog, profile, output, cancelled=lambda: True)
    with pytest.raises(Cancelled):
        registry.get_writer(profile, output).write(job, io.BytesIO())


@pytest.mark.parametrize("profile,output", ALL_PAIRS)
def test_progress_reaches_the_total(catalog, profile, output):
    seen = []
    run(catalog, profile, output, progress=seen.append)
    assert seen and seen[-1] == 20 and seen == sorted(seen)


def test_empty_selection_still_writes_valid_files(catalog):
    nothing = Criteria(suppliers="all", include=["no-such-sku"])
    assert read_zip_csv(run(catalog, "standard", "csv", criteria=nothing)[0])["product.csv"] == []
    assert json.loads(run(catalog, "developer", "json", criteria=nothing)[0])["product"] == []
    assert run(catalog, "standard", "jsonl", criteria=nothing)[0] == b""
    assert xml_records(run(catalog, "standard", "xml", criteria=nothing)[0]) == []


def test_tuning_comes_from_the_environment_and_is_never_an_option(catalog):
    from tuiexport.exporters import tuning
    from tuiexport.exporters.base import stored_options

    assert tuning.from_env({}) == tuning.Tuning()
    assert tuning.from_env({tuning.ENV: '{"workers": 1, "generic_path": true}'}) == tuning.Tuning(
        workers=1, generic_path=True
    )
    with pytest.raises(ValueError, match=r"^TUIEXPORT_TUNING is not a valid tuning object: "):
        tuning.from_env({tuning.ENV: '{"workers": "two"}'})
    # Knobs stored in a definition by an older version are ignored at run time, not obeyed.
    assert stored_options({"workers": 2, "csv_variant": "excel"}).csv_variant == "excel"
    with pytest.raises(ValueError, match="export options are invalid"):
        stored_options({"csv_variant": "exel"})


@pytest.mark.parametrize("generic", [False, True])
def test_year_one_is_padded_and_unprintable_figures_are_null(catalog, generic):
    """Issue 11 §2.4: ``1-01-01T00:00:00Z`` / ``01.01.1 00:00`` on the generic path; prices
    past what SQLite prints exactly came out differently on the two paths."""
    Product.update(updated=datetime(1, 2, 3, 4, 5, 6), weight=1e16).where(
        Product.puid == 1001
    ).execute()
    SupplierItem.update(price=1e15).where(SupplierItem.product == 1001).execute()
    SupplierItem.update(price=99_999_999_999.99).where(SupplierItem.product == 1002).execute()
    tuning = {"generic_path": generic}
    first = json.loads(run(catalog, "standard", "jsonl", tuning=tuning)[0].splitlines()[0])
    assert first["updated"] == "0001-02-03T04:05:06Z"
    assert first["weight"] is None and first["supplierItem"][0]["price"] is None
    second = json.loads(run(catalog, "standard", "jsonl", tuning=tuning)[0].splitlines()[1])
    assert second["supplierItem"][0]["price"] == 99_999_999_999.99
    files = read_zip_csv(run(catalog, "standard", "csv", tuning=tuning)[0])
    assert files["product.csv"][0]["updated"] == "03.02.0001 04:05"
    assert files["product.csv"][0]["weight"] == ""
    assert [r["price"] for r in files["supplierItem.csv"][:2]] == ["", "99999999999.99"]
    records = xml_records(run(catalog, "standard", "xml", tuning=tuning)[0])
    assert records[0]["updated"] == "0001-02-03T04:05:06Z" and "weight" not in records[0]


def test_xml_timestamps_stored_in_other_forms_come_out_alike(catalog):
    """The fast path turns the stored ``YYYY-MM-DD HH:MM:SS`` into ISO 8601 itself and leaves
    other forms (fractions of a second, an offset written by another tool) to strftime."""
    from tuiexport import db as dbmod

    Product.update(updated=datetime(2024, 1, 2, 3, 4, 5, 678901)).where(
        Product.puid == 1001
    ).execute()
    dbmod.database.execute_sql(
        "UPDATE supplier_item SET updated = '2024-05-06T07:08:09+02:00' WHERE product_id = 1002"
    )
    fast = run(catalog, "standard", "xml", tuning={"workers": 1})[0]
    records = xml_records(fast)
    assert records[0]["updated"] == "2024-01-02T03:04:05Z"
    assert records[1]["supplierItem"][0]["updated"] == "2024-05-06T05:08:09Z"
    assert records[2]["updated"].endswith("Z") and "T" in records[2]["updated"]


@pytest.mark.parametrize("generic", [False, True])
def test_json_lines_escape_the_unicode_line_separators(catalog, generic):
    """Issue 11 §2.5: U+2028 / U+2029 raw in a JSON Lines file split a record for readers that
    split on every Unicode line break."""
    from tuiexport.models import Manufacturer

    ProductText.update(name="a\u2028b\u2029c").where(ProductText.product == 1001).execute()
    Manufacturer.update(name="Len\u2028ovo").where(Manufacturer.id == 1).execute()
    tuning = {"generic_path": generic}
    for profile, count in (("standard", 20), ("developer", 27)):
        data = run(catalog, profile, "jsonl", tuning=tuning)[0]
        assert "\u2028".encode() not in data and "\u2029".encode() not in data
        lines = data.decode().splitlines()  # splits on U+2028 / U+2029 too
        assert len(lines) == count
        records = [json.loads(line) for line in lines]
        names = [r.get("name") for r in records] + [
            r.get("product", {}).get("productText", [{}])[0].get("name") for r in records
        ]
        assert "a\u2028b\u2029c" in names
    assert b'"name":"Len\\u2028ovo"' in data
