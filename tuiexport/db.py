"""The one place that opens the database.

SQLite file (the embedded default: WAL, a busy timeout, IMMEDIATE write transactions so several
processes can share it) or a PostgreSQL URL (``postgresql://…``) for big installations. The target
comes from ``--db``, else ``TUIEXPORT_DB``, else the SQLite file in the user data directory.
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import peewee

from tuiexport import config
from tuiexport.errors import UserError

#: The table every tuiexport database has (models.Meta; named here, db imports no models).
META_TABLE = "meta"

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


#: Schemes of the URLs tuiexport opens (PostgreSQL, or ``sqlite:///PATH`` for a file).
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Words that begin a database URL: a target starting with one of them followed by ':' or '//'
#: is a mistyped URL, not a file name.
_URL_WORDS = re.compile(
    r"^(postgres(ql)?|pg|psql|sqlite3?|mysql|mariadb|cockroachdb|crdb)(:|//|\\\\)", re.I
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_EXAMPLE = "postgresql://user@host/dbname or a file path"


def _refuse(target: str, why: str) -> DatabaseError:
    return DatabaseError(f"{redact(target)} is not a database URL tuiexport can use: {why}.")


def check_target(target: str) -> str:
    """Refuse what looks like a database URL but is not a valid one; return the target.

    A plain path is anything else: it becomes (or is) a SQLite file. A mistyped PostgreSQL URL
    must never turn into a new SQLite file named after it.
    """
    match = _SCHEME.match(target)
    if match:
        scheme = match.group(1).lower()
        if scheme == "sqlite":
            if not target.startswith("sqlite:///"):
                raise _refuse(target, "a SQLite URL is sqlite:///PATH (three slashes)")
            return target
        if scheme not in POSTGRES_SCHEMES:
            raise _refuse(target, f"the scheme '{scheme}' is not supported; use {_EXAMPLE}")
        parts = urlsplit(target)
        try:
            port = parts.port  # raises ValueError for a port that is not a number 0-65535
        except ValueError:
            port = 0
        if port == 0 and parts.netloc.rsplit("@", 1)[-1].rsplit("]", 1)[-1].count(":"):
            raise _refuse(target, "the port is not a number from 1 to 65535")
        name = parts.path[1:]
        if not name or "/" in name:
            raise _refuse(target, f"it names no database after the host; use {_EXAMPLE}")
        return target
    first = target.split("/", 1)[0]
    drive = os.name == "nt" and re.match(r"^[A-Za-z]:([\\\\/]|$)", target)
    if target != ":memory:" and not drive and (":" in first or _URL_WORDS.match(target)):
        raise _refuse(
            target,
            f"a URL reads {_EXAMPLE} (start a file name that contains ':' with ./)",
        )
    return target


def make_database(target: str) -> peewee.Database:
    check_target(target)
    if is_url(target):
        if target.startswith("sqlite:///"):
            return make_database(target[len("sqlite:///") :] or ":memory:")
        postgres_driver()
        from playhouse.db_url import connect as connect_url  # only for URLs: 40 ms of imports

        try:
            connected: peewee.Database = connect_url(target)
            return connected
        except Exception as exc:  # unknown scheme, missing driver
            raise DatabaseError(f"Cannot use the database URL {redact(target)}: {exc}.") from exc
    path = Path(target).expanduser()
    return _sqlite_database(str(path))


def postgres_driver() -> None:
    """Give peewee the psycopg2 driver if it was imported without it (``tuiexport/__init__.py``
    defers that import: SQLite users never load it). Without psycopg2 installed, peewee keeps
    saying so when it connects."""
    pw: Any = peewee  # the attributes below are peewee's module globals, not in its stubs
    if pw.psycopg2 is not None:
        return
    try:
        psycopg2 = importlib.import_module("psycopg2")
        extensions = importlib.import_module("psycopg2.extensions")
        extras = importlib.import_module("psycopg2.extras")
    except ImportError:
        return
    # What peewee's own ``import psycopg2`` sets up (peewee.py: module level, Psycopg2Adapter);
    # tests/test_postgres*.py open PostgreSQL through this.
    extras.register_uuid()
    pw.psycopg2 = psycopg2
    pw.pg_extensions = extensions
    pw.pg_register_uuid = extras.register_uuid
    pw.Json_pg2 = extras.Json
    adapter = pw.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN


def _sqlite_database(path: str) -> peewee.SqliteDatabase:
    return peewee.SqliteDatabase(
        path,
        pragmas=SQLITE_PRAGMAS,
        timeout=60,
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )


class Checkpoints:
    """WAL checkpoints apart from the commits of one busy writer's connection.

    SQLite checkpoints the WAL inside the COMMIT that takes it past 1,000 pages, on the
    committing connection: copying the pages back and syncing the disk (tens of ms) while that
    connection is busy. Made on the writer's thread for its ``connection``, this turns that off
    for it alone (every other connection keeps its automatic checkpoints) and :meth:`run`
    checkpoints on a connection of its own (PASSIVE: it never waits for readers or writers),
    when the writer says so."""

    def __init__(self, path: str, connection: sqlite3.Connection) -> None:
        self._path = path
        self._side: sqlite3.Connection | None = None
        connection.execute("PRAGMA wal_autocheckpoint = 0")

    def run(self) -> None:
        if self._side is None:
            self._side = sqlite3.connect(self._path, isolation_level=None, timeout=60)
        self._side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None


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


_PASSWORD = re.compile(r"(?<=[:/])([^:/@]*):[^@]*@")


def redact(url: str) -> str:
    """A database URL (or what was meant to be one) without its password, for messages."""
    return _PASSWORD.sub(r"\1:***@", url, count=1)


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


def open_database(
    target: str | os.PathLike[str] | None = None, *, create: bool = True
) -> peewee.Database:
    """Open the database and bind every model to it (an SQLite file is created, with its folder,
    only when ``create`` is true).

    Only opens it: the schema and the first-run sample are :func:`tuiexport.setup.prepare_database`.
    With ``create=False`` the database must exist already (a SQLite file that is there, a
    PostgreSQL database with the tuiexport tables): commands that expect a catalog never start
    a new one.
    """
    resolved = resolve_target(target)
    db = make_database(resolved)
    if isinstance(db, peewee.SqliteDatabase):
        _check_sqlite_file(db.database, create)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        if not create and META_TABLE not in db.get_tables():
            db.close()
            raise DatabaseError(f"{_missing(describe(db))} (it has no tuiexport tables yet).")
    except peewee.ImproperlyConfigured as exc:  # the driver is not installed
        raise DatabaseError(
            f"Cannot open the database {describe(db)}: {exc} (pip install 'tuiexport[postgres]')."
        ) from None
    except peewee.DatabaseError as exc:
        raise unusable(db, exc) from None
    return db


def unusable(db: peewee.Database, exc: peewee.DatabaseError) -> DatabaseError:
    """The sentence for a database that opened but cannot be used (damaged, not SQLite)."""
    if not db.is_closed():
        db.close()
    reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    if "not a database" in reason or "malformed" in reason:
        reason += "; it is damaged or not a tuiexport database"
    return DatabaseError(f"Cannot open the database {describe(db)}: {reason}.")


def _check_sqlite_file(name: str, create: bool) -> None:
    """Refuse, before SQLite creates or opens it, what cannot be a database file."""
    if name == ":memory:" or name.startswith("file:"):
        if not create:
            raise DatabaseError(f"{_missing(name)}.")
        return
    path = Path(name)
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise DatabaseError(f"{_missing(name)}.") from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot create the folder for the database {path}: {exc.strerror}."
            ) from None
        return
    except OSError as exc:
        raise DatabaseError(f"Cannot open the database {name}: {exc.strerror}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise DatabaseError(f"Cannot open the database {name}: it is a folder; name a file.")
    if not stat.S_ISREG(info.st_mode):
        raise DatabaseError(
            f"Cannot open the database {name}: it is not a regular file (a device or a pipe)."
        )
    if info.st_size == 0:
        if not create:
            raise DatabaseError(f"{_missing(name)} (the file is empty).")
        return
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as exc:
        raise DatabaseError(f"Cannot open the database {name}: {exc.strerror}.") from None
    if header != b"SQLite format 3\x00":
        raise DatabaseError(
            f"Cannot open the database {name}: it is not a SQLite database file "
            "(damaged, or another kind of file)."
        )


def _missing(name: str) -> str:
    return (
        f"There is no tuiexport database at {name}; create it with 'tuiexport init' (or by "
        "starting the TUI: both load the sample catalog) or 'tuiexport catalog import FILE'"
    )


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
