"""Schema creation, versioning and migration; first-use sample data."""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from tuiexport import db as dbmod
from tuiexport.models import ALL_MODELS, Meta, Product

SCHEMA_VERSION = 1

#: Migrations: version reached -> function(db). A schema at version N runs every step above N.
MIGRATIONS: dict[int, object] = {}

SAMPLE_CATALOG = Path(__file__).resolve().parent.parent / "data" / "sample-catalog.jsonl.gz"

# Indexes the selection queries and exporters rely on (beyond the ones the models declare).
EXTRA_INDEXES = [
    "CREATE INDEX IF NOT EXISTS supplier_item_supplier_product ON supplier_item (supplier_id, product_id)",
    "CREATE INDEX IF NOT EXISTS product_mfr_puid ON product (manufacturer_id, puid)",
    "CREATE INDEX IF NOT EXISTS product_type_puid ON product (product_type_id, puid)",
]

FTS_TABLE = "product_search"


def get_meta(key: str, default: str | None = None) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else default


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: value}
    ).execute()


def ensure_schema(db: pw.Database) -> None:
    """Create the schema on first use; migrate an older one; refuse a newer one."""
    with db.atomic():
        db.create_tables(ALL_MODELS, safe=True)
        for sql in EXTRA_INDEXES:
            db.execute_sql(sql)
        if dbmod.is_sqlite(db):
            db.execute_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
                "text, tokenize=\"unicode61 remove_diacritics 2\")"
            )
        current = int(get_meta("schema_version", "0") or 0)
        if current == 0:
            set_meta("schema_version", str(SCHEMA_VERSION))
            set_meta("catalog_version", "0")
        elif current > SCHEMA_VERSION:
            raise dbmod.DatabaseError(
                f"The database has schema version {current}, newer than this tuiexport "
                f"({SCHEMA_VERSION}); upgrade tuiexport."
            )
        else:
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)  # type: ignore[operator]
                set_meta("schema_version", str(version))


def catalog_version() -> int:
    return int(get_meta("catalog_version", "0") or 0)


def bump_catalog_version() -> int:
    """Record that the catalog changed (exports made before are no longer current)."""
    with dbmod.database.atomic():
        version = catalog_version() + 1
        set_meta("catalog_version", str(version))
    return version


def ensure_sample(db: pw.Database) -> None:
    """Load the bundled sample catalog and example definitions into a fresh, empty database."""
    if get_meta("sample_loaded") is not None:
        return
    if Product.select().limit(1).exists() or not SAMPLE_CATALOG.exists():
        set_meta("sample_loaded", "skipped")
        return
    from tuiexport.catalog.importer import import_file
    from tuiexport.management.examples import create_examples

    import_file(SAMPLE_CATALOG)
    create_examples()
    set_meta("sample_loaded", "yes")
