"""BMEcat 1.2: valid against the official XML Schema, in the standard's order, with our data."""

from __future__ import annotations

import pytest
from lxml import etree

from tests import tiny_catalog
from tests.exporters_harness import run
from tuiexport.formats import bmecat12_schema
from tuiexport.models import Product, ProductText, SupplierItem
from tuiexport.selection import Criteria

NS = "{http://www.bmecat.org/XMLSchema/1.2/bmecat_new_catalog}"


def schema() -> etree.XMLSchema:
    """The schema copy the product ships and validates with."""
    return bmecat12_schema()


def validated(data: bytes) -> etree._Element:
    doc = etree.fromstring(data)
    s = schema()
    assert s.validate(doc), "\n".join(str(e) for e in s.error_log)
    return doc


def local(el) -> str:
    return etree.QName(el).localname


def articles(doc) -> dict[str, etree._Element]:
    return {a.findtext(f"{NS}SUPPLIER_AID"): a for a in doc.iter(f"{NS}ARTICLE")}


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return empty_db


def test_the_schema_is_found_and_rejects_a_broken_document():
    bad = etree.fromstring(
        b'<BMECAT version="1.2" xmlns="http://www.bmecat.org/XMLSchema/1.2/bmecat_new_catalog">'
        b"<T_NEW_CATALOG/></BMECAT>"
    )
    assert not schema().validate(bad)


def test_valid_and_in_the_standards_order(catalog):
    data, stats, job = run(catalog, "bmecat12", "xml", language="en")
    doc = validated(data)
    assert local(doc) == "BMECAT" and doc.get("version") == "1.2"
    assert [local(c) for c in doc] == ["HEADER", "T_NEW_CATALOG"]
    assert [local(c) for c in doc[0]] == ["GENERATOR_INFO", "CATALOG", "BUYER", "SUPPLIER"]
    assert doc.findtext(f"{NS}HEADER/{NS}CATALOG/{NS}LANGUAGE") == "eng"
    body = [local(c) for c in doc[1]]
    first_map = body.index("ARTICLE_TO_CATALOGGROUP_MAP")
    assert body[0] == "CATALOG_GROUP_SYSTEM"
    assert set(body[1:first_map]) == {"ARTICLE"}
    assert set(body[first_map:]) == {"ARTICLE_TO_CATALOGGROUP_MAP"}
    # 1020 has no offer, 1007 no price: BMEcat needs a price per article.
    assert sorted(articles(doc)) == sorted(
        str(p) for p in range(1001, 1021) if p not in (1007, 1020)
    )
    assert stats.product_count == 18 and stats.skipped == 2
    assert any("2 products without a net price were left out" in m for m in job.messages)
    groups = {
        s.findtext(f"{NS}GROUP_ID"): s.get("type") for s in doc.iter(f"{NS}CATALOG_STRUCTURE")
    }
    assert groups == {"root": "root", "1": "leaf", "2": "leaf"}
    maps = {
        (m.findtext(f"{NS}ART_ID"), m.findtext(f"{NS}CATALOG_GROUP_ID"))
        for m in doc.iter(f"{NS}ARTICLE_TO_CATALOGGROUP_MAP")
    }
    assert ("1001", "2") in maps and ("1002", "1") in maps and len(maps) == 18


def test_article_content(catalog):
    doc = validated(run(catalog, "bmecat12", "xml", language="en")[0])
    a = articles(doc)
    d = a["1004"].find(f"{NS}ARTICLE_DETAILS")
    assert d.findtext(f"{NS}DESCRIPTION_SHORT") == "Mouse 4"
    assert d.findtext(f"{NS}DESCRIPTION_LONG") == "Lang 4\nmit Zeilenumbruch"  # German fallback
    assert d.findtext(f"{NS}EAN") == "4000000000004"
    assert d.findtext(f"{NS}MANUFACTURER_AID") == "SKU-4"
    assert d.findtext(f"{NS}MANUFACTURER_NAME") == "Hewlett-Packard"
    price = a["1004"].find(f"{NS}ARTICLE_PRICE_DETAILS/{NS}ARTICLE_PRICE")
    assert price.get("price_type") == "net_list"
    assert price.findtext(f"{NS}PRICE_AMOUNT") == "20.00"  # the lower of 40.00 and 20.00
    assert price.findtext(f"{NS}PRICE_CURRENCY") == "EUR"
    # Images only where they may be exported (even puids in the tiny catalog).
    assert (
        a["1004"].findtext(f"{NS}MIME_INFO/{NS}MIME/{NS}MIME_SOURCE")
        == "https://img.example.com/1004.jpg"
    )
    assert a["1003"].find(f"{NS}MIME_INFO") is None


def test_long_texts_are_cut_and_empty_ones_replaced(catalog):
    ProductText.update(name="Ä" * 200, long_description="x" * 70_000).where(
        ProductText.product == 1001, ProductText.lang == "de"
    ).execute()
    ProductText.update(name="\x01\x02 ", short_description="").where(
        ProductText.product == 1002
    ).execute()
    Product.update(ean="12345678901234567").where(Product.puid == 1003).execute()
    doc = validated(run(catalog, "bmecat12", "xml")[0])
    a = articles(doc)
    assert a["1001"].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_SHORT") == "Ä" * 80
    assert len(a["1001"].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_LONG")) == 64_000
    assert a["1002"].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_SHORT") == "SKU-2"
    assert a["1003"].find(f"{NS}ARTICLE_DETAILS/{NS}EAN") is None


@pytest.mark.parametrize(
    "tuning", [{"workers": 1}, {"workers": 2, "parallel_chunk": 3, "parallel_min": 0}]
)
def test_forbidden_characters_are_stripped_before_texts_are_measured_and_cut(catalog, tuning):
    """The articles are escaped per chunk; a text with characters XML 1.0 forbids still counts
    only what remains: cut after stripping, blank when nothing else is left, and the rest of its
    chunk unchanged."""
    for puid, name in [
        (1001, "a" * 79 + "\x01bc"),  # cut: the forbidden character does not count
        (1002, "\x02" * 3 + " <&> \r"),  # short: stripped, escaped
        (1003, " " * 85 + "\x01"),  # blank once stripped, even past the cut: the SKU
        (1004, "\x1f\x0b"),  # forbidden white space only: the SKU
        (1005, "Ok \uffff€"),
    ]:
        ProductText.update(name=name).where(
            ProductText.product == puid, ProductText.lang == "de"
        ).execute()
    Product.update(manufacturer_sku="S\x01KU").where(Product.puid == 1006).execute()
    a = articles(validated(run(catalog, "bmecat12", "xml", tuning=tuning)[0]))
    short = {p: a[p].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_SHORT") for p in a}
    assert short["1001"] == "a" * 79 + "b"
    assert short["1002"] == " <&> \r"  # the CR written as &#13;
    assert short["1003"] == "SKU-3" and short["1004"] == "SKU-4"
    assert short["1005"] == "Ok €"
    assert a["1006"].findtext(f"{NS}ARTICLE_DETAILS/{NS}MANUFACTURER_AID") == "SKU"
    assert short["1008"] == "Maus 8"


def test_long_descriptions_off_writes_no_description_long(catalog):
    """Issue 11 §2.3: the switch off left DESCRIPTION_LONG in (filled from the short text)."""
    on = validated(run(catalog, "bmecat12", "xml")[0])
    assert articles(on)["1005"].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_LONG") == (
        "Lang 5\nmit Zeilenumbruch"
    )
    doc = validated(run(catalog, "bmecat12", "xml", long_descriptions=False)[0])
    assert len(articles(doc)) == 18
    assert not list(doc.iter(f"{NS}DESCRIPTION_LONG"))
    assert articles(doc)["1005"].findtext(f"{NS}ARTICLE_DETAILS/{NS}DESCRIPTION_SHORT") == "Maus 5"


def test_used_and_refurbished_products_carry_their_article_status(catalog):
    """Issue 11 §2.3: used or refurbished products looked new."""
    Product.update(condition="refurbished").where(Product.puid == 1006).execute()
    doc = validated(run(catalog, "bmecat12", "xml")[0])
    a = articles(doc)
    status = {
        puid: [(s.get("type"), s.text) for s in art.iter(f"{NS}ARTICLE_STATUS")]
        for puid, art in a.items()
    }
    assert status["1005"] == [("used", "used")] and status["1010"] == [("used", "used")]
    assert status["1006"] == [("refurbished", "refurbished")]
    assert all(not v for k, v in status.items() if k not in ("1005", "1006", "1010", "1015"))
    # The schema's place: the last child of ARTICLE_DETAILS.
    assert local(a["1005"].find(f"{NS}ARTICLE_DETAILS")[-1]) == "ARTICLE_STATUS"


def test_a_sub_cent_price_keeps_its_precision(catalog):
    """Issue 11 §2.3: 0.001 became PRICE_AMOUNT 0.00, a free article."""
    SupplierItem.update(price=0.001).where(SupplierItem.product == 1001).execute()
    SupplierItem.update(price=12.345).where(SupplierItem.product == 1002).execute()
    SupplierItem.update(price=1e16).where(SupplierItem.product == 1003).execute()
    doc = validated(run(catalog, "bmecat12", "xml")[0])
    a = articles(doc)

    def amount(puid: str) -> str:
        return a[puid].findtext(f"{NS}ARTICLE_PRICE_DETAILS/{NS}ARTICLE_PRICE/{NS}PRICE_AMOUNT")

    assert amount("1001") == "0.001" and amount("1002") == "12.345"
    assert amount("1003") == "10000000000000000.00" and amount("1004") == "20.00"


def test_a_manufacturer_sku_longer_than_50_leaves_the_article_out(catalog):
    """Issue 11 §2.3: the SKU was cut into a different identifier."""
    Product.update(manufacturer_sku="X" * 50).where(Product.puid == 1001).execute()
    Product.update(manufacturer_sku="Y" * 51).where(Product.puid == 1002).execute()
    data, stats, job = run(catalog, "bmecat12", "xml")
    doc = validated(data)
    a = articles(doc)
    assert a["1001"].findtext(f"{NS}ARTICLE_DETAILS/{NS}MANUFACTURER_AID") == "X" * 50
    assert "1002" not in a and b"YYYYY" not in data
    assert "1002" not in {
        m.findtext(f"{NS}ART_ID") for m in doc.iter(f"{NS}ARTICLE_TO_CATALOGGROUP_MAP")
    }
    assert stats.product_count == 17 and stats.skipped == 3
    assert any("2 products without a net price were left out" in m for m in job.messages)
    assert (
        "1 product with a manufacturer SKU longer than 50 characters was left out of the BMEcat "
        "file (MANUFACTURER_AID holds 50; a shortened SKU would be a different article number)."
    ) in job.messages
    # The same on the worker processes (the rule is applied per chunk).
    par = run(
        catalog, "bmecat12", "xml", tuning={"workers": 2, "parallel_chunk": 3, "parallel_min": 0}
    )
    assert par[0] == data and par[2].messages == job.messages


def test_unknown_currencies_are_not_quoted(catalog):
    SupplierItem.update(currency="XYZ").where(SupplierItem.product == 1001).execute()
    SupplierItem.update(currency="USD").where(SupplierItem.product == 1002).execute()
    doc = validated(run(catalog, "bmecat12", "xml")[0])
    a = articles(doc)
    assert "1001" not in a
    assert (
        a["1002"].findtext(f"{NS}ARTICLE_PRICE_DETAILS/{NS}ARTICLE_PRICE/{NS}PRICE_CURRENCY")
        == "USD"
    )


def test_empty_selection_is_still_valid(catalog):
    validated(
        run(catalog, "bmecat12", "xml", criteria=Criteria(suppliers="all", include=["nothing"]))[0]
    )


def test_buyer_and_supplier_options_fill_the_header(catalog):
    from tuiexport import service

    saved = service.create_definition(
        "BMEcat parties", options={"bmecat_buyer": "ACME & Söhne", "bmecat_supplier": "Us"}
    )
    assert saved.options == {"bmecat_buyer": "ACME & Söhne", "bmecat_supplier": "Us"}
    doc = validated(
        run(catalog, "bmecat12", "xml", options={"bmecat_buyer": "ACME & Söhne" + "x" * 60})[0]
    )
    assert doc.findtext(f"{NS}HEADER/{NS}BUYER/{NS}BUYER_NAME") == ("ACME & Söhne" + "x" * 60)[:50]
    assert doc.findtext(f"{NS}HEADER/{NS}SUPPLIER/{NS}SUPPLIER_NAME") == "tuiexport"


def test_the_docs_table_is_the_mapping_the_writer_uses():
    from tuiexport.exporters import bmecat_mapping

    table = bmecat_mapping.markdown()
    for text in bmecat_mapping.ARTICLE_TEXTS:
        assert f"| `{text.path}` | {text.doc()} |" in table
        assert f"{text.most:,} characters" in table
    assert "GROUP_ID = the product type's id" in table


def test_the_workers_count_the_same_supplier_shares_and_write_the_same_file(catalog):
    serial, serial_stats, _ = run(catalog, "bmecat12", "xml", tuning={"workers": 1})
    parallel, stats, _ = run(
        catalog, "bmecat12", "xml", tuning={"workers": 2, "parallel_chunk": 3, "parallel_min": 0}
    )
    assert parallel == serial
    assert stats.supplier_shares == serial_stats.supplier_shares
    assert sum(stats.supplier_shares.values()) > 20  # every selected product's offers
