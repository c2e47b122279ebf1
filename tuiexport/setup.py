"""First-run set-up: the one explicit step between opening the database and using it.

:func:`tuiexport.db.open_database` only opens the database. :func:`prepare_database` opens it and
brings it up to date: the schema is created or migrated and, on first start, the bundled sample
catalog and a few example export definitions are loaded. The CLI, the share server, the TUI (and
its download process) and the tests' fixtures call it; nothing below it imports this module, so
opening the database never pulls in the importer or the example definitions.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

import peewee

from tuiexport import schema
from tuiexport.db import DatabaseError, open_database, unusable
from tuiexport.models import Product

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@cache
def sample_catalog() -> Traversable:
    """The bundled sample catalog, shipped inside the package (``tuiexport/data``).

    A function, not a constant: :mod:`importlib.resources` (and the ``zipfile`` it brings) is
    only needed by a fresh database, not by every start."""
    from importlib.resources import files

    return files("tuiexport") / "data" / "sample-catalog.jsonl.gz"


def prepare_database(
    target: str | os.PathLike[str] | None = None,
    *,
    load_sample: bool = True,
    create: bool = True,
) -> peewee.Database:
    """Open the database and set it up: the schema on first use (or a migration), and, when
    ``load_sample`` is true and the catalog is empty, the sample catalog and example definitions."""
    db = open_database(target, create=create)
    try:
        schema.ensure_schema(db)
    except peewee.DatabaseError as exc:  # damaged, or not a tuiexport database
        raise unusable(db, exc) from None
    if load_sample:
        ensure_sample()
    return db


def ensure_sample() -> None:
    """Load the bundled sample catalog and example definitions into a fresh, empty database."""
    if schema.get_meta("sample_loaded") is not None:
        return
    if Product.select().limit(1).exists():
        schema.set_meta("sample_loaded", "skipped")
        return
    sample = sample_catalog()
    if not sample.is_file():
        # A broken installation: say so rather than start on an empty catalog for good.
        raise DatabaseError(f"The bundled sample catalog {sample} is missing; reinstall tuiexport.")
    # Imported here, not at the top: every start (the TUI, each --run from cron) passes through
    # prepare_database, and only a fresh database needs the importer.
    from importlib.resources import as_file

    from tuiexport.catalog.importer import import_file
    from tuiexport.management.examples import create_examples

    with as_file(sample) as path:
        import_file(path)
    create_examples()
    schema.set_meta("sample_loaded", "yes")


def prepare_own_catalog(target: str | os.PathLike[str] | None = None) -> bool:
    """Set the database up without the sample, for a command that fills the catalog itself
    (``catalog demo``, ``catalog import``); return whether it was fresh (never had a catalog)."""
    prepare_database(target, load_sample=False)
    return schema.get_meta("sample_loaded") is None and not Product.select().limit(1).exists()


def finish_own_catalog(fresh: bool, changed: bool) -> None:
    """A fresh database that got a catalog never loads the sample; with products, it gets the
    example export definitions that the sample would have brought."""
    if not fresh or not changed:
        return
    if Product.select().limit(1).exists():
        from tuiexport.management.examples import create_examples

        create_examples()
    schema.set_meta("sample_loaded", "own catalog")
