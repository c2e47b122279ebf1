"""Selection rules against a tiny catalog whose answers are known by hand."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests import tiny_catalog
from tuiexport import service
from tuiexport.models import Product
from tuiexport.selection import Criteria, CriteriaError, count, criteria_from_json, product_query


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return empty_db


def puids(c: Criteria) -> list[int]:
    return [p - 1000 for (p,) in product_query(c).tuples()]


CASES = [
    (Criteria(), list(range(1, 20))),  # partners: every product with an offer of supplier 1
    (Criteria(suppliers="all"), list(range(1, 21))),
    (Criteria(suppliers="list", supplier_ids=[3]), [4, 8, 12, 16]),
    (Criteria(suppliers="all", manufacturer_ids=[1]), [3, 6, 9, 12, 15, 18]),
    (Criteria(suppliers="all", product_type_ids=[2], manufacturer_ids=[1]), [3, 9, 15]),
    (Criteria(suppliers="all", only_with_catalog_id=True), [i for i in range(1, 21) if i % 4]),
    (Criteria(only_in_stock=True), [i for i in range(1, 20) if i % 3]),
    (
        Criteria(suppliers="all", only_in_stock=True),
        sorted({i for i in range(1, 20) if i % 3} | {12}),
    ),
    (Criteria(suppliers="all", only_new=True), [i for i in range(1, 21) if i % 5]),
    (Criteria(suppliers="all", only_exportable_images=True), list(range(2, 21, 2))),
    (Criteria(only_with_price=True), [i for i in range(1, 20) if i != 7]),
    (Criteria(suppliers="all", search="thinkpad"), [1, 4, 7, 10, 13, 16, 19]),
    (Criteria(suppliers="all", search="Büro"), [1, 4, 7, 10, 13, 16, 19]),
    (Criteria(suppliers="all", search="buro think"), [1, 4, 7, 10, 13, 16, 19]),
    (Criteria(suppliers="all", search="SKU-12"), [12]),
    (Criteria(suppliers="all", include=["SKU-3", "1005", "4000000000010"]), [3, 5, 10]),
    (Criteria(suppliers="all", exclude=["SKU-1", "1002"]), list(range(3, 21))),
    (Criteria(price_min=50, price_max=100), [5, 6, 8, 9, 10]),
    (Criteria(suppliers="all", changed_since=datetime(2026, 1, 15)), list(range(15, 21))),
    (
        Criteria(manufacturer_ids=[2], only_in_stock=True, only_with_price=True, search="thinkpad"),
        [1, 4, 10, 13, 16, 19],
    ),
]


@pytest.mark.parametrize("criteria,expected", CASES)
def test_rules_select_the_expected_products(catalog, criteria, expected):
    assert puids(criteria) == expected
    assert count(criteria) == len(expected)


def test_limit_keeps_first_n_by_puid(catalog):
    assert puids_limited(Criteria(suppliers="all"), 3) == [1, 2, 3]


def puids_limited(c, n):
    return [p - 1000 for (p,) in product_query(c, limit=n).tuples()]


def test_validation_reasons(catalog):
    c = Criteria(
        suppliers="list",
        supplier_ids=[1, 42],
        manufacturer_ids=[99],
        price_min=10,
        price_max=5,
        include=["ok", "two words"],
    )
    reasons = service.validate_criteria(c)
    text = " ".join(reasons)
    assert "Unknown supplier 42" in text
    assert "Unknown manufacturer 99" in text
    assert "minimum price 10 is above the maximum 5" in text
    assert "include list has 1 malformed entry" in text
    assert service.validate_criteria(Criteria(suppliers="list")) == [
        "The supplier rule is 'chosen suppliers' but no supplier is chosen."
    ]
    assert service.validate_criteria(Criteria()) == []


def test_auto_name_follows_rules_until_renamed(catalog):
    s = service.create_selection(
        Criteria(manufacturer_ids=[1, 2, 3], only_in_stock=True, search="maus")
    )
    assert s.name == "Partners · Lenovo, Hewlett-Packard +1 · in stock · “maus”"
    assert not s.name_custom
    s = service.update_selection(s.id, criteria=Criteria(suppliers="all", only_new=True))
    assert s.name == "All suppliers · new"
    s = service.update_selection(s.id, name="  Shop  feed ")
    assert s.name == "Shop feed" and s.name_custom
    s = service.update_selection(s.id, criteria=Criteria(suppliers="all"))
    assert s.name == "Shop feed"
    s = service.update_selection(s.id, name="")
    assert s.name == "All suppliers" and not s.name_custom


def test_criteria_json_errors_are_one_sentence():
    with pytest.raises(CriteriaError, match="not valid JSON"):
        criteria_from_json("{nope")
    with pytest.raises(CriteriaError, match="invalid: Object contains unknown field `colour`"):
        criteria_from_json('{"colour": "red"}')
    with pytest.raises(CriteriaError, match="Expected `int`"):
        criteria_from_json('{"manufacturer_ids": ["x"]}')
    assert criteria_from_json('{"suppliers": "all", "only_new": true}') == Criteria(
        suppliers="all", only_new=True
    )


def test_preview_shows_best_matching_offer(catalog):
    rows = service.preview(Criteria(suppliers="all"), n=5, language="en")
    assert [r.puid for r in rows] == [1001, 1002, 1003, 1004, 1005]
    assert rows[1].name == "Mouse 2"  # English text present
    assert rows[0].name == 'ThinkPad 1, "Büro" Modell'  # falls back to German
    assert rows[3].price == 20.0 and rows[3].stock == 1 + 7 and rows[3].offers == 2
    assert rows[0].manufacturer == "Hewlett-Packard" and rows[0].product_type == "Mäuse"


def test_impact_of_an_edit_gained_lost_and_each_export(catalog):
    from tuiexport import service

    saved = service.create_selection(Criteria(suppliers="all", manufacturer_ids=[1]))
    service.create_definition("Small", selection_id=saved.id, product_limit=5)
    service.create_definition("Big", selection_id=saved.id)
    edited = Criteria(suppliers="all", manufacturer_ids=[1, 2])
    impact = service.selection_impact(saved.id, edited)
    before, after = service.count_products(saved.criteria), service.count_products(edited)
    assert (impact.before, impact.after) == (before, after)
    assert impact.gained == after - before and impact.lost == 0
    # The examples are the first gained puids, with their names.
    gained = [
        p
        for (p,) in Product.select(Product.puid)
        .where(Product.manufacturer == 2)
        .order_by(Product.puid)
        .limit(3)
        .tuples()
    ]
    assert [puid for puid, _ in impact.gained_examples] == gained
    assert all(name for _, name in impact.gained_examples)
    assert [(e.name, e.limit, e.before, e.after) for e in impact.exports] == [
        ("Big", 200_000, before, after),
        ("Small", 5, before, after),
    ]
    narrower = service.selection_impact(saved.id, Criteria(suppliers="all", manufacturer_ids=[2]))
    assert narrower.lost == before and narrower.gained == service.count_products(
        Criteria(suppliers="all", manufacturer_ids=[2])
    )
    broken = service.selection_impact(saved.id, Criteria(suppliers="all", price_min=9, price_max=1))
    assert broken.reasons and all(e.turns_invalid for e in broken.exports)
