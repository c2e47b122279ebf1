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
from decimal import Decimal
from typing import Any, NamedTuple

from tuiexport.exporters.text import (
    XML_FORBIDDEN,
    brackets_in_place,
    escape_in_markup,
    str_markup,
    xml_escape,
)

#: The columns of an article row, in order, and what each holds (for the docs).
COLUMNS = {
    "puid": "the puid",
    "name": "the name (language fallback)",
    "long": "the long description",
    "short": "the short description",
    "ean": "the EAN",
    "sku": "the manufacturer SKU",
    "manufacturer": "the manufacturer name",
    "image": "the image URL (only where the image may be exported)",
    "price": "the lowest net price of the product's offers, preferring EUR",
    "currency": "the currency of that price",
    "condition": "the product's condition (new / used / refurbished)",
    "type": "the product type's id",
    # Not the article's: the same in every row of a chunk (worker processes only, else NULL).
    "shares": "the offers per supplier id among the chunk's products, as a JSON object",
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
    #: The job's switch (an ``ExportJob`` attribute) without which the element is not written.
    when: str = ""
    #: What happens past ``most``, when it is not the element that is left out or cut.
    rule: str = ""

    @property
    def tag(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def doc(self) -> str:
        sources = [COLUMNS[c] for c in (*self.columns, *([self.fallback] if self.fallback else []))]
        text = ", else ".join(sources)
        rule = self.rule or (
            f"left out when longer than {self.most:,} characters"
            if self.whole
            else f"cut to {self.most:,} characters"
        )
        only = f"; only with '{SWITCHES[self.when]}'" if self.when else ""
        return f"{text[0].upper()}{text[1:]}; {rule}{only}"


#: The switches a :class:`Text` may depend on: ExportJob attribute -> its name in the editor.
SWITCHES = {"long_descriptions": "include long descriptions"}


#: ARTICLE_DETAILS, in the schema's order, and the image's MIME_SOURCE.
ARTICLE_TEXTS = (
    Text("ARTICLE_DETAILS/DESCRIPTION_SHORT", ("name", "sku"), 80, fallback="puid"),
    Text("ARTICLE_DETAILS/DESCRIPTION_LONG", ("long", "short"), 64000, when="long_descriptions"),
    Text("ARTICLE_DETAILS/EAN", ("ean",), 14, whole=True),
    # A longer SKU is a different identifier cut short: the article is left out instead (below).
    Text(
        "ARTICLE_DETAILS/MANUFACTURER_AID",
        ("sku",),
        50,
        whole=True,
        rule="an article whose SKU is longer than 50 characters is left out, with a message",
    ),
    Text("ARTICLE_DETAILS/MANUFACTURER_NAME", ("manufacturer",), 50),
)
IMAGE = Text("MIME_INFO/MIME/MIME_SOURCE", ("image",), 250, whole=True)
#: The last element of ARTICLE_DETAILS: the condition, where it is not new.
STATUS = "ARTICLE_DETAILS/ARTICLE_STATUS"
#: Conditions BMEcat 1.2 names as ARTICLE_STATUS types (a new product needs no status).
_STATUS = {
    c: str_markup(f'<ARTICLE_STATUS type="{c}">{c}</ARTICLE_STATUS>')
    for c in ("used", "refurbished")
}
#: MANUFACTURER_AID's maximum length: an article with a longer manufacturer SKU is left out.
SKU_MOST = next(t.most for t in ARTICLE_TEXTS if t.tag == "MANUFACTURER_AID")

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
    (
        STATUS,
        f"{COLUMNS['condition'][0].upper()}{COLUMNS['condition'][1:]}: "
        '`<ARTICLE_STATUS type="used">used</ARTICLE_STATUS>` (likewise `refurbished`); '
        "nothing for a new product",
    ),
    ("ARTICLE_ORDER_DETAILS/ORDER_UNIT", "C62 (piece)"),
    (
        "ARTICLE_PRICE_DETAILS/ARTICLE_PRICE",
        f"net_list: {COLUMNS['price']}, with {COLUMNS['currency']}; PRICE_AMOUNT "
        "(xsd:decimal) as the catalog holds it, at least 2 decimals (`20.00`, `0.001`); "
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
#: The BMEcat 1.2 T_NEW_CATALOG namespace (the writer declares it, the validator reads it).
NAMESPACE = "http://www.bmecat.org/XMLSchema/1.2/bmecat_new_catalog"
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


def _compiled(t: Text, exact: bool, before: str = "", after: str = "") -> Part:
    """The mapping of one element compiled once into a closure for its shape: the whole
    element (``<TAG>text</TAG>``, brackets as placeholders: :func:`articles` escapes the values
    of a whole chunk at once) from an article row, or ``""``. This runs for every element of
    every article, so each shape gets its own closure with what it needs bound as locals, no
    loop over one column and no call beyond the text rules themselves (:func:`fit`, inlined).
    ``before`` and ``after`` go around the element (its parents, when it is their only
    content).

    Not ``exact``, forbidden characters are stripped only from a text that is cut (the cut
    counts what remains); anywhere else they reach the markup, where :func:`articles` finds
    them and builds the chunk again with the ``exact`` closures."""
    at = tuple(_AT[c] for c in t.columns)
    most = t.most
    start = str_markup(f"{before}<{t.tag}>")
    end = str_markup(f"</{t.tag}>{after}")
    sub = XML_FORBIDDEN.sub
    if t.whole:
        (i,) = at  # an identifier: one column, whole or nothing

        def whole(row: tuple[Any, ...]) -> str:
            value = row[i]
            if value is None:
                return ""
            text = str(value)
            if len(text) > most:
                return ""
            if exact:
                text = sub("", text)
            return start + text + end if text.strip() else ""

        return whole
    if len(at) == 1 and not t.fallback:
        (i,) = at

        def one(row: tuple[Any, ...]) -> str:
            value = row[i]
            if value is None:
                return ""
            text = str(value)
            if exact or len(text) > most:
                text = sub("", text)
            return start + text[:most] + end if text.strip() else ""

        return one
    fallback = _AT.get(t.fallback, -1)

    def first(row: tuple[Any, ...]) -> str:
        for i in at:
            value = row[i]
            if value is not None:
                text = str(value)
                if exact or len(text) > most:
                    text = sub("", text)
                if text.strip():
                    return start + text[:most] + end
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


class _Builders(NamedTuple):
    """ARTICLE_DETAILS' content and MIME_INFO from an article row, compiled from
    :data:`ARTICLE_TEXTS` and :data:`IMAGE`."""

    details: Part
    image: Part


def _builders(exact: bool) -> _Builders:
    return _Builders(
        _concat(tuple(_compiled(t, exact) for t in ARTICLE_TEXTS)),
        _compiled(
            IMAGE,
            exact,
            "<MIME_INFO><MIME><MIME_TYPE>image/jpeg</MIME_TYPE>",
            "<MIME_PURPOSE>normal</MIME_PURPOSE></MIME></MIME_INFO>",
        ),
    )


_FAST, _EXACT = _builders(exact=False), _builders(exact=True)
_PUID, _PRICE, _CURRENCY = _AT["puid"], _AT["price"], _AT["currency"]
_SKU, _CONDITION, _TYPE, _SHARES = _AT["sku"], _AT["condition"], _AT["type"], _AT["shares"]
#: An ARTICLE around its details, status, price and image (placeholder brackets).
_ARTICLE = tuple(
    str_markup(part)
    for part in (
        "<ARTICLE><SUPPLIER_AID>",
        "</SUPPLIER_AID><ARTICLE_DETAILS>",
        "</ARTICLE_DETAILS><ARTICLE_ORDER_DETAILS><ORDER_UNIT>C62</ORDER_UNIT>"
        '</ARTICLE_ORDER_DETAILS><ARTICLE_PRICE_DETAILS><ARTICLE_PRICE price_type="net_list">'
        "<PRICE_AMOUNT>",
        "</PRICE_AMOUNT><PRICE_CURRENCY>",
        "</PRICE_CURRENCY></ARTICLE_PRICE></ARTICLE_PRICE_DETAILS>",
        "</ARTICLE>\n",
    )
)


def amount(value: float) -> str | None:
    """PRICE_AMOUNT (an ``xsd:decimal``, any precision): the price's shortest decimal form with
    at least 2 decimals — ``20.00``, ``12.50``, ``0.001``; None when it is not a finite number."""
    text = repr(float(value))
    if "e" in text or "n" in text:  # 1e+16, 1e-05; inf, nan
        number = Decimal(text)
        if not number.is_finite():
            return None
        text = format(number, "f")
        if "." not in text:
            text += "."
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals:0<2}"


class Chunk(NamedTuple):
    """What :func:`articles` makes of one chunk of rows."""

    #: The ARTICLE elements (UTF-8).
    data: bytes
    rows: int
    articles: int
    #: Rows left out for a manufacturer SKU longer than MANUFACTURER_AID holds.
    long_skus: int
    #: The articles' ARTICLE_TO_CATALOGGROUP_MAP elements (UTF-8).
    groups: bytes
    #: The ``shares`` column: offers per supplier id (JSON), or None.
    shares: str | None


def articles(rows: list[tuple[Any, ...]]) -> Chunk:
    """ARTICLE elements for one chunk of rows (:data:`COLUMNS`).

    The markup is built around the raw texts and escaped once per chunk; a chunk in which a
    forbidden character reached the markup is built again with the exact text rules (one pass
    that strips them from every text before it is measured and cut)."""
    data, count, long_skus, groups = _articles(rows, _FAST)
    escaped = escape_in_markup(data)
    done = brackets_in_place(escaped)
    if len(done) != len(escaped):  # forbidden characters were stripped: build it exactly
        data = _articles(rows, _EXACT)[0]
        done = brackets_in_place(escape_in_markup(data))
    return Chunk(done, len(rows), count, long_skus, groups, rows[0][_SHARES] if rows else None)


def _articles(rows: list[tuple[Any, ...]], build: _Builders) -> tuple[bytes, int, int, bytes]:
    parts: list[str] = []
    groups: list[str] = []
    append = parts.append
    group = groups.append
    details_of, image_of = build
    status = _STATUS.get
    long_skus = 0
    at_puid, at_price, at_currency, at_sku, at_condition, at_type = (
        _PUID,
        _PRICE,
        _CURRENCY,
        _SKU,
        _CONDITION,
        _TYPE,
    )
    a, b, c, d, e, f = _ARTICLE
    for row in rows:
        price = row[at_price]
        if price is None or (price_text := amount(price)) is None:
            continue
        sku = row[at_sku]
        if sku is not None and len(str(sku)) > SKU_MOST:
            long_skus += 1
            continue
        puid = row[at_puid]
        append(
            f"{a}{puid}{b}{details_of(row)}{status(row[at_condition], '')}{c}{price_text}{d}"
            f"{row[at_currency]}{e}{image_of(row)}{f}"
        )
        if (type_id := row[at_type]) is not None:
            group(
                f"<ARTICLE_TO_CATALOGGROUP_MAP><ART_ID>{puid}</ART_ID>"
                f"<CATALOG_GROUP_ID>{type_id}</CATALOG_GROUP_ID></ARTICLE_TO_CATALOGGROUP_MAP>\n"
            )
    data = "".join(parts).encode("utf-8", "surrogateescape")
    return data, len(parts), long_skus, "".join(groups).encode()
