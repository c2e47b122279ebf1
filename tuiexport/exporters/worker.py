"""One export worker: ``python -m tuiexport.exporters.worker FD`` (see :mod:`.parallel`).

It talks to the export process over a :mod:`multiprocessing.connection` ``Connection`` on the
socket ``FD`` (one end of a ``socketpair``, what ``multiprocessing.Pipe()`` is made of): first
``(database URI, SQL, handler)``, then one task per message — a JSON array of puids bound to the
SQL's ``?1`` — answered in order with ``("ok", handler(rows))`` or ``("error", one line)``.

``handler`` names a function by import path (``"package.module:function"``) in a module that,
like this one, needs only the standard library: the worker never imports peewee, msgspec or
Textual, so it starts in a few milliseconds (tests/test_exporters_workers.py checks that).
"""

from __future__ import annotations

import importlib
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Rows = list[tuple[Any, ...]]


def as_they_are(rows: Rows) -> Rows:
    """The default handler: the rows themselves."""
    return rows


def resolve(handler: str) -> Callable[[Rows], object]:
    """``"package.module:function"`` -> the function; ``""`` -> :func:`as_they_are`."""
    if not handler:
        return as_they_are
    module, _, name = handler.partition(":")
    function: Callable[[Rows], object] = getattr(importlib.import_module(module), name)
    return function


def connect(uri: str) -> sqlite3.Connection:
    """A read-only connection with a small page cache (memory stays flat)."""
    conn = sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA cache_size = -4000")
    return conn


def serve(conn: Connection) -> None:
    uri, sql, handler = conn.recv()
    process = resolve(handler)
    db = connect(uri)
    # Tasks are read on a thread of their own, so the export process can never block on a full
    # socket while this worker blocks on sending a result.
    tasks: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        try:
            while True:
                tasks.put(conn.recv())
        except (EOFError, OSError):
            tasks.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while (task := tasks.get()) is not None:
        result = process(db.execute(sql, (task,)).fetchall())
        conn.send(("ok", result))


def main(argv: list[str]) -> None:
    # Imported here: the export process imports this module for its thread lanes and must not
    # pay for multiprocessing when it runs none.
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[1]))
    try:
        serve(conn)
    except (BrokenPipeError, ConnectionResetError):
        os._exit(0)  # the export stopped early and closed its end
    except BaseException as exc:  # noqa: BLE001 - one line for the export process, then exit
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
        os._exit(1)  # _exit: the reader thread may be blocked in a read
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
