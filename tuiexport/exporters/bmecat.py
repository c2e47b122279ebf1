"""BMEcat 1.2 T_NEW_CATALOG, valid against the official XML Schema.

Order as the standard wants it: HEADER (GENERATOR_INFO, CATALOG, BUYER, SUPPLIER), then
T_NEW_CATALOG with CATALOG_GROUP_SYSTEM (a root and one leaf per product type), one ARTICLE per
product, and ARTICLE_TO_CATALOGGROUP_MAP. The schema requires ARTICLE_PRICE_DETAILS in every
ARTICLE, so a product without any net price is left out and the run's messages say how many.

One SQL query (portable: SQLite and PostgreSQL) gives the raw values per article; Python writes
the markup, cuts texts to the schema's lengths and strips what XML 1.0 forbids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from tuiexport import db as dbmod
from tuiexport.exporters import encode
from tuiexport.exporters.base import SELECTION_TABLE, ExportJob, WriteStats

NAMESPACE = "http://www.bmecat.org/XMLSchema/1.2/bmecat_new_catalog"
LANGUAGES = {"de": "deu", "en": "eng", "fr": "fra", "it": "ita", "nl": "nld", "es": "spa"}
CATALOG_CURRENCY = "EUR"
#: Currencies of offers we may quote: those our catalog uses that BMEcat 1.2's list knows.
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "HUF", "JPY", "CNY", "CAD", "AUD")
ROOT_GROUP = "root"

#: ARTICLE elements of one chunk of rows, as Python source that needs only the standard library:
#: run in the export's worker processes (see encode.run_parallel) and, exec'd here, on the job's
#: own connection, so both write the same bytes. Same escaping, stripping and rounding as
#: encode (XmlFormat.escape, strip_xml_forbidden, _round).
ARTICLES_CODE = r'''
import re
from decimal import ROUND_HALF_UP, Decimal

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escape(value):
    return (
        str(value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def _round(value, places):
    text = repr(float(value))
    digits = len(places) - 2
    _, _, decimals = text.partition(".")
    if "e" not in text and decimals[digits:] != "5":
        return f"{float(value):.{digits}f}"
    return str(Decimal(text).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def _text(value, most):
    """Schema-fit text: forbidden characters gone, at most ``most`` characters, never blank."""
    if value is None:
        return None
    value = _FORBIDDEN.sub("", str(value))
    if not value.strip():
        return None
    return _escape(value[:most])


def _el(tag, text):
    return "" if text is None else f"<{tag}>{text}</{tag}>"


def process(rows):
    """ARTICLE elements for one chunk of rows: (UTF-8 text, rows, articles written)."""
    parts = []
    for puid, name, long, short, ean, sku, mname, image, price, currency in rows:
        if price is None:
            continue
        ean = _text(ean, 14) if ean is not None and len(ean) <= 14 else None
        image = _text(image, 250) if image and len(image) <= 250 else None
        parts.append(
            f"<ARTICLE><SUPPLIER_AID>{puid}</SUPPLIER_AID><ARTICLE_DETAILS>"
            f"<DESCRIPTION_SHORT>{_text(name, 80) or _text(sku, 80) or puid}</DESCRIPTION_SHORT>"
            + _el("DESCRIPTION_LONG", _text(long, 64000) or _text(short, 64000))
            + _el("EAN", ean)
            + _el("MANUFACTURER_AID", _text(sku, 50))
            + _el("MANUFACTURER_NAME", _text(mname, 50))
            + "</ARTICLE_DETAILS><ARTICLE_ORDER_DETAILS><ORDER_UNIT>C62</ORDER_UNIT>"
            "</ARTICLE_ORDER_DETAILS><ARTICLE_PRICE_DETAILS>"
            f'<ARTICLE_PRICE price_type="net_list"><PRICE_AMOUNT>{_round(price, "0.01")}'
            f"</PRICE_AMOUNT><PRICE_CURRENCY>{currency}</PRICE_CURRENCY></ARTICLE_PRICE>"
            "</ARTICLE_PRICE_DETAILS>"
            + (
                "<MIME_INFO><MIME><MIME_TYPE>image/jpeg</MIME_TYPE>"
                f"<MIME_SOURCE>{image}</MIME_SOURCE><MIME_PURPOSE>normal</MIME_PURPOSE>"
                "</MIME></MIME_INFO>"
                if image
                else ""
            )
            + "</ARTICLE>\n"
        )
    return "".join(parts).encode(), len(rows), len(parts)
'''
_scope: dict[str, Any] = {"__name__": "tuiexport_bmecat_articles"}
exec(ARTICLES_CODE, _scope)
_text = _scope["_text"]
_el = _scope["_el"]
_articles = _scope["process"]


def _price_sql(job: ExportJob, column: str) -> str:
    currencies = ", ".join(f"'{c}'" for c in CURRENCIES)
    # The lowest net price, preferring offers in the catalog currency.
    return (
        f"(SELECT si.{column} FROM supplier_item si WHERE si.product_id = p.puid "
        f"AND si.price > 0 AND si.currency IN ({currencies}) "
        f"ORDER BY CASE WHEN si.currency = '{CATALOG_CURRENCY}' THEN 0 ELSE 1 END, si.price, "
        f"si.supplier_id LIMIT 1)"
    )


@dataclass
class BmecatWriter:
    profile: str = "bmecat12"
    output: str = "xml"
    extension: str = "xml"
    media_type: str = "application/xml"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        lang, fallback = encode._languages(job)
        encode.release_memory(job)
        opts = job.options
        priced = (
            f"EXISTS (SELECT 1 FROM supplier_item si WHERE si.product_id = p.puid AND si.price > 0 "
            f"AND si.currency IN ({', '.join(repr(c) for c in CURRENCIES)}))"
        )
        sel = SELECTION_TABLE
        # SQLite: keep sel as the outer loop (puid order without a sort).
        cross = "CROSS JOIN" if dbmod.is_sqlite(job.db) else "JOIN"

        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f'<BMECAT version="1.2" xmlns="{NAMESPACE}">\n<HEADER>\n'.encode())
        started = job.started
        header = (
            _el("GENERATOR_INFO", _text(encode.GENERATOR, 250))
            + "\n<CATALOG>"
            + _el("LANGUAGE", LANGUAGES.get(lang, "deu"))
            + _el("CATALOG_ID", _text(job.export_id, 20) or "tuiexport")
            + _el("CATALOG_VERSION", "1.0")
            + _el("CATALOG_NAME", _text(job.export_name, 100))
            + f'<DATETIME type="generation_date"><DATE>{started:%Y-%m-%d}</DATE>'
            + f"<TIME>{started:%H:%M:%S}</TIME><TIMEZONE>Z</TIMEZONE></DATETIME>"
            + _el("CURRENCY", CATALOG_CURRENCY)
            + "</CATALOG>\n<BUYER>"
            + _el("BUYER_NAME", _text(opts.get("bmecat_buyer"), 50) or "Catalog recipient")
            + "</BUYER>\n<SUPPLIER>"
            + _el("SUPPLIER_NAME", _text(opts.get("bmecat_supplier"), 50) or "tuiexport")
            + "</SUPPLIER>\n</HEADER>\n<T_NEW_CATALOG>\n"
        )
        out.write(header.encode())

        # CATALOG_GROUP_SYSTEM: the product types of the articles written.
        out.write(
            (
                "<CATALOG_GROUP_SYSTEM><GROUP_SYSTEM_ID>tuiexport-product-types</GROUP_SYSTEM_ID>"
                "<GROUP_SYSTEM_NAME>Product types</GROUP_SYSTEM_NAME>\n"
                f'<CATALOG_STRUCTURE type="root"><GROUP_ID>{ROOT_GROUP}</GROUP_ID>'
                "<GROUP_NAME>Catalog</GROUP_NAME><PARENT_ID>0</PARENT_ID></CATALOG_STRUCTURE>\n"
            ).encode()
        )
        types = job.db.execute_sql(
            f"SELECT pt.id, pt.name, pt.group_code FROM product_type pt WHERE pt.id IN "
            f"(SELECT p.product_type_id FROM {sel} {cross} product p ON p.puid = {sel}.puid "
            f"WHERE {priced}) ORDER BY pt.id"
        ).fetchall()
        for type_id, name, code in types:
            out.write(
                (
                    f'<CATALOG_STRUCTURE type="leaf"><GROUP_ID>{type_id}</GROUP_ID>'
                    + _el("GROUP_NAME", _text(name, 50) or str(type_id))
                    + _el("GROUP_DESCRIPTION", _text(code, 250))
                    + f"<PARENT_ID>{ROOT_GROUP}</PARENT_ID></CATALOG_STRUCTURE>\n"
                ).encode()
            )
        out.write(b"</CATALOG_GROUP_SYSTEM>\n")

        def text(col: str) -> str:
            if lang == fallback:
                return f"NULLIF(t.{col}, '')"
            return f"COALESCE(NULLIF(t.{col}, ''), NULLIF(f.{col}, ''))"

        joins = f"LEFT JOIN product_text t ON t.product_id = p.puid AND t.lang = '{lang}'"
        if fallback != lang:
            joins += f" LEFT JOIN product_text f ON f.product_id = p.puid AND f.lang = '{fallback}'"
        long_sql = text("long_description") if job.long_descriptions else "NULL"
        columns = (
            f"p.puid, {text('name')}, {long_sql}, {text('short_description')}, p.ean, "
            f"p.manufacturer_sku, m.name, CASE WHEN p.image_exportable THEN p.image_url END, "
            f"{_price_sql(job, 'price')}, {_price_sql(job, 'currency')}"
        )
        joins = f"LEFT JOIN manufacturer m ON m.id = p.manufacturer_id {joins}"
        written = skipped = seen = 0
        if encode.parallel_workers(job):
            # CROSS JOIN: the puid list (in order) is the outer loop, no ORDER BY needed.
            sql = (
                f"SELECT {columns} FROM {encode.PAR_SELECTION} CROSS JOIN product p "
                f"ON p.puid = {sel}.puid {joins}"
            )
            chunks = encode.run_parallel(
                job, sql, lambda chunk: chunk, remote=_articles, remote_code=ARTICLES_CODE
            )
        else:
            sql = f"SELECT {columns} FROM {sel} {cross} product p ON p.puid = {sel}.puid {joins} ORDER BY {sel}.puid"
            cursor = job.db.execute_sql(sql)
            chunks = (_articles(rows) for rows in iter(lambda: cursor.fetchmany(encode.CHUNK), []))
        for data, rows, articles in chunks:
            out.write(data)
            written += articles
            skipped += rows - articles
            seen += rows
            job.check(seen)

        cursor = job.db.execute_sql(
            f"SELECT p.puid, p.product_type_id FROM {sel} {cross} product p ON p.puid = {sel}.puid "
            f"WHERE p.product_type_id IS NOT NULL AND {priced} ORDER BY {sel}.puid"
        )
        while rows := cursor.fetchmany(encode.CHUNK * 5):
            out.write(
                "".join(
                    f"<ARTICLE_TO_CATALOGGROUP_MAP><ART_ID>{puid}</ART_ID>"
                    f"<CATALOG_GROUP_ID>{type_id}</CATALOG_GROUP_ID></ARTICLE_TO_CATALOGGROUP_MAP>\n"
                    for puid, type_id in rows
                ).encode()
            )
        out.write(b"</T_NEW_CATALOG>\n</BMECAT>\n")
        if skipped:
            job.messages.append(
                f"{skipped:,} product{'s' if skipped != 1 else ''} without a net price "
                f"{'were' if skipped != 1 else 'was'} left out of the BMEcat file "
                f"(BMEcat 1.2 requires a price for every article)."
            )
        shares = encode.supplier_shares(job)
        return WriteStats(written, shares, skipped=skipped)
