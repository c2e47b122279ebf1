"""Product selections: create, update, delete, validate, count and preview."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee as pw

from tuiexport import db as dbmod
from tuiexport import selection as sel
from tuiexport.db import database
from tuiexport.errors import Conflict, NotFound, UserError
from tuiexport.management.definitions import effective_limit
from tuiexport.management.views import ExportImpact, PreviewRow, SelectionImpact, SelectionView
from tuiexport.models import (
    ExportDefinition,
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Selection,
    SupplierItem,
    tuples,
    utcnow,
)
from tuiexport.schema import catalog_version
from tuiexport.selection import Criteria


def _view(
    row: Selection, used_by: list[str] | None = None, known: sel.KnownIds | None = None
) -> SelectionView:
    criteria = sel.criteria_from_json(row.criteria)
    if used_by is None:
        used_by = [
            name
            for (name,) in tuples(
                ExportDefinition.select(ExportDefinition.name)
                .where(ExportDefinition.selection == row.id)
                .order_by(ExportDefinition.name)
            )
        ]
    reasons = sel.validate_criteria(criteria, known)
    return SelectionView(
        id=row.id,
        name=row.name,
        name_custom=row.name_custom,
        criteria=criteria,
        created=row.created,
        updated=row.updated,
        used_by=used_by,
        valid=not reasons,
        reasons=reasons,
    )


#: The largest id the database holds (SQLite and PostgreSQL integers are 64-bit).
_MAX_ID = 2**63 - 1


def _get(ref: int | str) -> Selection:
    row = None
    number = ref if isinstance(ref, int) else int(ref) if ref.isascii() and ref.isdigit() else None
    if number is not None and 0 <= number <= _MAX_ID:
        row = Selection.get_or_none(Selection.id == number)
    if row is None and isinstance(ref, str):
        rows = list(Selection.select().where(Selection.name == ref).limit(2))
        if len(rows) > 1:
            raise UserError(f"Several selections are named '{ref}'; use the selection's number.")
        row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"There is no product selection '{ref}' (see 'tuiexport selections list').")
    return row


def list_selections() -> list[SelectionView]:
    users: dict[int, list[str]] = {}
    for sid, name in tuples(
        ExportDefinition.select(ExportDefinition.selection, ExportDefinition.name)
        .where(ExportDefinition.selection.is_null(False))
        .order_by(ExportDefinition.name)
    ):
        users.setdefault(sid, []).append(name)
    known = sel.known_ids()
    return [
        _view(row, users.get(row.id, []), known)
        for row in Selection.select().order_by(Selection.name)
    ]


def get_selection(ref: int | str) -> SelectionView:
    return _view(_get(ref))


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if len(name) > 120:
        raise UserError("A selection name may have at most 120 characters.")
    return name


def create_selection(criteria: Criteria | None = None, name: str | None = None) -> SelectionView:
    """Create a selection; without a name it is named after its rules until renamed."""
    criteria = criteria or Criteria()
    custom = bool(name and name.strip())
    with database.atomic():
        row = Selection.create(
            name=_clean_name(name) if name and custom else sel.auto_name(criteria),
            name_custom=custom,
            criteria=sel.criteria_to_json(criteria),
        )
    return _view(row, [])


def update_selection(
    ref: int | str, *, criteria: Criteria | None = None, name: str | None = None
) -> SelectionView:
    """Change rules and/or name. ``name=""`` goes back to the generated name.

    Every definition that uses the selection sees the change (they refer to it)."""
    with database.atomic():
        row = _get(ref)
        if criteria is not None:
            row.criteria = sel.criteria_to_json(criteria)
        if name is not None:
            row.name_custom = bool(name.strip())
            if row.name_custom:
                row.name = _clean_name(name)
        if not row.name_custom:
            row.name = sel.auto_name(sel.criteria_from_json(row.criteria))
        row.updated = utcnow()
        row.save()
        # The definitions' content changed with it: their cached artifacts are stale.
        ExportDefinition.update(updated=row.updated).where(
            ExportDefinition.selection == row.id
        ).execute()
    return _view(row)


def delete_selection(ref: int | str, *, force: bool = False) -> None:
    """Delete a selection. One still used by exports is refused unless ``force`` (they then
    have no selection and are invalid until one is assigned)."""
    with database.atomic():
        row = _get(ref)
        users = [
            d.name for d in ExportDefinition.select().where(ExportDefinition.selection == row.id)
        ]
        if users and not force:
            raise Conflict(
                f"The selection '{row.name}' is used by {len(users)} export(s) "
                f"({', '.join(users[:3])}); remove it there first or use --force."
            )
        ExportDefinition.update(selection=None, updated=utcnow()).where(
            ExportDefinition.selection == row.id
        ).execute()
        row.delete_instance()


def count_products(criteria: Criteria) -> int:
    """How many products these rules select (before any limit)."""
    return sel.count(criteria)


def preview(
    criteria: Criteria, n: int = 50, language: str = "de", fallback: str = "de"
) -> list[PreviewRow]:
    """The first ``n`` products by puid, with their best matching offer."""
    puids = [p for (p,) in tuples(sel.product_query(criteria, limit=n))]
    if not puids:
        return []
    texts: dict[int, dict[str, str]] = {}
    for pid, lang, name in tuples(
        ProductText.select(ProductText.product, ProductText.lang, ProductText.name).where(
            ProductText.product.in_(puids), ProductText.lang.in_([language, fallback])
        )
    ):
        texts.setdefault(pid, {})[lang] = name
    names = {pid: t.get(language) or t.get(fallback) or "" for pid, t in texts.items()}
    offers: dict[int, tuple[Any, ...]] = {}
    conds = [SupplierItem.product.in_(puids), *sel.offer_conditions(criteria)]
    for pid, price, stock, n_offers in tuples(
        SupplierItem.select(
            SupplierItem.product,
            pw.fn.MIN(SupplierItem.price),
            pw.fn.SUM(SupplierItem.stock),
            pw.fn.COUNT(SupplierItem.id),
        )
        .where(*conds)
        .group_by(SupplierItem.product)
    ):
        offers[pid] = (price, stock, n_offers)
    rows = tuples(
        Product.select(
            Product.puid,
            Product.ean,
            Product.manufacturer_sku,
            Manufacturer.name,
            ProductType.name,
        )
        .join(Manufacturer, pw.JOIN.LEFT_OUTER, on=(Product.manufacturer == Manufacturer.id))
        .switch(Product)
        .join(ProductType, pw.JOIN.LEFT_OUTER, on=(Product.product_type == ProductType.id))
        .where(Product.puid.in_(puids))
        .order_by(Product.puid)
    )
    return [
        PreviewRow(
            puid, ean, sku, names.get(puid, ""), mfr, ptype, *offers.get(puid, (None, None, 0))
        )
        for puid, ean, sku, mfr, ptype in rows
    ]


class ImpactCancelled(Exception):
    """The edit the impact was computed for is gone (the rules changed again)."""


#: The count of a selection's saved rules, by database, rules and catalog version: the "before"
#: of an impact stays the same while its tab is edited, so that each edit counts only what both
#: the saved and the edited rules select (the edited rules' own count is the tab's live count).
_saved_counts: dict[tuple[str, int, str, int], int] = {}
SAVED_COUNTS_KEPT = 64


def _saved_count(criteria_json: str, saved: Criteria) -> int:
    key = (dbmod.describe(), id(database.obj), criteria_json, catalog_version())
    found = _saved_counts.get(key)
    if found is None:
        found = sel.count(saved)
        if len(_saved_counts) >= SAVED_COUNTS_KEPT:
            _saved_counts.clear()
        _saved_counts[key] = found
    return found


def selection_impact(
    ref: int | str,
    edited: Criteria,
    language: str = "de",
    fallback: str = "de",
    *,
    after: int | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> SelectionImpact:
    """What saving ``edited`` over the stored rules of selection ``ref`` would change: products
    gained and lost (counts and the first few), and each export using it against its limit.

    ``after``: the edited rules' count, when the caller has it already (the selection tab's live
    count). The saved rules' count is kept per catalog version, so an edit costs one count (of
    the products both select) and the examples. ``cancelled`` is asked between the queries
    (each a count at most); when it says so, :class:`ImpactCancelled`."""

    def step() -> None:
        if cancelled():
            raise ImpactCancelled

    row = _get(ref)
    saved = sel.criteria_from_json(row.criteria)
    users = list(
        tuples(
            ExportDefinition.select(ExportDefinition.name, ExportDefinition.product_limit)
            .where(ExportDefinition.selection == row.id)
            .order_by(ExportDefinition.name)
        )
    )
    reasons = sel.validate_criteria(edited)
    # Saved rules that are invalid select nothing (their exports cannot run).
    before = _saved_count(row.criteria, saved) if not sel.validate_criteria(saved) else 0
    if reasons:
        exports = [
            ExportImpact(
                name=n, limit=effective_limit(lim), before=before, after=0, turns_invalid=True
            )
            for n, lim in users
        ]
        return SelectionImpact(
            before=before, after=0, gained=0, lost=0, exports=exports, reasons=reasons
        )
    step()
    if after is None:
        after = sel.count(edited)
        step()
    both = sel.count_both(saved, edited) if before and after else 0
    gained, lost = after - both, before - both
    step()
    if not before:
        gained_first = [p for (p,) in tuples(sel.product_query(edited, limit=3))]
    else:
        gained_first = sel.first_only_in(edited, saved) if gained else []
    step()
    lost_first = sel.first_only_in(saved, edited) if lost else []
    names = _names(gained_first + lost_first, language, fallback)
    return SelectionImpact(
        before=before,
        after=after,
        gained=gained,
        lost=lost,
        gained_examples=[(p, names.get(p, "")) for p in gained_first],
        lost_examples=[(p, names.get(p, "")) for p in lost_first],
        exports=[
            ExportImpact(name=n, limit=effective_limit(lim), before=before, after=after)
            for n, lim in users
        ],
    )


def _names(puids: list[int], language: str, fallback: str) -> dict[int, str]:
    texts: dict[int, dict[str, str]] = {}
    for pid, lang, name in tuples(
        ProductText.select(ProductText.product, ProductText.lang, ProductText.name).where(
            ProductText.product.in_(puids), ProductText.lang.in_([language, fallback])
        )
    ):
        texts.setdefault(pid, {})[lang] = name
    return {pid: t.get(language) or t.get(fallback) or "" for pid, t in texts.items()}
