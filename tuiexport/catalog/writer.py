"""The bulk writer: decoded records checked against the catalog and upserted in chunks, with the
full-text index kept current. Shared by the import (:class:`CatalogWriter`) and the demo generator
(the column lists, :func:`insert_sql`, :func:`search_text`, :func:`bulk_load`).

Products are upserted by puid (a re-imported product's texts and offers are replaced, not added
to), reference rows (suppliers, manufacturers, product types) by id. Writes happen in chunks of
:data:`CHUNK` rows, one transaction each, so exports reading the same SQLite file are never
blocked for long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import peewee as pw

from tuiexport import db as dbmod
from tuiexport import schema
from tuiexport.catalog.bounds import CHUNK_BYTES, clip
from tuiexport.catalog.records import (
    MAX_REPORTED_ERRORS,
    ImportReport,
    ManufacturerRecord,
    ProductRecord,
    Record,
    RefRecord,
    RowError,
    SupplierRecord,
    gtin_valid,
)
from tuiexport.models import (
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
    tuples,
)

#: Rows per transaction.
CHUNK = 2_000
#: The columns the bulk writers (import and demo) fill, in their row tuples' order.
PRODUCT_COLUMNS = (
    "puid, ean, manufacturer_sku, manufacturer_id, product_type_id, qualification, "
    "condition, image_url, image_exportable, weight, eclass, created, updated"
)
TEXT_COLUMNS = "product_id, lang, name, short_description, long_description"
OFFER_COLUMNS = "product_id, supplier_id, supplier_sku, price, currency, stock, stock_status, condition, updated"
#: The report lists at most this many bad rows (``skipped`` counts them all).


def insert_sql(model: type[pw.Model], columns: str, mark: str) -> str:
    """``INSERT INTO table (columns) VALUES (marks)`` for raw ``executemany``.

    Columns of the model that are not listed get their constant default as a literal, so a
    column added to the model later (with a default) does not break the bulk writers.
    """
    names = [c.strip() for c in columns.split(",")]
    values = [mark] * len(names)
    for field in model._meta.sorted_fields:
        if field.column_name in names or isinstance(field, pw.AutoField):
            continue
        default = field.default
        if default is None or callable(default):
            continue
        if isinstance(default, bool):
            literal = "TRUE" if default else "FALSE"
        elif isinstance(default, (int, float)):
            literal = repr(default)
        else:
            literal = "'" + str(default).replace("'", "''") + "'"
        names.append(field.column_name)
        values.append(literal)
    table = model._meta.table_name
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(values)})"


def search_text(names: Iterable[str], sku: str | None, ean: str | None) -> str:
    """What the full-text index holds for a product: its names in every language, SKU, EAN."""
    return " ".join(part for part in (*names, sku, ean) if part)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


# --- the writer --------------------------------------------------------------------------


class CatalogWriter:
    """Checks decoded records against the catalog and writes them in chunks."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.db = dbmod.database.obj
        self.sqlite = dbmod.is_sqlite(self.db)
        self.mark = "?" if self.sqlite else "%s"
        #: No product and no full-text row yet: then only the products this import replaces can
        #: have full-text rows to delete.
        self.fresh = (
            self.sqlite
            and not Product.select().limit(1).exists()
            and not self.db.execute_sql(f"SELECT 1 FROM {schema.FTS_TABLE} LIMIT 1").fetchone()
        )
        self.suppliers = {i: n for i, n in tuples(Supplier.select(Supplier.id, Supplier.name))}
        self.manufacturers = {
            i: n for i, n in tuples(Manufacturer.select(Manufacturer.id, Manufacturer.name))
        }
        self.types = {i: n for i, n in tuples(ProductType.select(ProductType.id, ProductType.name))}
        self.refs: list[RefRecord] = []
        self.products: dict[int, ProductRecord] = {}
        self.replaced = 0
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.changed = False
        #: Bytes of input behind the queued rows (see CHUNK_BYTES).
        self.pending_bytes = 0

    def grow(self, size: int) -> None:
        """Note that ``size`` more bytes of input were read for the queued rows."""
        self.pending_bytes += size

    def error(self, line: int, reason: str) -> None:
        self.report.skipped += 1
        if len(self.report.errors) < MAX_REPORTED_ERRORS:
            self.report.errors.append((line, reason))

    def add(self, record: Record) -> None:
        """Check one decoded record (raises RowError) and queue it."""
        if isinstance(record, ProductRecord):
            self.check_product(record)
            if record.puid in self.products:
                self.replaced += 1
            self.products[record.puid] = record
        else:
            # A reference row is usable by the rows after it, even before it is written.
            if isinstance(record, SupplierRecord):
                self.suppliers[record.id] = record.name
            elif isinstance(record, ManufacturerRecord):
                self.manufacturers[record.id] = record.name
            else:
                self.types[record.id] = record.name
            self.refs.append(record)
        if len(self.products) + len(self.refs) >= CHUNK or self.pending_bytes >= CHUNK_BYTES:
            self.flush()

    def check_product(self, p: ProductRecord) -> None:
        if p.ean is not None:
            p.ean = p.ean.strip() or None
        if p.ean is not None and not gtin_valid(p.ean):
            raise RowError(
                f"ean: '{clip(p.ean)}' is not a valid EAN/GTIN "
                "(8, 12, 13 or 14 digits with check digit)"
            )
        if p.manufacturer_id is not None and p.manufacturer_id not in self.manufacturers:
            raise RowError(f"manufacturerId: unknown manufacturer {p.manufacturer_id}")
        if p.product_type_id is not None and p.product_type_id not in self.types:
            raise RowError(f"productTypeId: unknown product type {p.product_type_id}")
        seen: set[int] = set()
        for i, offer in enumerate(p.offers):
            if offer.supplier_id not in self.suppliers:
                raise RowError(f"offers[{i}].supplierId: unknown supplier {offer.supplier_id}")
            if offer.supplier_id in seen:
                raise RowError(
                    f"offers[{i}].supplierId: supplier {offer.supplier_id} has two offers"
                )
            seen.add(offer.supplier_id)

    def _time(self, value: datetime | None) -> str | datetime:
        if value is None:
            value = self.now
        elif value.tzinfo is not None or value.microsecond:
            value = _utc(value)
        assert value is not None
        return value.isoformat(" ") if self.sqlite else value

    def flush(self) -> None:
        if not self.refs and not self.products:
            return
        m = self.mark
        # Raw cursors raise the driver's errors; the wrapper turns them into peewee's.
        with pw.__exception_wrapper__, self.db.atomic():  # type: ignore[attr-defined]  # not in peewee's stubs
            cursor = self.db.cursor()
            for record in self.refs:
                values: tuple[object, ...]
                if isinstance(record, SupplierRecord):
                    table, cols, values = (
                        "supplier",
                        ("name", "partner"),
                        (record.name, record.partner),
                    )
                elif isinstance(record, ManufacturerRecord):
                    table, cols, values = (
                        "manufacturer",
                        ("name", "short_name"),
                        (record.name, record.short_name),
                    )
                else:
                    table, cols, values = (
                        "product_type",
                        ("name", "group_code"),
                        (record.name, record.group_code),
                    )
                cursor.execute(
                    f"INSERT INTO {table} (id, {', '.join(cols)}) VALUES ({m}, {m}, {m}) "
                    f"ON CONFLICT (id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in cols),
                    (record.id, *values),
                )
            self.report.references += len(self.refs)
            if self.products:
                self._write_products(cursor)
        self.changed = True
        self.refs = []
        self.products = {}
        self.replaced = 0
        self.pending_bytes = 0

    def _write_products(self, cursor: Any) -> None:
        m = self.mark
        puids = list(self.products)
        marks = ", ".join([m] * len(puids))
        cursor.execute(f"SELECT puid FROM product WHERE puid IN ({marks})", puids)
        existing = {row[0] for row in cursor.fetchall()}
        self.report.updated += len(existing) + self.replaced
        self.report.added += len(puids) - len(existing)

        columns = PRODUCT_COLUMNS
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:-2])
        product_sql = (
            insert_sql(Product, columns, m) + " "
            f"ON CONFLICT (puid) DO UPDATE SET {updates}, "
            f"created = COALESCE({m}, product.created), updated = excluded.updated"
        )
        rows, texts, offers, search = [], [], [], []
        for p in self.products.values():
            created = self._time(p.created) if p.created else None
            rows.append(
                (
                    p.puid,
                    p.ean,
                    p.manufacturer_sku,
                    p.manufacturer_id,
                    p.product_type_id,
                    p.qualification,
                    p.condition,
                    p.image_url,
                    # "may export its image" only means something when there is an image.
                    p.image_exportable and bool(p.image_url),
                    p.weight,
                    p.eclass,
                    created or self._time(None),
                    self._time(p.updated),
                    created,
                )
            )
            for lang, t in p.texts.items():
                texts.append((p.puid, lang, t.name, t.short_description, t.long_description))
            for o in p.offers:
                offers.append(
                    (
                        p.puid,
                        o.supplier_id,
                        o.supplier_sku,
                        o.price,
                        o.currency,
                        o.stock,
                        o.stock_status,
                        o.condition,
                        self._time(o.updated),
                    )
                )
            search.append(
                (p.puid, search_text((t.name for t in p.texts.values()), p.manufacturer_sku, p.ean))
            )
        cursor.executemany(product_sql, rows)
        # Texts, offers and index entries of products already there are replaced, not merged.
        replaced = [puid for puid in puids if puid in existing]
        old_marks = ", ".join([m] * len(replaced))
        if replaced:
            cursor.execute(f"DELETE FROM product_text WHERE product_id IN ({old_marks})", replaced)
            cursor.execute(f"DELETE FROM supplier_item WHERE product_id IN ({old_marks})", replaced)
        cursor.executemany(insert_sql(ProductText, TEXT_COLUMNS, m), texts)
        cursor.executemany(insert_sql(SupplierItem, OFFER_COLUMNS, m), offers)
        if self.sqlite:
            # Every puid, not just the replaced ones: no stray index row may block the insert
            # (in a fresh catalog there are none).
            if not self.fresh:
                cursor.execute(f"DELETE FROM {schema.FTS_TABLE} WHERE rowid IN ({marks})", puids)
            elif replaced:
                cursor.execute(
                    f"DELETE FROM {schema.FTS_TABLE} WHERE rowid IN ({old_marks})", replaced
                )
            cursor.executemany(
                f"INSERT INTO {schema.FTS_TABLE} (rowid, text) VALUES (?, ?)", search
            )


# --- the bulk path ---------------------------------------------------------------------------

_IF_NOT_EXISTS = re.compile(r"^CREATE (UNIQUE )?INDEX (?!IF NOT EXISTS)", re.IGNORECASE)
#: A load of at least this many products into a catalog no bigger takes the bulk path (an empty
#: catalog always does).
REBUILD_INDEXES_FROM = 100_000
#: WAL pages between two checkpoints while loading (SQLite's default is 1,000: a checkpoint, with
#: its fsyncs, every 4 MB written).
BULK_CHECKPOINT_PAGES = 16_000


def is_bulk(db: pw.Database, new_products: int) -> bool:
    """Whether loading ``new_products`` takes the bulk path (see :func:`bulk_load`)."""
    if not dbmod.is_sqlite(db):
        return False
    if not Product.select().limit(1).exists():
        return True
    return new_products >= REBUILD_INDEXES_FROM and Product.select().count() <= new_products


#: An index that leads with the product: a load in puid order appends to it (cheap, kept live;
#: replacing a product's texts and offers finds them through it).
_BY_PRODUCT = re.compile(r'\(\s*"?product_id"?\s*[,)]')


def _random_indexes(db: pw.Database, *tables: str) -> list[tuple[str, str]]:
    """The secondary indexes of ``tables`` that a load writes to at random places."""
    marks = ", ".join("?" * len(tables))
    rows: list[tuple[str, str]] = db.execute_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks}) ORDER BY name",
        tables,
    ).fetchall()
    return [(name, sql) for name, sql in rows if not _BY_PRODUCT.search(sql)]


def _create(db: pw.Database, indexes: list[tuple[str, str]]) -> None:
    for _, sql in indexes:
        # Another process opening the database meanwhile may have created some again.
        db.execute_sql(_IF_NOT_EXISTS.sub(r"CREATE \1INDEX IF NOT EXISTS ", sql, count=1))


@contextmanager
def bulk_load(db: pw.Database, new_products: int, *, masks: bool = False) -> Iterator[bool]:
    """Load ``new_products`` the fast way when :func:`is_bulk` says so; yields whether it does.

    The bulk path, for a big load into a small (or empty) catalog: the catalog tables' secondary
    indexes that the load would write at random places (all but those that lead with the
    product) are dropped and built again at the end (sorting a million keys once is several times
    faster than a million random inserts into each index), the offer-mask triggers are suspended
    and every product's masks computed in one pass at the end (not an UPDATE of the product and
    its filter index per offer), and the WAL is checkpointed less often. Queries from other
    processes are slow meanwhile. A run that dies in the middle leaves indexes or triggers
    missing; the next ``prepare_database`` creates them again (``ensure_schema``), but the masks of
    the offers loaded without triggers stay as they were until ``schema.refresh_offer_summary``.
    With ``masks`` (the demo generator) the triggers are suspended even off the bulk path.
    """
    bulk = is_bulk(db, new_products)
    sqlite = dbmod.is_sqlite(db)
    suspend = sqlite and (bulk or masks)
    products: list[tuple[str, str]] = []
    offers: list[tuple[str, str]] = []
    if bulk:
        products = _random_indexes(db, "product")
        offers = _random_indexes(db, "product_text", "supplier_item")
        with db.atomic():
            for name, _ in products + offers:
                db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
        db.execute_sql(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
    if suspend:
        with db.atomic():
            schema.suspend_offer_triggers(db)
    try:
        yield bulk
    finally:
        # The product table's indexes after the masks (its filter index holds them), so that no
        # index is written twice.
        with db.atomic():
            _create(db, offers)
            if suspend:
                schema.resume_offer_triggers(db)
            _create(db, products)
        if bulk:
            db.execute_sql("PRAGMA wal_autocheckpoint = 1000")


def analyze(db: pw.Database) -> None:
    """Statistics for the query planner after a big load (sampled: a second, not a full pass)."""
    if dbmod.is_sqlite(db):
        db.execute_sql("PRAGMA analysis_limit = 1000")
    db.execute_sql("ANALYZE")
