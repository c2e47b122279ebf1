"""The BMEcat 1.2 mapping, as data: what fills each element, and the ARTICLE builder it drives.

:data:`ARTICLE_TEXTS` (with :data:`COLUMNS`) decides both what :func:`articles` writes and what
the "Data formats" page says (:func:`markdown`); :data:`HEADER` and :data:`STRUCTURE` describe
the parts :mod:`tuiexport.exporters.bmecat` writes around the articles.

Standard library only: :func:`articles` runs in the export's worker processes
(``run_parallel(..., handler=HANDLER)``) and, on the job's own connection, in the export process,
so both write the same bytes. Escaping, stripping and rounding are the other outputs' own
(:mod:`tuiexport.exporters.text`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from tuiexport.exporters.text import XML_FORBIDDEN, round_half_up, xml_escape

#: The columns of an article row, in order, and what each holds (for the docs).
COLUMNS = {
    "puid": "the puid",
    "name": "the name (language fallback)",
    "long": "the long description (only with 'include long descriptions')",
    "short": "the short description",
    "ean": "the EAN",
    "sku": "the manufacturer SKU",
    "manufacturer": "the manufacturer name",
    "image": "the image URL (only where the image may be exported)",
    "price": "the lowest net price of the product's offers, preferring EUR",
    "currency": "the currency of that price",
}
_AT = {name: i for i, name in enumerate(COLUMNS)}


class Text(NamedTuple):
    """A text element: the first of ``columns`` that is not blank, fitted to ``most``.

    (A NamedTuple rather than a dataclass: ``dataclasses`` imports ``inspect``, which would
    double the worker's start-up.)"""

    path: str
    columns: tuple[str, ...]
    most: int
    #: Longer than ``most``: left out (an identifier cut short would be wrong), else cut.
    whole: bool = False
    #: Written when every column is blank (the element is required).
    fallback: str = ""

    @property
    def tag(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def doc(self) -> str:
        sources = [COLUMNS[c] for c in (*self.columns, *([self.fallback] if self.fallback else []))]
        text = ", else ".join(sources)
        rule = (
            f"left out when longer than {self.most:,} characters"
            if self.whole
            else f"cut to {self.most:,} characters"
        )
        return f"{text[0].upper()}{text[1:]}; {rule}"


#: ARTICLE_DETAILS, in the schema's order, and the image's MIME_SOURCE.
ARTICLE_TEXTS = (
    Text("ARTICLE_DETAILS/DESCRIPTION_SHORT", ("name", "sku"), 80, fallback="puid"),
    Text("ARTICLE_DETAILS/DESCRIPTION_LONG", ("long", "short"), 64000),
    Text("ARTICLE_DETAILS/EAN", ("ean",), 14, whole=True),
    Text("ARTICLE_DETAILS/MANUFACTURER_AID", ("sku",), 50),
    Text("ARTICLE_DETAILS/MANUFACTURER_NAME", ("manufacturer",), 50),
)
IMAGE = Text("MIME_INFO/MIME/MIME_SOURCE", ("image",), 250, whole=True)

#: What fills the header (written by the export process from the job).
HEADER = (
    ("HEADER/CATALOG/LANGUAGE", "Export language as ISO 639-2 (deu, eng, fra, ita, nld, spa)"),
    ("HEADER/CATALOG/CATALOG_ID", "First 20 characters of the export ID"),
    ("HEADER/CATALOG/CATALOG_VERSION", "1.0"),
    ("HEADER/CATALOG/CATALOG_NAME", "Export name (≤ 100 characters)"),
    ("HEADER/CATALOG/DATETIME", "Generation date and time (UTC)"),
    ("HEADER/CATALOG/CURRENCY", "EUR"),
    ("HEADER/BUYER/BUYER_NAME", "option bmecat_buyer, else 'Catalog recipient'"),
    ("HEADER/SUPPLIER/SUPPLIER_NAME", "option bmecat_supplier, else 'tuiexport'"),
)
#: The catalog group system: one leaf per product type. GROUP_ID is the standard's unique key of
#: a group, which ARTICLE_TO_CATALOGGROUP_MAP/CATALOG_GROUP_ID refers to: the product type's id
#: (unique and stable; the 3-letter group code is not unique, so it is the description).
STRUCTURE = (
    (
        "CATALOG_GROUP_SYSTEM/CATALOG_STRUCTURE",
        "A root (GROUP_ID `root`) plus one leaf per product type of the articles written: "
        "GROUP_ID = the product type's id, GROUP_NAME = its name, GROUP_DESCRIPTION = its "
        "3-letter group code",
    ),
)
ARTICLE_ROWS = (
    ("ARTICLE/SUPPLIER_AID", "puid"),
    *((t.path, t.doc()) for t in ARTICLE_TEXTS),
    ("ARTICLE_ORDER_DETAILS/ORDER_UNIT", "C62 (piece)"),
    (
        "ARTICLE_PRICE_DETAILS/ARTICLE_PRICE",
        f"net_list: {COLUMNS['price']}, with {COLUMNS['currency']}; "
        "an article without one is left out (the schema requires a price)",
    ),
    (IMAGE.path, f"{IMAGE.doc()}; MIME_TYPE image/jpeg, MIME_PURPOSE normal"),
    (
        "ARTICLE_TO_CATALOGGROUP_MAP",
        "Article (ART_ID = puid) → its product type's group (CATALOG_GROUP_ID = the type's id)",
    ),
)
#: Every row of the docs table, in the file's order.
MAPPING = (*HEADER, *STRUCTURE, *ARTICLE_ROWS)

#: The handler the worker processes run (see tuiexport.exporters.worker).
HANDLER = f"{__name__}:articles"


def markdown() -> str:
    lines = ["### Profile `bmecat12` (BMEcat 1.2 T_NEW_CATALOG, XML only)", ""]
    lines += ["| BMEcat element | Filled from |", "|---|---|"]
    lines += [f"| `{path}` | {source} |" for path, source in MAPPING]
    lines.append("")
    return "\n".join(lines)


def fit(value: object, most: int) -> str | None:
    """Schema-fit text: forbidden characters gone, at most ``most`` characters, never blank."""
    if value is None:
        return None
    text = XML_FORBIDDEN.sub("", str(value))
    if not text.strip():
        return None
    return xml_escape(text[:most])


def element(tag: str, text: str | None) -> str:
    return "" if text is None else f"<{tag}>{text}</{tag}>"


#: What an element's compiled mapping is: an article row -> its markup ("" when left out).
Part = Callable[[tuple[Any, ...]], str]


def _compiled(t: Text, before: str = "", after: str = "") -> Part:
    """The mapping of one element compiled once into a closure for its shape: the whole
    element (``<TAG>text</TAG>``) from an article row, or ``""``. This runs for every element of
    every article, so each shape gets its own closure with what it needs bound as locals, no
    loop over one column and no call beyond the text rules themselves (:func:`fit`, inlined).
    ``before`` and ``after`` go around the element (its parents, when it is their only
    content)."""
    at = tuple(_AT[c] for c in t.columns)
    most = t.most
    start, end = f"{before}<{t.tag}>", f"</{t.tag}>{after}"
    sub = XML_FORBIDDEN.sub
    escape = xml_escape
    if t.whole:
        (i,) = at  # an identifier: one column, whole or nothing

        def whole(row: tuple[Any, ...]) -> str:
            value = row[i]
            if value is None:
                return ""
            text = str(value)
            if len(text) > most:
                return ""
            text = sub("", text)
            return start + escape(text) + end if text.strip() else ""

        return whole
    if len(at) == 1 and not t.fallback:
        (i,) = at

        def one(row: tuple[Any, ...]) -> str:
            value = row[i]
            if value is None:
                return ""
            text = sub("", str(value))
            return start + escape(text[:most]) + end if text.strip() else ""

        return one
    fallback = _AT.get(t.fallback, -1)

    def first(row: tuple[Any, ...]) -> str:
        for i in at:
            value = row[i]
            if value is not None:
                text = sub("", str(value))
                if text.strip():
                    return start + escape(text[:most]) + end
        return start + str(row[fallback]) + end if fallback >= 0 else ""

    return first


def _concat(parts: tuple[Part, ...]) -> Part:
    """One closure for the concatenation of ``parts``' results: no loop and no list per article
    (a list comprehension per article cost about a third of the details' time)."""
    if len(parts) > 4:
        return _concat((_concat(parts[:4]), _concat(parts[4:])))
    if len(parts) == 4:
        a, b, c, d = parts
        return lambda row: a(row) + b(row) + c(row) + d(row)
    if len(parts) == 3:
        a, b, c = parts
        return lambda row: a(row) + b(row) + c(row)
    if len(parts) == 2:
        a, b = parts
        return lambda row: a(row) + b(row)
    return parts[0] if parts else lambda row: ""


#: ARTICLE_DETAILS' content from an article row, compiled from :data:`ARTICLE_TEXTS`.
_DETAILS = _concat(tuple(_compiled(t) for t in ARTICLE_TEXTS))
_IMAGE = _compiled(
    IMAGE,
    "<MIME_INFO><MIME><MIME_TYPE>image/jpeg</MIME_TYPE>",
    "<MIME_PURPOSE>normal</MIME_PURPOSE></MIME></MIME_INFO>",
)
_PUID, _PRICE, _CURRENCY = _AT["puid"], _AT["price"], _AT["currency"]


def articles(rows: list[tuple[Any, ...]]) -> tuple[bytes, int, int]:
    """ARTICLE elements for one chunk of rows (:data:`COLUMNS`): (UTF-8 text, rows, articles)."""
    parts: list[str] = []
    append = parts.append
    details_of = _DETAILS
    image_of = _IMAGE
    join = "".join
    at_puid, at_price, at_currency = _PUID, _PRICE, _CURRENCY
    for row in rows:
        price = row[at_price]
        if price is None:
            continue
        append(
            f"<ARTICLE><SUPPLIER_AID>{row[at_puid]}</SUPPLIER_AID><ARTICLE_DETAILS>"
            + details_of(row)
            + "</ARTICLE_DETAILS><ARTICLE_ORDER_DETAILS><ORDER_UNIT>C62</ORDER_UNIT>"
            "</ARTICLE_ORDER_DETAILS><ARTICLE_PRICE_DETAILS>"
            f'<ARTICLE_PRICE price_type="net_list"><PRICE_AMOUNT>{round_half_up(price, "0.01")}'
            f"</PRICE_AMOUNT><PRICE_CURRENCY>{row[at_currency]}</PRICE_CURRENCY></ARTICLE_PRICE>"
            "</ARTICLE_PRICE_DETAILS>" + image_of(row) + "</ARTICLE>\n"
        )
    return join(parts).encode(), len(rows), len(parts)
