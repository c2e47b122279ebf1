"""BMEcat 1.2 T_NEW_CATALOG, valid against the official XML Schema.

Order as the standard wants it: HEADER (GENERATOR_INFO, CATALOG, BUYER, SUPPLIER), then
T_NEW_CATALOG with CATALOG_GROUP_SYSTEM (a root and one leaf per product type), one ARTICLE per
product, and ARTICLE_TO_CATALOGGROUP_MAP. The schema requires ARTICLE_PRICE_DETAILS in every
ARTICLE, so a product without any net price is left out and the run's messages say how many;
so is one whose manufacturer SKU is longer than MANUFACTURER_AID holds (never cut into another
identifier). Used and refurbished products carry ARTICLE_STATUS.

One SQL query (portable: SQLite and PostgreSQL) gives the raw values per article
(:data:`bmecat_mapping.COLUMNS`); :func:`bmecat_mapping.articles` writes the markup, cuts texts to
the schema's lengths and strips what XML 1.0 forbids — in the worker processes when there are
any. The mapping is data (:mod:`.bmecat_mapping`), which also writes the docs table.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from tuiexport.exporters.base import SELECTION_TABLE, ExportJob, WriteStats
from tuiexport.exporters.bmecat_mapping import (
    ARTICLE_TEXTS,
    COLUMNS,
    HANDLER,
    NAMESPACE,
    SKU_MOST,
    Chunk,
    articles,
    element,
    fit,
)
from tuiexport.exporters.parallel import PAR_SELECTION, parallel_workers, run_parallel
from tuiexport.exporters.sql import CHUNK, cross, languages, release_memory, text_joins, text_sql
from tuiexport.exporters.summary import CHUNK_SHARES, generator, supplier_names, supplier_shares

LANGUAGES = {"de": "deu", "en": "eng", "fr": "fra", "it": "ita", "nl": "nld", "es": "spa"}
CATALOG_CURRENCY = "EUR"
#: Currencies of offers we may quote: those our catalog uses that BMEcat 1.2's list knows.
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "HUF", "JPY", "CNY", "CAD", "AUD")
ROOT_GROUP = "root"
#: ARTICLE_TO_CATALOGGROUP_MAP waits in memory up to this size, then in a temporary file.
SPOOL_IN_MEMORY = 8 << 20


def _best_offer_sql() -> str:
    """The id of the offer whose net price an article quotes: the lowest, preferring offers in
    the catalog currency (its price and currency are then read from that one row: two such
    subqueries, one per column, cost a fifth of the workers' SQL)."""
    currencies = ", ".join(f"'{c}'" for c in CURRENCIES)
    return (
        f"(SELECT si.id FROM supplier_item si WHERE si.product_id = p.puid "
        f"AND si.price > 0 AND si.currency IN ({currencies}) "
        f"ORDER BY CASE WHEN si.currency = '{CATALOG_CURRENCY}' THEN 0 ELSE 1 END, si.price, "
        f"si.supplier_id LIMIT 1)"
    )


def _priced(puid: str) -> str:
    """SQL: product ``p`` (its puid also as ``puid``) is written as an article: with a price, and
    a manufacturer SKU MANUFACTURER_AID holds (the rules of bmecat_mapping.articles)."""
    return (
        f"EXISTS (SELECT 1 FROM supplier_item si WHERE si.product_id = {puid} AND si.price > 0 "
        f"AND si.currency IN ({', '.join(repr(c) for c in CURRENCIES)})) "
        f"AND (p.manufacturer_sku IS NULL OR length(p.manufacturer_sku) <= {SKU_MOST})"
    )


def _used_type(job: ExportJob) -> str:
    """SQL: product type ``pt`` has an article written. A large selection is searched per type,
    through the (type, puid) index, until its first article: reading the selection product by
    product with its offers took about 2.5 s at 1M products before the first article could be
    written. A small one is read product by product (a type it lacks would scan the catalog's
    products of that type)."""
    sel = SELECTION_TABLE
    if job.total >= job.tuning.parallel_min:
        return (
            f"EXISTS (SELECT 1 FROM product p {cross(job)} {sel} ON {sel}.puid = p.puid "
            f"WHERE p.product_type_id = pt.id AND {_priced(f'{sel}.puid')})"
        )
    return (
        f"pt.id IN (SELECT p.product_type_id FROM {sel} {cross(job)} product p "
        f"ON p.puid = {sel}.puid WHERE {_priced('p.puid')})"
    )


@dataclass
class BmecatWriter:
    profile: str = "bmecat12"
    output: str = "xml"
    extension: str = "xml"
    media_type: str = "application/xml"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        lang, _ = languages(job)
        release_memory(job)
        opts = job.options
        sel = SELECTION_TABLE
        # SQLite: keep sel as the outer loop (puid order without a sort).
        join = cross(job)

        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f'<BMECAT version="1.2" xmlns="{NAMESPACE}">\n<HEADER>\n'.encode())
        started = job.started
        header = (
            element("GENERATOR_INFO", fit(generator(), 250))
            + "\n<CATALOG>"
            + element("LANGUAGE", LANGUAGES.get(lang, "deu"))
            + element("CATALOG_ID", fit(job.export_id, 20) or "tuiexport")
            + element("CATALOG_VERSION", "1.0")
            + element("CATALOG_NAME", fit(job.export_name, 100))
            + f'<DATETIME type="generation_date"><DATE>{started:%Y-%m-%d}</DATE>'
            + f"<TIME>{started:%H:%M:%S}</TIME><TIMEZONE>Z</TIMEZONE></DATETIME>"
            + element("CURRENCY", CATALOG_CURRENCY)
            + "</CATALOG>\n<BUYER>"
            + element("BUYER_NAME", fit(opts.bmecat_buyer, 50) or "Catalog recipient")
            + "</BUYER>\n<SUPPLIER>"
            + element("SUPPLIER_NAME", fit(opts.bmecat_supplier, 50) or "tuiexport")
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
            f"SELECT pt.id, pt.name, pt.group_code FROM product_type pt WHERE {_used_type(job)} "
            f"ORDER BY pt.id"
        ).fetchall()
        for type_id, name, code in types:
            out.write(
                (
                    f'<CATALOG_STRUCTURE type="leaf"><GROUP_ID>{type_id}</GROUP_ID>'
                    + element("GROUP_NAME", fit(name, 50) or str(type_id))
                    + element("GROUP_DESCRIPTION", fit(code, 250))
                    + f"<PARENT_ID>{ROOT_GROUP}</PARENT_ID></CATALOG_STRUCTURE>\n"
                ).encode()
            )
        out.write(b"</CATALOG_GROUP_SYSTEM>\n")

        sql_of = {
            "puid": "p.puid",
            "name": text_sql(job, "name"),
            "long": text_sql(job, "long_description"),
            "short": text_sql(job, "short_description"),
            "ean": "p.ean",
            "sku": "p.manufacturer_sku",
            "manufacturer": "m.name",
            "image": "CASE WHEN p.image_exportable THEN p.image_url END",
            "price": "b.price",
            "currency": "b.currency",
            "condition": "p.condition",
            "type": "p.product_type_id",
            "shares": "NULL",
        }
        assert list(sql_of) == list(COLUMNS), "one SQL expression per mapping column, in order"
        # Columns only switched-off elements read (the long and short descriptions without
        # "include long descriptions") are not read at all: their elements are not written.
        off = {c for t in ARTICLE_TEXTS if t.when and not getattr(job, t.when) for c in t.columns}
        off -= {c for t in ARTICLE_TEXTS if not t.when or getattr(job, t.when) for c in t.columns}
        sql_of.update(dict.fromkeys(off, "NULL"))
        # The workers count the supplier shares along with their chunks.
        parallel = parallel_workers(job) > 0
        shares: Counter[int] | None = Counter() if parallel else None
        if parallel:
            sql_of["shares"] = CHUNK_SHARES
        columns = ", ".join(sql_of.values())
        joins = (
            f"LEFT JOIN manufacturer m ON m.id = p.manufacturer_id {text_joins(job)} "
            f"LEFT JOIN supplier_item b ON b.id = {_best_offer_sql()}"
        )
        written = skipped = long_skus = seen = 0
        chunks: Iterator[Chunk]
        if parallel:
            # CROSS JOIN: the puid list (in order) is the outer loop, no ORDER BY needed.
            sql = (
                f"SELECT {columns} FROM {PAR_SELECTION} CROSS JOIN product p "
                f"ON p.puid = {sel}.puid {joins}"
            )
            chunks = run_parallel(job, sql, HANDLER)
        else:
            sql = (
                f"SELECT {columns} FROM {sel} {join} product p ON p.puid = {sel}.puid {joins} "
                f"ORDER BY {sel}.puid"
            )
            cursor = job.db.execute_sql(sql)
            chunks = (articles(rows) for rows in iter(lambda: cursor.fetchmany(CHUNK), []))
        # ARTICLE_TO_CATALOGGROUP_MAP comes after every ARTICLE: the articles' map elements
        # (built with them) wait in a temporary file, so memory stays flat.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as groups:
            for chunk in chunks:
                out.write(chunk.data)
                groups.write(chunk.groups)
                if shares is not None and chunk.shares:
                    shares.update({int(k): v for k, v in json.loads(chunk.shares).items()})
                written += chunk.articles
                skipped += chunk.rows - chunk.articles
                long_skus += chunk.long_skus
                seen += chunk.rows
                job.check(seen)
            groups.seek(0)
            shutil.copyfileobj(groups, out, 1 << 20)
        out.write(b"</T_NEW_CATALOG>\n</BMECAT>\n")
        priceless = skipped - long_skus
        if priceless:
            job.messages.append(
                f"{priceless:,} product{'s' if priceless != 1 else ''} without a net price "
                f"{'were' if priceless != 1 else 'was'} left out of the BMEcat file "
                f"(BMEcat 1.2 requires a price for every article)."
            )
        if long_skus:
            job.messages.append(
                f"{long_skus:,} product{'s' if long_skus != 1 else ''} with a manufacturer SKU "
                f"longer than {SKU_MOST} characters {'were' if long_skus != 1 else 'was'} left "
                f"out of the BMEcat file (MANUFACTURER_AID holds {SKU_MOST}; a shortened SKU "
                f"would be a different article number)."
            )
        names = supplier_shares(job) if shares is None else supplier_names(job, shares)
        return WriteStats(written, names, skipped=skipped)
