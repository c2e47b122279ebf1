"""The selection queries (offer masks, EXISTS, full-text look-ups, exclude lists subtracted,
the impact's one-pass counts) select exactly what a straightforward query selects.

Many random rule combinations on a demo catalog built in tmp_path (SQLite) and on a throw-away
PostgreSQL cluster; the reference is written from the rules' meaning, without the masks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.pg_cluster import running_cluster
from tests.shared_catalog import make_catalog
from tuiexport import db as dbmod
from tuiexport import selection as sel
from tuiexport import service, setup
from tuiexport.models import Product, tuples
from tuiexport.schema import FTS_TABLE
from tuiexport.selection import Criteria

PRODUCTS = 1500
#: A supplier without a bit in the offer masks (ids from 63 on): its rules take the EXISTS path.
BIG_SUPPLIER = 100
WORDS = ["usb", "notebook", "samsung", "kabel", "hdmi adapter", "grau", "maus usb", "zzqx"]


def _catalog(target: str) -> Any:
    make_catalog(target, PRODUCTS)
    database = setup.prepare_database(target, load_sample=False)
    sqlite = dbmod.is_sqlite()
    database.execute_sql(
        f"INSERT INTO supplier (id, name, partner) VALUES ({BIG_SUPPLIER}, 'Big id', "
        f"{'1' if sqlite else 'TRUE'})"
    )
    # Offers of the big-id supplier: a copy of supplier 1's for every third product.
    third = "product_id % 3 = 0" if sqlite else "mod(product_id, 3) = 0"
    database.execute_sql(
        "INSERT INTO supplier_item (product_id, supplier_id, supplier_sku, price, currency, "
        f"stock, stock_status, condition, updated) SELECT product_id, {BIG_SUPPLIER}, "
        "supplier_sku, price, currency, stock, stock_status, condition, updated "
        f"FROM supplier_item WHERE supplier_id = 1 AND {third}"
    )
    return database


def _idents(database: Any, rng: random.Random) -> list[str]:
    rows = list(database.execute_sql("SELECT puid, ean, manufacturer_sku FROM product").fetchall())
    picked = []
    for row in rng.sample(rows, 40):
        value = row[rng.randrange(3)]
        picked.append(str(value if value is not None else row[0]))
    return [*picked, "0000000000000", "NO-SUCH-SKU"]


def random_criteria(rng: random.Random, idents: list[str], sqlite: bool) -> Criteria:
    kw: dict[str, Any] = {"suppliers": rng.choice(["partners", "all", "list"])}
    if kw["suppliers"] == "list":
        kw["supplier_ids"] = rng.sample([1, 2, 3, 4, 5, 7, 9, BIG_SUPPLIER], rng.randint(1, 3))
    elif kw["suppliers"] == "partners" and rng.random() < 0.3:
        kw["supplier_ids"] = [2]  # ignored unless the rule is "list"
    if rng.random() < 0.3:
        kw["manufacturer_ids"] = rng.sample(range(1, 30), rng.randint(1, 4))
    if rng.random() < 0.3:
        kw["product_type_ids"] = rng.sample(range(1, 40), rng.randint(1, 5))
    for flag in (
        "only_with_catalog_id",
        "only_in_stock",
        "only_new",
        "only_exportable_images",
        "only_with_price",
    ):
        kw[flag] = rng.random() < 0.35
    if rng.random() < 0.5:
        low = rng.choice([None, 0.0, 10.0, 50.0, 100.0, 500.0])
        high = rng.choice([None, 40.0, 200.0, 1000.0, 2000.0])
        if low is not None and high is not None and low > high:
            low, high = high, low
        kw["price_min"], kw["price_max"] = low, high
    if sqlite and rng.random() < 0.4:  # PostgreSQL matches text with LIKE (another meaning)
        kw["search"] = rng.choice(WORDS)
    if rng.random() < 0.2:
        kw["include"] = rng.sample(idents, rng.randint(1, 30))
    if rng.random() < 0.3:
        kw["exclude"] = rng.sample(idents, rng.randint(1, 30))
    if rng.random() < 0.2:
        kw["changed_since"] = datetime(rng.choice([2022, 2023, 2024]), rng.randint(1, 12), 1)
    return Criteria(**kw)


def reference(database: Any, c: Criteria) -> set[int]:
    """The products ``c`` selects, written from the rules' meaning: no masks, no tricks."""
    sqlite = dbmod.is_sqlite()
    mark = "?" if sqlite else "%s"
    where: list[str] = []
    params: list[Any] = []

    def listed(column: str, values: list[Any]) -> str:
        params.extend(values)
        return f"{column} IN ({', '.join([mark] * len(values))})"

    if c.manufacturer_ids:
        where.append(listed("p.manufacturer_id", c.manufacturer_ids))
    if c.product_type_ids:
        where.append(listed("p.product_type_id", c.product_type_ids))
    if c.only_with_catalog_id:
        where.append("p.qualification >= 1")
    if c.only_new:
        where.append("p.condition = 'new'")
    if c.only_exportable_images:
        where.append("p.image_exportable" + ("" if sqlite else " = TRUE"))
    if c.changed_since is not None:
        where.append(f"p.updated >= {mark}")
        params.append(c.changed_since)
    ranged = c.price_min is not None or c.price_max is not None
    if c.suppliers != "all" or c.only_in_stock or c.only_with_price or ranged:
        offer = ["s.product_id = p.puid"]
        if c.suppliers == "partners":
            offer.append("s.supplier_id IN (SELECT id FROM supplier WHERE partner)")
        elif c.suppliers == "list":
            offer.append(listed("s.supplier_id", c.supplier_ids))
        if c.only_in_stock:
            offer.append("s.stock > 0")
        if c.only_with_price or ranged:
            offer.append("s.price > 0")
        if c.price_min is not None:
            offer.append(f"s.price >= {mark}")
            params.append(c.price_min)
        if c.price_max is not None:
            offer.append(f"s.price <= {mark}")
            params.append(c.price_max)
        where.append(f"EXISTS (SELECT 1 FROM supplier_item s WHERE {' AND '.join(offer)})")
    if c.search:
        terms = sel._search_terms(c.search)
        where.append(f"p.puid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH {mark})")
        params.append(" AND ".join(f'"{t}"*' for t in terms))
    for items, negate in ((c.include, ""), (c.exclude, "NOT ")):
        if not items:
            continue
        digits = [int(i) for i in items if i.isdigit() and len(i) <= 18]
        one = [listed("q.ean", items), listed("q.manufacturer_sku", items)]
        if digits:
            one.append(listed("q.puid", digits))
        where.append(
            f"{negate}EXISTS (SELECT 1 FROM product q WHERE q.puid = p.puid AND "
            f"({' OR '.join(one)}))"
        )
    sql = "SELECT p.puid FROM product p" + (" WHERE " + " AND ".join(where) if where else "")
    return {puid for (puid,) in database.execute_sql(sql, params).fetchall()}


def members(c: Criteria) -> list[int]:
    return [puid for (puid,) in tuples(sel.product_query(c))]


def check(database: Any, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    sqlite = dbmod.is_sqlite()
    idents = _idents(database, rng)
    previous: tuple[Criteria, set[int]] | None = None
    for i in range(rounds):
        c = random_criteria(rng, idents, sqlite)
        expected = reference(database, c)
        got = members(c)
        assert got == sorted(got), c
        assert set(got) == expected, (i, c)
        assert sel.count(c) == len(expected), (i, c)
        assert [p for (p,) in tuples(sel.product_query(c, limit=7))] == sorted(expected)[:7]
        if previous is not None:
            other, other_set = previous
            both = len(expected & other_set)
            assert sel.count_both(c, other) == both, (i, c, other)
            only = sorted(expected - other_set)
            assert sel.first_only_in(c, other) == only[:3], (i, c, other)
        previous = (c, expected)


def test_many_rule_combinations_select_what_the_reference_selects(tmp_path):
    database = _catalog(str(tmp_path / "catalog.sqlite"))
    assert Product.select().count() == PRODUCTS
    check(database, seed=15, rounds=250)


def test_the_issue_selections_match_the_reference(tmp_path):
    database = _catalog(str(tmp_path / "catalog.sqlite"))
    five = Criteria(
        suppliers="all",
        only_in_stock=True,
        only_with_price=True,
        price_min=100,
        price_max=2000,
        search="notebook",
    )
    listed = _idents(database, random.Random(1))
    cases = [
        five,
        Criteria(suppliers="all", exclude=listed),
        Criteria(suppliers="all", include=listed),
        Criteria(suppliers="partners", exclude=listed, price_min=10, price_max=900),
        Criteria(**{**msgspec_dict(five), "exclude": listed}),
    ]
    for c in cases:
        expected = reference(database, c)
        assert expected, c  # each case selects something on this catalog
        assert sel.count(c) == len(expected) and set(members(c)) == expected, c
    impact = service.selection_impact(
        service.create_selection(five).id, Criteria(suppliers="all", exclude=listed)
    )
    after = reference(database, Criteria(suppliers="all", exclude=listed))
    before = reference(database, five)
    assert (impact.before, impact.after) == (len(before), len(after))
    assert (impact.gained, impact.lost) == (len(after - before), len(before - after))
    assert [p for p, _ in impact.gained_examples] == sorted(after - before)[:3]


def test_price_bounds_at_offer_prices_select_what_the_reference_selects(tmp_path):
    """A range decided by each product's lowest and highest price (all inside, all outside) or
    by its offers (prices on both sides of a bound): bounds exactly at offer prices, on products
    with offers at several prices, with every supplier and stock rule."""
    database = _catalog(str(tmp_path / "catalog.sqlite"))
    spread = database.execute_sql(
        "SELECT price_low, price_high FROM product WHERE price_low < price_high ORDER BY puid"
    ).fetchall()
    assert len(spread) > 50
    rng = random.Random(7)
    for low, high in rng.sample(spread, 60):
        middle = (low + high) / 2
        for price_min, price_max in ((low, high), (middle, None), (None, middle), (high, high)):
            for rules in (
                {"suppliers": "all"},
                {"suppliers": "partners", "only_in_stock": True},
                {"suppliers": "list", "supplier_ids": [2, BIG_SUPPLIER]},
                {"suppliers": "list", "supplier_ids": [1], "only_in_stock": True},
            ):
                c = Criteria(**rules, price_min=price_min, price_max=price_max)
                expected = reference(database, c)
                assert sel.count(c) == len(expected) and set(members(c)) == expected, c


def msgspec_dict(c: Criteria) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(c)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with running_cluster() as cluster:
        yield cluster.url


@pytest.mark.slow
def test_postgresql_selects_what_the_reference_selects(pg_url):
    database = _catalog(pg_url)
    try:
        check(database, seed=16, rounds=120)
    finally:
        dbmod.close_database()
