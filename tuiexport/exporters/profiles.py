"""The field lists of every profile, declared once.

A profile is a list of *elements* (``product``, ``supplierItem``, …); an element is a list of
fields. Each field names the SQL expression it is read from and its kind (how it is formatted).
Every writer — CSV, JSON, JSON Lines, XML — is generated from these declarations, and
:func:`markdown` renders them for the docs (``docs/guide/formats.md``, kept current by
:mod:`tuiexport.exporters.docs`; a test checks that it matches).

SQL aliases available to field expressions:

* main element (``product``): ``p`` product, ``m`` manufacturer, ``pt`` product type,
  ``t`` / ``f`` the product text in the export's language / the fallback language
  (use ``{text:column}`` for "this language, else the fallback");
* child elements: the aliases of their own ``source``;
* reference elements: the aliases of their own ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Field kinds and how each output writes them.
KINDS = {
    "int": "integer",
    "text": "text",
    "price": "decimal, 2 places",
    "weight": "decimal, 3 places (kg)",
    "datetime": "timestamp (UTC)",
    "bool": "true / false",
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    sql: str
    doc: str
    #: Name of an ExportJob switch that must be on for the field to be written.
    when: str | None = None
    #: The parent's key repeated in a child element: written in CSV (to join the files),
    #: left out in JSON/XML where the child is nested in its parent.
    link: bool = False


@dataclass(frozen=True)
class Element:
    name: str
    #: "main" (one per product, ordered by puid), "child" (nested in its product),
    #: "reference" (master data the products point to, developer profile only).
    role: str
    fields: tuple[Field, ...]
    #: FROM clause. Main: joins after ``product p``; child: the tables, joined to the product
    #: through ``link``; reference: a complete FROM … WHERE, filtered to what ``sel`` uses.
    source: str
    order: str
    doc: str
    link: str = ""
    #: Main element only: join the product texts (``t``/``f``).
    texts: bool = False
    #: Child, SQLite fast path: an index on (link, order) that yields the rows of one product
    #: already in order, so the nested records need no sort (used only when it exists).
    index: str = ""

    def fields_for(self, flags: dict[str, bool], nested: bool = False) -> tuple[Field, ...]:
        return tuple(
            f
            for f in self.fields
            if (f.when is None or flags.get(f.when, False)) and not (nested and f.link)
        )


@dataclass(frozen=True)
class Profile:
    name: str
    doc: str
    elements: tuple[Element, ...]

    @property
    def main(self) -> Element:
        return next(e for e in self.elements if e.role == "main")

    @property
    def children(self) -> tuple[Element, ...]:
        return tuple(e for e in self.elements if e.role == "child")

    @property
    def references(self) -> tuple[Element, ...]:
        return tuple(e for e in self.elements if e.role == "reference")


def F(name: str, kind: str, sql: str, doc: str, **kw: Any) -> Field:
    assert kind in KINDS, kind
    return Field(name, kind, sql, doc, **kw)


_MAIN_JOINS = (
    "LEFT JOIN manufacturer m ON m.id = p.manufacturer_id "
    "LEFT JOIN product_type pt ON pt.id = p.product_type_id"
)
_OFFERS = "supplier_item si JOIN supplier s ON s.id = si.supplier_id"
#: The unique (product, supplier) index the SupplierItem model declares.
_OFFER_INDEX = "supplier_item_product_id_supplier_id"
_IN_SEL = "(SELECT p.{col} FROM sel JOIN product p ON p.puid = sel.puid)"

# --- standard ------------------------------------------------------------------------------

STANDARD_PRODUCT = Element(
    "product",
    "main",
    (
        F("puid", "int", "p.puid", "Product key (long integer)"),
        F("ean", "text", "p.ean", "EAN-13 / GTIN"),
        F("manufacturerSku", "text", "p.manufacturer_sku", "Manufacturer's article number"),
        F("manufacturer", "text", "m.name", "Manufacturer name"),
        F("productType", "text", "pt.name", "Product type name"),
        F("groupCode", "text", "pt.group_code", "Product type's 3-letter group code"),
        F("name", "text", "{text:name}", "Name in the export language, else the fallback language"),
        F(
            "shortDescription",
            "text",
            "{text:short_description}",
            "Short description (language fallback as name)",
        ),
        F(
            "longDescription",
            "text",
            "{text:long_description}",
            "Long description (language fallback as name); only with 'include long descriptions'",
            when="long_descriptions",
        ),
        F(
            "qualification",
            "int",
            "p.qualification",
            "0–3; ≥1 means the product has a catalogue id",
        ),
        F("condition", "text", "p.condition", "new / used / refurbished"),
        F(
            "imageUrl",
            "text",
            "CASE WHEN p.image_exportable THEN p.image_url END",
            "Image URL, only where the image may be exported",
        ),
        F("weight", "weight", "p.weight", "Weight in kg"),
        F("eclass", "text", "p.eclass", "eCl@ss class"),
        F("created", "datetime", "p.created", "Entry time"),
        F("updated", "datetime", "p.updated", "Last update"),
    ),
    source=_MAIN_JOINS,
    order="p.puid",
    doc="One row per product, ordered by puid.",
    texts=True,
)

STANDARD_OFFER = Element(
    "supplierItem",
    "child",
    (
        F("puid", "int", "si.product_id", "The product (puid)", link=True),
        F("supplier", "text", "s.name", "Supplier (distributor) name"),
        F("supplierSku", "text", "si.supplier_sku", "Supplier's article number"),
        F("price", "price", "si.price", "Net price; empty when the supplier gives none"),
        F("currency", "text", "si.currency", "ISO 4217 currency of the price"),
        F("stock", "int", "si.stock", "Stock quantity"),
        F(
            "stockStatus",
            "text",
            "si.stock_status",
            "in_stock / low_stock / out_of_stock / on_order / unknown",
        ),
        F("condition", "text", "si.condition", "new / used / refurbished"),
        F("updated", "datetime", "si.updated", "Last update of the offer"),
    ),
    source=_OFFERS,
    link="si.product_id",
    order="si.supplier_id",
    doc="One row per supplier offer of an exported product, ordered by puid, then supplier id.",
    index=_OFFER_INDEX,
)

# --- standardUpdate ------------------------------------------------------------------------

UPDATE_PRODUCT = Element(
    "product",
    "main",
    (
        F("puid", "int", "p.puid", "Product key"),
        F("ean", "text", "p.ean", "EAN-13 / GTIN"),
        F("manufacturerSku", "text", "p.manufacturer_sku", "Manufacturer's article number"),
    ),
    source="",
    order="p.puid",
    doc="One row per product, ordered by puid.",
)

UPDATE_OFFER = Element(
    "supplierItem",
    "child",
    (
        F("puid", "int", "si.product_id", "The product (puid)", link=True),
        F("supplier", "text", "s.name", "Supplier name"),
        F("supplierSku", "text", "si.supplier_sku", "Supplier's article number"),
        F("price", "price", "si.price", "Net price"),
        F("currency", "text", "si.currency", "Currency"),
        F("stock", "int", "si.stock", "Stock quantity"),
        F("stockStatus", "text", "si.stock_status", "Stock status"),
        F("updated", "datetime", "si.updated", "Last update of the offer"),
    ),
    source=_OFFERS,
    link="si.product_id",
    order="si.supplier_id",
    doc="Price and stock per offer.",
    index=_OFFER_INDEX,
)

# --- developer -----------------------------------------------------------------------------

DEV_PRODUCT = Element(
    "product",
    "main",
    (
        F("puid", "int", "p.puid", "Product key"),
        F("ean", "text", "p.ean", "EAN-13 / GTIN"),
        F("manufacturerSku", "text", "p.manufacturer_sku", "Manufacturer's article number"),
        F("manufacturerId", "int", "p.manufacturer_id", "→ manufacturer.id"),
        F("productTypeId", "int", "p.product_type_id", "→ productType.id"),
        F("qualification", "int", "p.qualification", "0–3; ≥1 means it has a catalogue id"),
        F("condition", "text", "p.condition", "new / used / refurbished"),
        F("imageUrl", "text", "p.image_url", "Image URL (whether or not it may be exported)"),
        F("imageExportable", "bool", "p.image_exportable", "Whether the image may be exported"),
        F("weight", "weight", "p.weight", "Weight in kg"),
        F("eclass", "text", "p.eclass", "eCl@ss class"),
        F("created", "datetime", "p.created", "Entry time"),
        F("updated", "datetime", "p.updated", "Last update"),
    ),
    source="",
    order="p.puid",
    doc="One row per product, ordered by puid; ids point to the reference entities.",
)

DEV_TEXT = Element(
    "productText",
    "child",
    (
        F("puid", "int", "x.product_id", "The product (puid)", link=True),
        F("lang", "text", "x.lang", "Language code (de, en, fr, it, nl, es)"),
        F("name", "text", "x.name", "Name"),
        F("shortDescription", "text", "x.short_description", "Short description"),
        F(
            "longDescription",
            "text",
            "x.long_description",
            "Long description; only with 'include long descriptions'",
            when="long_descriptions",
        ),
    ),
    source="product_text x",
    link="x.product_id",
    order="x.lang",
    doc="Every language of every exported product.",
)

DEV_OFFER = Element(
    "supplierItem",
    "child",
    (
        F("id", "int", "si.id", "Offer id"),
        F("puid", "int", "si.product_id", "The product (puid)", link=True),
        F("supplierId", "int", "si.supplier_id", "→ supplier.id"),
        F("supplierSku", "text", "si.supplier_sku", "Supplier's article number"),
        F("price", "price", "si.price", "Net price"),
        F("currency", "text", "si.currency", "Currency"),
        F("stock", "int", "si.stock", "Stock quantity"),
        F("stockStatus", "text", "si.stock_status", "Stock status"),
        F("condition", "text", "si.condition", "new / used / refurbished"),
        F("updated", "datetime", "si.updated", "Last update of the offer"),
    ),
    source="supplier_item si",
    link="si.product_id",
    order="si.supplier_id",
    doc="Every offer of every exported product.",
    index=_OFFER_INDEX,
)

DEV_MANUFACTURER = Element(
    "manufacturer",
    "reference",
    (
        F("id", "int", "m.id", "Manufacturer id"),
        F("name", "text", "m.name", "Name"),
        F("shortName", "text", "m.short_name", "Short name"),
    ),
    source="manufacturer m WHERE m.id IN " + _IN_SEL.format(col="manufacturer_id"),
    order="m.id",
    doc="Manufacturers of the exported products.",
)

DEV_TYPE = Element(
    "productType",
    "reference",
    (
        F("id", "int", "pt.id", "Product type id"),
        F("name", "text", "pt.name", "Name"),
        F("groupCode", "text", "pt.group_code", "3-letter group code"),
    ),
    source="product_type pt WHERE pt.id IN " + _IN_SEL.format(col="product_type_id"),
    order="pt.id",
    doc="Product types of the exported products.",
)

DEV_SUPPLIER = Element(
    "supplier",
    "reference",
    (
        F("id", "int", "s.id", "Supplier id"),
        F("name", "text", "s.name", "Name"),
        F("partner", "bool", "s.partner", "One of my partners"),
    ),
    source=(
        "supplier s WHERE s.id IN (SELECT si.supplier_id FROM sel "
        "JOIN supplier_item si ON si.product_id = sel.puid)"
    ),
    order="s.id",
    doc="Suppliers with at least one offer for an exported product.",
)

PROFILES: dict[str, Profile] = {
    "standard": Profile(
        "standard",
        "Product data and its supplier items: the everyday shop feed.",
        (STANDARD_PRODUCT, STANDARD_OFFER),
    ),
    "standardUpdate": Profile(
        "standardUpdate",
        "Prices and stock only, for frequent runs.",
        (UPDATE_PRODUCT, UPDATE_OFFER),
    ),
    "developer": Profile(
        "developer",
        "Everything, normalised into entities that reference each other by id.",
        (DEV_PRODUCT, DEV_TEXT, DEV_OFFER, DEV_MANUFACTURER, DEV_TYPE, DEV_SUPPLIER),
    ),
}

#: ``Log.csv`` (and the ``log`` part of JSON/XML documents): products filtered out and why.
LOG_FIELDS = (
    F("puid", "int", "puid", "A product that matched the selection but was left out"),
    F("reason", "text", "reason", "Why, e.g. 'over the product limit of 200000'"),
)


def markdown() -> str:
    """The field lists as Markdown (the docs add BMEcat's mapping, see exporters/docs.py)."""
    lines = []
    for profile in PROFILES.values():
        lines += [f"### Profile `{profile.name}`", "", profile.doc, ""]
        for element in profile.elements:
            file = f" (`{element.name}.csv`; XLSX sheet `{element.name}`)"
            lines += [f"#### `{element.name}`{file}", "", element.doc, ""]
            lines += ["| Field | Type | Meaning |", "|---|---|---|"]
            for f in element.fields:
                note = " *(CSV and XLSX only: nested in JSON/XML)*" if f.link else ""
                lines.append(f"| `{f.name}` | {KINDS[f.kind]} | {f.doc}{note} |")
            lines.append("")
    lines += [
        "### `Log.csv` (every CSV ZIP; the `Log` sheet of every XLSX)",
        "",
        "| Field | Type | Meaning |",
        "|---|---|---|",
    ]
    for f in LOG_FIELDS:
        lines.append(f"| `{f.name}` | {KINDS[f.kind]} | {f.doc} |")
    lines.append("")
    return "\n".join(lines)
