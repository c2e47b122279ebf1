"""Any product text survives every format (XML: minus the characters XML 1.0 forbids)."""

from __future__ import annotations

import io
import json
import zipfile

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests import tiny_catalog
from tests.exporters_harness import read_zip_csv, run, xml_records
from tests.test_bmecat import NS, schema
from tuiexport.exporters.text import strip_xml_forbidden
from tuiexport.models import ProductText
from tuiexport.selection import Criteria

ONE = Criteria(suppliers="all", include=["1001"])

tricky = st.sampled_from(
    [
        *"\",;'\r\n\t äöüßÄÖÜ€😀👩\u200d💻<>&]]>\x00\x01\x08\x0b\x0c\x1b\x1f\x7f\x85\u2028\ufeff\ufffe\uffff",
        "\r\n",
        '""',
        "&amp;",
        "]]>",
        "<![CDATA[",
        "-->",
    ]
)
# Lone surrogates cannot be stored (not UTF-8), so they cannot reach an export.
texts = st.lists(st.one_of(tricky, st.characters(codec="utf-8")), max_size=40).map("".join)

PROFILE_OUTPUTS = [
    (p, o) for p in ("standard", "developer") for o in ("csv", "json", "jsonl", "xml")
]


def set_texts(name: str, short: str, long: str) -> None:
    ProductText.update(name=name, short_description=short, long_description=long).where(
        ProductText.product == 1001, ProductText.lang == "de"
    ).execute()


def exported_texts(db, profile: str, output: str) -> tuple[str | None, str | None, str | None]:
    data = run(db, profile, output, criteria=ONE)[0]
    if output == "csv":
        files = read_zip_csv(data)
        rec = files["productText.csv" if profile == "developer" else "product.csv"][0]
    elif output in ("json", "jsonl"):
        if output == "json":
            product = json.loads(data)["product"][0]
        else:
            product = msgspec.json.decode(data.splitlines()[-1])
            product = product.get("product", product)
        rec = product["productText"][0] if profile == "developer" else product
    else:
        product = xml_records(data)[0]
        rec = product["productText"][0] if profile == "developer" else product
    return rec.get("name"), rec.get("shortDescription"), rec.get("longDescription")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=texts, short=texts, long=texts)
def test_any_text_survives_every_format(empty_db, name, short, long):
    if not ProductText.select().exists():
        tiny_catalog.build()
    set_texts(name, short, long)
    for profile, output in PROFILE_OUTPUTS:
        got = exported_texts(empty_db, profile, output)
        want = []
        for original in (name, short, long):
            if output == "xml":
                stripped = strip_xml_forbidden(original)
                # standard: an empty text is "missing" (fallback) -> element left out
                want.append(None if (profile == "standard" and original == "") else stripped)
            elif output == "csv":
                want.append(original)
            else:
                want.append(None if (profile == "standard" and original == "") else original)
        assert list(got) == want, (profile, output)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=texts, long=texts)
def test_any_text_keeps_bmecat_valid(empty_db, name, long):
    if not ProductText.select().exists():
        tiny_catalog.build()
    set_texts(name, "", long)
    data = run(empty_db, "bmecat12", "xml", criteria=ONE)[0]
    doc = etree.fromstring(data)
    assert schema().validate(doc), schema().error_log
    details = doc.find(f"{NS}T_NEW_CATALOG/{NS}ARTICLE/{NS}ARTICLE_DETAILS")
    clean = strip_xml_forbidden(name)
    assert details.findtext(f"{NS}DESCRIPTION_SHORT") == (clean[:80] if clean.strip() else "SKU-1")
    clean_long = strip_xml_forbidden(long)
    assert details.findtext(f"{NS}DESCRIPTION_LONG") == (clean_long if clean_long.strip() else None)


def test_csv_zip_is_readable_with_a_nul_in_a_text(empty_db):
    tiny_catalog.build()
    set_texts("a\x00b,c", "", "")
    data = run(empty_db, "standard", "csv", criteria=ONE)[0]
    raw = zipfile.ZipFile(io.BytesIO(data)).read("product.csv")
    assert b'"a\x00b,c"' in raw
