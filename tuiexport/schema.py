"""Schema creation, versioning and migration (the first-run sample is :mod:`tuiexport.setup`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import peewee as pw

from tuiexport import db as dbmod
from tuiexport.models import ALL_MODELS, NOTIFICATION_MODELS, Meta, ShareLink

SCHEMA_VERSION = 12

#: Suppliers with an id below this have a bit in the product's offer masks.
MASK_BITS = 63

# Indexes the selection queries and exporters rely on (beyond the ones the models declare).
EXTRA_INDEXES = [
    "CREATE INDEX IF NOT EXISTS supplier_item_supplier_product ON supplier_item (supplier_id, product_id)",
    "CREATE INDEX IF NOT EXISTS supplier_item_price ON supplier_item (price, product_id, supplier_id, stock)",
    "CREATE INDEX IF NOT EXISTS product_mfr_puid ON product (manufacturer_id, puid)",
    "CREATE INDEX IF NOT EXISTS product_type_puid ON product (product_type_id, puid)",
    # Covers every product-level rule: counting scans this narrow index, not the wide table. It
    # leads with puid so that a scan visits products in puid order: the offer look-ups of a
    # price range (selection.EXISTS) then walk supplier_item_offer in order, not at random.
    "CREATE INDEX IF NOT EXISTS product_filter_puid ON product (puid, offer_mask, stock_mask, "
    "price_mask, price_low, price_high, qualification, condition, image_exportable, "
    "manufacturer_id, product_type_id, updated)",
    # Covers a product's offers for a price range's EXISTS (no table row read per offer).
    "CREATE INDEX IF NOT EXISTS supplier_item_offer ON supplier_item (product_id, price, stock, "
    "supplier_id)",
    # A share link's newest downloads and its count of the last days (management.links). Here,
    # not on the model: create_tables would make it before version 7 adds the column.
    "CREATE INDEX IF NOT EXISTS run_link_started ON run (link_id, started)",
]

_BIT = "(CASE WHEN {row}.supplier_id < 63 THEN CAST(1 AS BIGINT) << {row}.supplier_id ELSE 0 END)"
_SUMMARY = (
    "SELECT CAST(COALESCE(SUM({bit}), 0) AS BIGINT), "
    "CAST(COALESCE(SUM(CASE WHEN s.stock > 0 THEN {bit} ELSE 0 END), 0) AS BIGINT), "
    "CAST(COALESCE(SUM(CASE WHEN s.price > 0 THEN {bit} ELSE 0 END), 0) AS BIGINT), "
    "MIN(CASE WHEN s.price > 0 THEN s.price END), MAX(CASE WHEN s.price > 0 THEN s.price END) "
    "FROM supplier_item AS s WHERE s.product_id = product.puid"
).format(bit=_BIT.format(row="s"))
#: The columns ``_SUMMARY`` computes, in its order.
_SUMMARY_COLUMNS = "offer_mask, stock_mask, price_mask, price_low, price_high"

# Triggers keep the masks exact whoever writes supplier items (import, demo, SQL by hand): as a
# product has at most one offer per supplier, clearing or setting that supplier's bit is exact.
# A new offer's price widens the product's price range; a removed one recomputes it from the
# offers left (two look-ups in supplier_item_offer).
_SET = (
    "UPDATE product SET offer_mask = offer_mask | {bit}, "
    "stock_mask = stock_mask | (CASE WHEN NEW.stock > 0 THEN {bit} ELSE 0 END), "
    "price_mask = price_mask | (CASE WHEN NEW.price > 0 THEN {bit} ELSE 0 END), "
    "price_low = CASE WHEN NEW.price > 0 AND (price_low IS NULL OR NEW.price < price_low) "
    "THEN NEW.price ELSE price_low END, "
    "price_high = CASE WHEN NEW.price > 0 AND (price_high IS NULL OR NEW.price > price_high) "
    "THEN NEW.price ELSE price_high END "
    "WHERE puid = NEW.product_id"
).format(bit=_BIT.format(row="NEW"))
_LEFT = "(SELECT {agg}(s.price) FROM supplier_item AS s WHERE s.product_id = OLD.product_id AND s.price > 0)"
_CLEAR = (
    "UPDATE product SET offer_mask = offer_mask & ~{bit}, stock_mask = stock_mask & ~{bit}, "
    "price_mask = price_mask & ~{bit}, price_low = {low}, price_high = {high} "
    "WHERE puid = OLD.product_id"
).format(bit=_BIT.format(row="OLD"), low=_LEFT.format(agg="MIN"), high=_LEFT.format(agg="MAX"))
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS supplier_item_mask_ins AFTER INSERT ON supplier_item BEGIN {_SET}; END",
    f"CREATE TRIGGER IF NOT EXISTS supplier_item_mask_del AFTER DELETE ON supplier_item BEGIN {_CLEAR}; END",
    "CREATE TRIGGER IF NOT EXISTS supplier_item_mask_upd AFTER UPDATE OF product_id, supplier_id, stock, "
    f"price ON supplier_item BEGIN {_CLEAR}; {_SET}; END",
]
POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION supplier_item_mask() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP IN ('DELETE', 'UPDATE') THEN {_CLEAR}; END IF; "
    f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {_SET}; END IF; "
    "RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS supplier_item_mask ON supplier_item",
    "CREATE TRIGGER supplier_item_mask AFTER INSERT OR UPDATE OR DELETE ON supplier_item "
    "FOR EACH ROW EXECUTE FUNCTION supplier_item_mask()",
]


#: PostgreSQL: a counter of the changes to what a share URL resolves to (server/cache.py
#: reads it before using what it cached), bumped by POSTGRES_CHANGE_TRIGGERS, whoever writes.
CHANGE_COUNT_TABLE = "change_count"
_BUMP = f"UPDATE {CHANGE_COUNT_TABLE} SET n = n + 1 WHERE id = 1"
#: Not for what changes nothing a share URL serves: a share link's ``last_seen``, a run's
#: heartbeat, the rows of served downloads (``source_log_id``), a run while it is unfinished.
#: Deferred constraint triggers: the counter's row is locked at the very end of a transaction
#: (for its commit only), so no transaction waits for it while holding locks others need. The
#: columns are read inside the functions, not in the triggers' WHEN: a WHEN would stop a later
#: migration from dropping a column it names.
POSTGRES_CHANGE_TRIGGERS = [
    f"CREATE TABLE IF NOT EXISTS {CHANGE_COUNT_TABLE} (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)",
    f"INSERT INTO {CHANGE_COUNT_TABLE} (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING",
    "CREATE OR REPLACE FUNCTION tuiexport_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN {_BUMP}; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION tuiexport_link_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF TG_OP <> 'UPDATE' OR "
    "(to_jsonb(OLD) - 'last_seen') IS DISTINCT FROM (to_jsonb(NEW) - 'last_seen') THEN "
    f"{_BUMP}; END IF; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION tuiexport_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN IF TG_OP = 'DELETE' THEN {_BUMP}; "
    "ELSIF NEW.source_log_id = '' AND NEW.status NOT IN ('queued', 'running') THEN "
    f"IF TG_OP = 'INSERT' THEN {_BUMP}; "
    "ELSIF OLD.status IS DISTINCT FROM NEW.status "
    f"OR OLD.artifact_kept IS DISTINCT FROM NEW.artifact_kept THEN {_BUMP}; "
    "END IF; END IF; RETURN NULL; END $$",
    *(
        f"DROP TRIGGER IF EXISTS tuiexport_changed ON {table}"
        for table in ("meta", "selection", "export_definition", "share_link", "run")
    ),
    *(
        f"CREATE CONSTRAINT TRIGGER tuiexport_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()"
        for table, function in (
            ("meta", "tuiexport_changed"),
            ("selection", "tuiexport_changed"),
            ("export_definition", "tuiexport_changed"),
            ("share_link", "tuiexport_link_changed"),
            ("run", "tuiexport_run_changed"),
        )
    ),
]


def refresh_offer_summary() -> None:
    """Recompute every product's offer masks and price range from its supplier items (the
    triggers keep them current afterwards)."""
    dbmod.database.execute_sql(f"UPDATE product SET ({_SUMMARY_COLUMNS}) = ({_SUMMARY})")


@contextmanager
def bulk_offer_load() -> Iterator[None]:
    """For loading millions of offers at once: the mask triggers are suspended and every
    product's masks are recomputed in one pass at the end, which is several times faster than a
    trigger per offer. Writers in other processes meanwhile are covered by that final pass as
    long as they finish before it. (The bulk writer, ``catalog.writer.bulk_load``, calls the two
    halves itself, to recompute the masks between rebuilding two tables' indexes.)"""
    db = dbmod.database.obj  # the database itself: the proxy is no SqliteDatabase
    if not dbmod.is_sqlite(db):
        yield
        return
    suspend_offer_triggers(db)
    try:
        yield
    finally:
        with db.atomic():
            resume_offer_triggers(db)


def suspend_offer_triggers(db: pw.Database) -> None:
    """Drop the SQLite mask triggers (see :func:`bulk_offer_load`)."""
    for sql in SQLITE_TRIGGERS:
        db.execute_sql("DROP TRIGGER IF EXISTS " + sql.split("EXISTS ", 1)[1].split(" ", 1)[0])


def resume_offer_triggers(db: pw.Database) -> None:
    """Recompute every product's masks and create the triggers again (in the caller's
    transaction)."""
    refresh_offer_summary()
    _ensure_triggers(db)


def _ensure_triggers(db: pw.Database) -> None:
    if dbmod.is_sqlite(db):
        for sql in SQLITE_TRIGGERS:
            db.execute_sql(sql)
        return
    if not db.execute_sql(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'supplier_item_mask'"
    ).fetchone():
        for sql in POSTGRES_TRIGGERS:
            db.execute_sql(sql)
    for sql in POSTGRES_CHANGE_TRIGGERS:
        db.execute_sql(sql)


def _migrate_2(db: pw.Database) -> None:
    """Version 2: offer masks on products (see Product.offer_mask); version 7 computes them."""
    for column in ("offer_mask", "stock_mask", "price_mask"):
        db.execute_sql(f"ALTER TABLE product ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0")


def _migrate_3(db: pw.Database) -> None:
    """Version 3: a run's outcome, recorded before its final rename (see Run.outcome)."""
    db.execute_sql("ALTER TABLE run ADD COLUMN outcome VARCHAR(255) NOT NULL DEFAULT ''")


def _migrate_4(db: pw.Database) -> None:
    """Version 4: the identity of the process that runs a run (see Run.owner)."""
    db.execute_sql("ALTER TABLE run ADD COLUMN owner VARCHAR(255) NOT NULL DEFAULT ''")


def _migrate_5(db: pw.Database) -> None:
    """Version 5: selection indexes (product_filter_puid replaces product_filter; the new
    supplier_item_offer). ``ensure_schema`` creates them after the migrations."""
    db.execute_sql("DROP INDEX IF EXISTS product_filter")


def _migrate_6(db: pw.Database) -> None:
    """Version 6: the notifications of runs and their delivery attempts (management.notify)."""
    db.create_tables(NOTIFICATION_MODELS, safe=True)


def _migrate_7(db: pw.Database) -> None:
    """Version 7: each product's price range (Product.price_low, price_high), in the selection
    index. ``ensure_schema`` creates the index again and the triggers that keep the range."""
    db.execute_sql("DROP INDEX IF EXISTS product_filter_puid")
    present = {c.name for c in db.get_columns("product")}
    for column in ("price_low", "price_high"):
        if column not in present:  # a table created by this version's models has them
            db.execute_sql(f"ALTER TABLE product ADD COLUMN {column} REAL")
    if dbmod.is_sqlite(db):
        suspend_offer_triggers(db)  # the version 6 triggers do not keep the range
    else:
        db.execute_sql("DROP TRIGGER IF EXISTS supplier_item_mask ON supplier_item")
    refresh_offer_summary()


def _migrate_8(db: pw.Database) -> None:
    """Version 8: deltas are runs too (issue 12): the cursor they answer, the run they bring
    the consumer to, and their counts (see Run.delta_since)."""
    # A table created by this version's models already has them (create_tables runs first).
    present = {c.name for c in db.get_columns("run")}
    for column, kind in (
        ("delta_since", "VARCHAR(255) NOT NULL DEFAULT ''"),
        ("delta_base", "VARCHAR(255) NOT NULL DEFAULT ''"),
        ("added_count", "INTEGER NOT NULL DEFAULT 0"),
        ("changed_count", "INTEGER NOT NULL DEFAULT 0"),
        ("removed_count", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if column not in present:
            db.execute_sql(f"ALTER TABLE run ADD COLUMN {column} {kind}")


#: The name of the share link an export gets when it is created (and the one its single share
#: token became in version 9).
FIRST_LINK = "Default"


def _migrate_9(db: pw.Database) -> None:
    """Version 9: named share links (models.ShareLink). Each export's single share token becomes
    its first link, so every share URL out there keeps working; history rows name their link."""
    db.create_tables([ShareLink], safe=True)
    if "share_token" in {c.name for c in db.get_columns("export_definition")}:
        db.execute_sql(
            "INSERT INTO share_link (export_id, name, token, created) "
            f"SELECT export_id, {db.param}, share_token, created FROM export_definition",
            (FIRST_LINK,),
        )
        db.execute_sql("ALTER TABLE export_definition DROP COLUMN share_token")
    have = {c.name for c in db.get_columns("run")}
    for column, sql in (
        ("link_id", "INTEGER"),
        ("link_name", "VARCHAR(255) NOT NULL DEFAULT ''"),
        ("source_log_id", "VARCHAR(255) NOT NULL DEFAULT ''"),
    ):
        if column not in have:
            db.execute_sql(f"ALTER TABLE run ADD COLUMN {column} {sql}")


def _migrate_11(db: pw.Database) -> None:
    """Version 11 (issue 13): runs are a queue (the status ``queued``; no new column) and
    PostgreSQL counts the changes share servers cache against (POSTGRES_CHANGE_TRIGGERS, made
    by ``ensure_schema`` after the migrations, on a fresh database too)."""


def _migrate_12(db: pw.Database) -> None:
    """Version 12: ``run.partial`` (a served byte range that is a piece of a download)."""
    if "partial" not in {c.name for c in db.get_columns("run")}:
        db.execute_sql("ALTER TABLE run ADD COLUMN partial BOOLEAN NOT NULL DEFAULT FALSE")


#: Migrations: the version they reach -> function(db). A schema at version N runs every step
#: above N, in order.
MIGRATIONS = {
    2: _migrate_2,
    3: _migrate_3,
    4: _migrate_4,
    5: _migrate_5,
    6: _migrate_6,
    7: _migrate_7,
    8: _migrate_8,
    9: _migrate_9,
    11: _migrate_11,
    12: _migrate_12,
}

FTS_TABLE = "product_search"


def get_meta(key: str, default: str | None = None) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else default


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: value}
    ).execute()


def _name_after(sql: str, word: str) -> str:
    return sql.split(word, 1)[1].split(None, 1)[0]


@cache
def _expected_objects() -> frozenset[str]:
    """Every table, index and trigger :func:`ensure_schema` makes on SQLite (by name)."""
    names = {model._meta.table_name for model in ALL_MODELS}
    names.update(index._name for model in ALL_MODELS for index in model._meta.fields_to_index())
    names.update(_name_after(sql, " EXISTS ") for sql in EXTRA_INDEXES + SQLITE_TRIGGERS)
    names.add(FTS_TABLE)
    return frozenset(names)


def _up_to_date(db: pw.Database) -> bool:
    """Whether the schema is at :data:`SCHEMA_VERSION` with everything in place: the common
    case of every start, answered by two small queries instead of a CREATE ... IF NOT EXISTS
    for every table, index and trigger (a quarter of a ``--run``'s own time). A database
    missing any of them (a fresh one, or one whose triggers or indexes an interrupted bulk load
    left dropped: see ``catalog.writer.bulk_load``) takes the full path."""
    if dbmod.is_sqlite(db):
        present = {row[0] for row in db.execute_sql("SELECT name FROM sqlite_master")}
        if not _expected_objects() <= present:
            return False
    elif Meta._meta.table_name not in db.get_tables():
        return False
    row = db.execute_sql(
        f"SELECT value FROM {Meta._meta.table_name} WHERE key = 'schema_version'"
    ).fetchone()
    return row is not None and row[0] == str(SCHEMA_VERSION)


def ensure_schema(db: pw.Database) -> None:
    """Create the schema on first use; migrate an older one; refuse a newer one."""
    if _up_to_date(db):
        return
    with db.atomic():
        fresh = Meta._meta.table_name not in db.get_tables()
        db.create_tables(ALL_MODELS, safe=True)
        current = SCHEMA_VERSION if fresh else int(get_meta("schema_version", "0") or 0)
        if current > SCHEMA_VERSION:
            raise dbmod.DatabaseError(
                f"The database has schema version {current}, newer than this tuiexport "
                f"({SCHEMA_VERSION}); upgrade tuiexport."
            )
        for version in sorted(v for v in MIGRATIONS if current < v <= SCHEMA_VERSION):
            MIGRATIONS[version](db)
        if fresh or current < SCHEMA_VERSION:
            set_meta("schema_version", str(SCHEMA_VERSION))
        if fresh:
            set_meta("catalog_version", "0")
        for sql in EXTRA_INDEXES:
            db.execute_sql(sql)
        _ensure_triggers(db)
        if dbmod.is_sqlite(db):
            db.execute_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
                'text, tokenize="unicode61 remove_diacritics 2")'
            )


def change_count() -> int:
    """PostgreSQL's count of changes to what share URLs resolve to (see CHANGE_COUNT_TABLE),
    on the calling thread's connection: one small query."""
    row = dbmod.database.execute_sql(f"SELECT n FROM {CHANGE_COUNT_TABLE} WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def catalog_version() -> int:
    return int(get_meta("catalog_version", "0") or 0)


def bump_catalog_version() -> int:
    """Record that the catalog changed (exports made before are no longer current)."""
    with dbmod.database.atomic():
        version = catalog_version() + 1
        set_meta("catalog_version", str(version))
    return version
