"""The one place that opens the database.

SQLite file (the embedded default: WAL, a busy timeout, IMMEDIATE write transactions so several
processes can share it) or a PostgreSQL URL (``postgresql://…``) for big installations. The target
comes from ``--db``, else ``TUIEXPORT_DB``, else the SQLite file in the user data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import peewee
from playhouse.db_url import connect as connect_url

from tuiexport import config
from tuiexport.errors import UserError

#: Every model binds to this proxy; :func:`open_database` points it at a real database.
database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 60_000,
    "foreign_keys": 1,
    # 32 MB page cache per connection: exports stream through it, so more only grows memory.
    "cache_size": -32_000,
}


class DatabaseError(UserError):
    """The database cannot be opened or used; the message is one sentence for the user."""


def resolve_target(target: str | os.PathLike[str] | None = None) -> str:
    if target:
        return str(target)
    env = os.environ.get("TUIEXPORT_DB")
    if env:
        return env
    return str(config.default_db_path())


def is_url(target: str) -> bool:
    return "://" in target


def make_database(target: str) -> peewee.Database:
    if is_url(target):
        if target.startswith("sqlite:///"):
            return make_database(target[len("sqlite:///") :] or ":memory:")
        try:
            connected: peewee.Database = connect_url(target)
            return connected
        except Exception as exc:  # unknown scheme, missing driver
            raise DatabaseError(f"Cannot use the database URL {redact(target)}: {exc}.") from exc
    path = Path(target).expanduser()
    if str(path) != ":memory:":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot create the folder for the database {path}: {exc.strerror}."
            ) from exc
    return _sqlite_database(str(path))


def _sqlite_database(path: str) -> peewee.SqliteDatabase:
    return peewee.SqliteDatabase(
        path,
        pragmas=SQLITE_PRAGMAS,
        timeout=60,
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )


def is_in_memory(db: peewee.Database) -> bool:
    """An SQLite database that lives in one connection's memory (a second connection sees
    another, empty database)."""
    path = str(db.database or "")
    return is_sqlite(db) and (path in ("", ":memory:") or path.startswith("file::memory:"))


def second_database(db: peewee.Database) -> peewee.Database:
    """Another database object on the same target, with connections (and transactions, and
    temporary tables) of its own.

    An export reads on one of these: its read snapshot then never meets the writes of the
    history (an SQLite connection that still reads an old snapshot cannot become a writer once
    another process has committed; it gets ``database is locked`` at once, whatever the busy
    timeout). In-memory SQLite has no second connection: the same object comes back."""
    if is_in_memory(db):
        return db
    if isinstance(db, peewee.SqliteDatabase):
        return _sqlite_database(db.database)
    return type(db)(db.database, **db.connect_params)


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def is_sqlite(db: peewee.Database | None = None) -> bool:
    db = db or database.obj
    return isinstance(db, peewee.SqliteDatabase)


def describe(db: peewee.Database | None = None) -> str:
    """Where the data lives, for status lines."""
    db = db or database.obj
    if db is None:
        return "(not open)"
    if is_sqlite(db):
        return str(db.database)
    return redact(f"{type(db).__name__}:{db.database}")


def open_database(target: str | os.PathLike[str] | None = None) -> peewee.Database:
    """Open the database (creating an SQLite file's folder) and bind every model to it.

    Only opens it: the schema and the first-run sample are :func:`tuiexport.setup.prepare_database`.
    """
    resolved = resolve_target(target)
    db = make_database(resolved)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise DatabaseError(f"Cannot open the database {describe(db)}: {exc}.") from exc
    return db


def close_database() -> None:
    db = database.obj
    if db is not None and not db.is_closed():
        db.close()


def unreachable() -> str | None:
    """None when the database answers on this thread's connection; otherwise one sentence
    saying why not (the broken connection is dropped, so the next call connects anew)."""
    db = database.obj
    if db is None:
        return "The database is not open."
    try:
        db.execute_sql("SELECT 1").fetchone()
    except peewee.PeeweeException as exc:
        try:
            db.close()
        except peewee.PeeweeException:
            db.dispose()
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        return f"The database {describe(db)} does not answer: {reason}."
    return None
