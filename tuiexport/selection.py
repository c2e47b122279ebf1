"""Product selection criteria: the rules, their validation, their name, and their one SQL query."""

from __future__ import annotations

import functools
import operator
import re
from datetime import datetime
from typing import Annotated, Literal, NamedTuple

import msgspec
import peewee as pw

from tuiexport import db as dbmod
from tuiexport.errors import UserError
from tuiexport.models import (
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
    tuples,
)
from tuiexport.schema import FTS_TABLE, MASK_BITS

#: An id as the database stores it: a 64-bit integer (a bigger one cannot match anything and
#: would overflow the query parameter).
DbId = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Criteria(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """The rules of a product selection. Empty lists mean "all"."""

    #: "partners": offered by one of my partner suppliers; "all": no supplier rule;
    #: "list": offered by one of ``supplier_ids``.
    suppliers: Literal["partners", "all", "list"] = "partners"
    supplier_ids: list[DbId] = []
    manufacturer_ids: list[DbId] = []
    product_type_ids: list[DbId] = []
    # The five quality switches of the original.
    only_with_catalog_id: bool = False
    only_in_stock: bool = False
    only_new: bool = False
    only_exportable_images: bool = False
    only_with_price: bool = False
    #: Free text matched against names (every language), manufacturer SKU and EAN.
    search: str = ""
    #: When not empty, only products whose puid, EAN or manufacturer SKU is listed.
    include: list[str] = []
    #: Products whose puid, EAN or manufacturer SKU is listed are never selected.
    exclude: list[str] = []
    #: Net price range of a matching offer (from a selected supplier).
    price_min: float | None = None
    price_max: float | None = None
    #: Only products changed at or after this time (UTC).
    changed_since: datetime | None = None


class CriteriaError(UserError):
    """Criteria JSON that cannot be read; the message is one sentence."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Criteria)


def criteria_to_json(criteria: Criteria) -> str:
    return _encoder.encode(criteria).decode()


def criteria_from_json(text: str | bytes) -> Criteria:
    """Parse criteria JSON; raises :class:`CriteriaError` with a readable sentence."""
    try:
        return _decoder.decode(text or b"{}")
    except msgspec.ValidationError as exc:
        raise CriteriaError(f"The selection criteria are invalid: {exc}.") from exc
    except msgspec.DecodeError as exc:
        raise CriteriaError(f"The selection criteria are not valid JSON: {exc}.") from exc


# --- validation ----------------------------------------------------------------------------

_IDENT = re.compile(r"^\S{1,64}$")


class KnownIds(NamedTuple):
    """Every supplier, manufacturer and product type id, read once to validate many selections."""

    supplier: frozenset[int]
    manufacturer: frozenset[int]
    product_type: frozenset[int]


#: The catalog tables criteria refer to by id.
_IdModel = type[Supplier] | type[Manufacturer] | type[ProductType]


def known_ids() -> KnownIds:
    def ids(model: _IdModel) -> frozenset[int]:
        return frozenset(i for (i,) in tuples(model.select(model.id)))

    return KnownIds(ids(Supplier), ids(Manufacturer), ids(ProductType))


def _missing(model: _IdModel, ids: list[int], known: frozenset[int] | None) -> list[int]:
    if not ids:
        return []
    if known is None:
        known = frozenset(row[0] for row in tuples(model.select(model.id).where(model.id.in_(ids))))
    return sorted(set(ids) - known)


def validate_criteria(c: Criteria, known: KnownIds | None = None) -> list[str]:
    """Reasons why these criteria cannot select products; empty when they are valid.

    Pass ``known`` (from :func:`known_ids`) when validating many selections at once."""
    reasons: list[str] = []
    if c.suppliers == "list" and not c.supplier_ids:
        reasons.append("The supplier rule is 'chosen suppliers' but no supplier is chosen.")
    for label, model, ids, field in (
        ("supplier", Supplier, c.supplier_ids if c.suppliers == "list" else [], "supplier"),
        ("manufacturer", Manufacturer, c.manufacturer_ids, "manufacturer"),
        ("product type", ProductType, c.product_type_ids, "product_type"),
    ):
        missing = _missing(model, ids, getattr(known, field) if known else None)
        if missing:
            plural = "s" if len(missing) > 1 else ""
            listed = ", ".join(map(str, missing[:10]))
            reasons.append(f"Unknown {label}{plural} {listed} (deleted from the catalog?).")
    if c.price_min is not None and c.price_min < 0:
        reasons.append("The minimum price is negative.")
    if c.price_min is not None and c.price_max is not None and c.price_min > c.price_max:
        reasons.append(f"The minimum price {c.price_min:g} is above the maximum {c.price_max:g}.")
    for label, items in (("include", c.include), ("exclude", c.exclude)):
        bad = [item for item in items if not _IDENT.match(item)]
        if bad:
            reasons.append(
                f"The {label} list has {len(bad)} malformed entr{'y' if len(bad) == 1 else 'ies'} "
                f"(first: {bad[0]!r}); use one puid, EAN or SKU per entry, without spaces."
            )
    if c.search and not _search_terms(c.search):
        reasons.append("The search text has no searchable word.")
    return reasons


# --- the query -----------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _search_terms(text: str) -> list[str]:
    return _WORD.findall(text)[:16]


def _ident_match(items: list[str]) -> pw.Expression:
    """Products whose puid, EAN or manufacturer SKU is one of ``items``.

    On SQLite each list is one JSON parameter read by ``json_each`` (three ``IN`` lists of a
    thousand parameters each cost more to bind than to look up, and a long list would pass
    SQLite's limit of 32,766 parameters); each ``IN`` is then a few index look-ups."""
    puids = [int(item) for item in items if item.isdigit() and len(item) <= 18]
    if dbmod.is_sqlite():
        texts = _json_values(items)
        expr = Product.ean.in_(texts) | Product.manufacturer_sku.in_(texts)
        if puids:
            expr = expr | Product.puid.in_(_json_values(puids))
        return expr
    expr = Product.ean.in_(items) | Product.manufacturer_sku.in_(items)
    if puids:
        expr = expr | Product.puid.in_(puids)
    return expr


def _json_values(values: list[str] | list[int]) -> pw.Select:
    """``SELECT value FROM json_each(?)``: a list as one parameter (SQLite)."""
    return pw.Select([pw.fn.json_each(_encoder.encode(values).decode())], [pw.SQL("value")])


def _search_expr(text: str) -> pw.Expression:
    """The text rule. On SQLite the full-text index is looked up first (``puid IN (SELECT rowid
    FROM product_search WHERE … MATCH …)``): the planner then visits only the matching products,
    in puid order, and checks every other rule on them."""
    terms = _search_terms(text)
    if dbmod.is_sqlite():
        match = " AND ".join('"' + t.replace('"', '""') + '"*' for t in terms)
        fts = pw.Table(FTS_TABLE)
        sub = fts.select(pw.SQL("rowid")).where(pw.SQL(f"{FTS_TABLE} MATCH ?", [match]))
        return Product.puid.in_(sub)
    expr: pw.Expression | None = None
    for term in terms:
        like = f"%{term}%"
        text_hit = ProductText.select(ProductText.product).where(ProductText.name**like)
        one = (Product.manufacturer_sku**like) | (Product.ean**like) | Product.puid.in_(text_hit)
        expr = one if expr is None else expr & one
    assert expr is not None, "only called with at least one search term"
    return expr


def selected_supplier_ids(c: Criteria) -> list[int] | None:
    """The suppliers whose offers count (None: every supplier)."""
    if c.suppliers == "partners":
        return [i for (i,) in tuples(Supplier.select(Supplier.id).where(Supplier.partner))]
    if c.suppliers == "list":
        return list(c.supplier_ids)
    return None


def offer_conditions(c: Criteria) -> list[pw.ColumnBase]:
    """Conditions one offer must meet to count for this selection (supplier, stock, price)."""
    conds: list[pw.ColumnBase] = []
    suppliers = selected_supplier_ids(c)
    if suppliers is not None:
        conds.append(SupplierItem.supplier.in_(suppliers))
    if c.only_in_stock:
        conds.append(SupplierItem.stock > 0)
    if c.only_with_price or c.price_min is not None or c.price_max is not None:
        conds.append(SupplierItem.price > 0)
    if c.price_min is not None:
        conds.append(SupplierItem.price >= c.price_min)
    if c.price_max is not None:
        conds.append(SupplierItem.price <= c.price_max)
    return conds


def _offer_rule(c: Criteria) -> list[pw.ColumnBase]:
    """The offer rules as product conditions.

    Supplier, stock and price presence use the product's offer masks (one bit per supplier, kept
    by triggers; exact, as a product has one offer per supplier), so a count scans one narrow
    index. A price range also uses the product's lowest and highest offer price: no offer in
    the range when the product's prices are all outside it; every priced offer in it when they
    are all inside, so that the masks decide. Only a product with prices on both sides of a
    bound (or a supplier without a bit) needs its offers looked at: a correlated ``EXISTS`` on
    them (the ``supplier_item_offer`` index covers it), tested last. (An ``EXISTS`` for every
    product of the scan took a second at 1M products; an ``IN`` over every offer in the price
    range made SQLite collect a million offers before the text search.)"""
    suppliers = selected_supplier_ids(c)
    wants_offer = suppliers is not None or c.only_in_stock or c.only_with_price
    ranged = c.price_min is not None or c.price_max is not None
    if not wants_offer and not ranged:
        return []
    ids = (
        suppliers if suppliers is not None else [i for (i,) in tuples(Supplier.select(Supplier.id))]
    )
    conds: list[pw.ColumnBase] = []
    masked = all(0 <= i < MASK_BITS for i in ids)
    if masked:
        mask = sum(1 << i for i in set(ids))
        column: pw.ColumnBase = Product.offer_mask
        if c.only_in_stock and (c.only_with_price or ranged):
            column = Product.stock_mask.bin_and(Product.price_mask)
        elif c.only_in_stock:
            column = Product.stock_mask
        elif c.only_with_price or ranged:
            column = Product.price_mask
        conds.append(column.bin_and(mask) != 0)
        if not ranged:
            return conds
    inside: list[pw.ColumnBase] = []  # every priced offer of the product is in the range
    if c.price_min is not None:
        conds.append(Product.price_high >= c.price_min)
        inside.append(Product.price_low >= c.price_min)
    if c.price_max is not None:
        conds.append(Product.price_low <= c.price_max)
        inside.append(Product.price_high <= c.price_max)
    offers = pw.fn.EXISTS(
        SupplierItem.select(pw.SQL("1")).where(
            SupplierItem.product == Product.puid, *offer_conditions(c)
        )
    )
    conds.append(functools.reduce(operator.and_, inside) | offers if masked else offers)
    return conds


def _rules(c: Criteria) -> list[pw.ColumnBase]:
    """Every rule but the exclude list, as product conditions."""
    conds: list[pw.ColumnBase] = []
    if c.manufacturer_ids:
        conds.append(Product.manufacturer.in_(c.manufacturer_ids))
    if c.product_type_ids:
        conds.append(Product.product_type.in_(c.product_type_ids))
    if c.only_with_catalog_id:
        conds.append(Product.qualification >= 1)
    if c.only_new:
        conds.append(Product.condition == "new")
    if c.only_exportable_images:
        conds.append(Product.image_exportable)
    if c.changed_since is not None:
        conds.append(Product.updated >= c.changed_since.replace(tzinfo=None))
    if c.search and _search_terms(c.search):
        conds.append(_search_expr(c.search))
    if c.include:
        conds.append(_ident_match(c.include))
    # Last: SQLite tests the terms in this order and stops at the first false one, so the
    # offers are looked up only for products that pass everything else.
    conds.extend(_offer_rule(c))
    return conds


def _excluded(items: list[str]) -> pw.ColumnBase:
    # NOT IN over a subquery: a NULL EAN must not turn "not listed" into "unknown".
    return Product.puid.not_in(Product.select(Product.puid).where(_ident_match(items)))


def product_conditions(c: Criteria) -> list[pw.ColumnBase]:
    conds = _rules(c)
    if c.exclude:
        conds.append(_excluded(c.exclude))
    return conds


def product_query(c: Criteria, limit: int | None = None) -> pw.Select:
    """``SELECT puid FROM product WHERE …rules… ORDER BY puid [LIMIT n]``: the one query."""
    query = Product.select(Product.puid)
    conds = product_conditions(c)
    if conds:
        query = query.where(*conds)
    query = query.order_by(Product.puid)
    if limit is not None:
        query = query.limit(limit)
    return query


def _count_where(conds: list[pw.ColumnBase]) -> int:
    query = Product.select(pw.fn.COUNT(pw.SQL("*")))
    if conds:
        query = query.where(*conds)
    return int(query.scalar() or 0)


def _driven(c: Criteria) -> bool:
    """Whether an index look-up drives this selection's query (text search, include list):
    its candidates are then a few thousand products, not the catalog."""
    return bool((c.search and _search_terms(c.search)) or c.include)


def _driver(c: Criteria) -> pw.ColumnBase:
    """The index look-up that drives a :func:`_driven` selection: true for every product it
    selects."""
    if c.search and _search_terms(c.search):
        return _search_expr(c.search)
    return _ident_match(c.include)


def _count(*selections: Criteria) -> int:
    """How many products every one of ``selections`` selects.

    Exclude lists of selections that scan the catalog are subtracted rather than tested on
    every product: ``count(rules) - count(rules AND listed)`` is exact (a product is listed or
    not; ``_ident_match`` is never true for an unlisted one) and costs a count plus a few
    thousand index look-ups, where ``NOT IN`` probed the list once per product (0.3 s at 1M
    products). A selection driven by the text search tests the few candidates instead."""
    if any(map(_driven, selections)):
        return _count_where([cond for c in selections for cond in product_conditions(c)])
    rules = [cond for c in selections for cond in _rules(c)]
    excluded = [item for c in selections for item in c.exclude]
    total = _count_where(rules)
    if excluded and total:
        total -= _count_where([*rules, _ident_match(excluded)])
    return total


def count(c: Criteria) -> int:
    return _count(c)


def count_both(a: Criteria, b: Criteria) -> int:
    """How many products both rule sets select (their conditions joined with AND: as fast as one
    count, where a NOT IN of one selection against the other took minutes at 1M products)."""
    return _count(a, b)


def _selected(c: Criteria) -> pw.ColumnBase:
    """1 for a product ``c`` selects, else 0 (a rule that is NULL selects nothing, as in WHERE)."""
    conds = product_conditions(c)
    if not conds:
        return pw.Value(1)
    return pw.Case(None, [(functools.reduce(operator.and_, conds), 1)], 0)


def first_only_in(a: Criteria, b: Criteria, n: int = 3, *, batch: int = 500) -> list[int]:
    """The first ``n`` puids that ``a`` selects and ``b`` does not: one query when a text search
    or include list finds ``a``'s few candidates (sorted once), else looked for in batches along
    ``a`` (at most 4 batches: examples, not a full scan, when the two differ only far along)."""
    if _driven(a):
        only_a = product_query(a, limit=n).where(_selected(b) == 0)
        return [puid for (puid,) in tuples(only_a)]
    found: list[int] = []
    after: int | None = None
    other = product_conditions(b)
    for _ in range(4):
        query = product_query(a, limit=batch)
        if after is not None:
            query = query.where(Product.puid > after)
        puids = [puid for (puid,) in tuples(query)]
        if not puids:
            break
        both = Product.select(Product.puid).where(Product.puid.in_(puids), *other)
        in_b = {puid for (puid,) in tuples(both)}
        found.extend(p for p in puids if p not in in_b)
        if len(found) >= n:
            break
        after = puids[-1]
    return found[:n]


# --- the generated name --------------------------------------------------------------------


def _names(model: _IdModel, ids: list[int], most: int = 2) -> str:
    rows: dict[int, str] = dict(
        tuples(model.select(model.id, model.name).where(model.id.in_(ids[:most])))
    )
    names = [rows.get(i, f"#{i}") for i in ids[:most]]
    more = len(ids) - most
    return ", ".join(names) + (f" +{more}" if more > 0 else "")


def auto_name(c: Criteria) -> str:
    """A name that says what the rules select, used until the user renames the selection."""
    parts: list[str] = []
    parts.append(
        {"partners": "Partners", "all": "All suppliers"}.get(c.suppliers)
        or (_names(Supplier, c.supplier_ids) if c.supplier_ids else "No supplier")
    )
    if c.manufacturer_ids:
        parts.append(_names(Manufacturer, c.manufacturer_ids))
    if c.product_type_ids:
        parts.append(_names(ProductType, c.product_type_ids))
    flags = [
        ("catalogued", c.only_with_catalog_id),
        ("in stock", c.only_in_stock),
        ("new", c.only_new),
        ("images", c.only_exportable_images),
        ("priced", c.only_with_price),
    ]
    parts.extend(label for label, on in flags if on)
    if c.price_min is not None or c.price_max is not None:
        low = f"{c.price_min:g}" if c.price_min is not None else ""
        high = f"{c.price_max:g}" if c.price_max is not None else ""
        parts.append(f"€{low}–{high}")
    if c.search:
        parts.append(f"“{c.search.strip()[:20]}”")
    if c.include:
        parts.append(f"{len(c.include)} listed")
    if c.exclude:
        parts.append(f"−{len(c.exclude)}")
    if c.changed_since is not None:
        parts.append(f"since {c.changed_since:%Y-%m-%d}")
    name = " · ".join(parts)
    return name if len(name) <= 80 else name[:79] + "…"
