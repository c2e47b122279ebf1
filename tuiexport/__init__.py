"""tuiexport: manage, run, share and audit product-data exports."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The version (pyproject.toml reads it from here: one place to change it).
__version__ = "0.1.0"


class _DeferPsycopg2:
    """peewee imports psycopg2 when it is imported itself (about a third of a ``--run``'s start
    on SQLite). While peewee initialises, this finder makes that import fail, as if psycopg2
    were not installed; :func:`tuiexport.db.postgres_driver` imports it and hands it to peewee
    when a ``postgresql://`` target is opened. Any other import of psycopg2 is left alone."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "psycopg2":
            peewee = sys.modules.get("peewee")
            if peewee is not None and getattr(peewee.__spec__, "_initializing", False):
                raise ModuleNotFoundError("deferred by tuiexport", name=name)
        return None


if "peewee" not in sys.modules:
    sys.meta_path.insert(0, _DeferPsycopg2())
