"""How a writer runs, as opposed to what it writes: never stored with a definition.

Tests hand a :class:`Tuning` to the job directly; benchmarks and operators set
``TUIEXPORT_TUNING`` to a JSON object of the same fields (``{"workers": 1}``), which the engine
reads for every run. What a user sets (the CSV variant, BMEcat parties) is
:class:`tuiexport.exporters.base.ExportOptions`, validated on save and stored.
"""

from __future__ import annotations

import os

import msgspec

ENV = "TUIEXPORT_TUNING"

#: Worker processes that build records while the export process writes; 1 = everything on the
#: job's own connection. Threads gained little (SQLite connections in one process share a global
#: allocator mutex): 1M XML 3.79x -> 2.69x the shell, JSON 1.71x -> 1.43x, CSV ZIP 3.45x -> 1.49x
#: with processes.
WORKERS = max(1, min(2, os.cpu_count() or 1))


class Tuning(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Worker processes (or threads) for the SQLite fast path; below 2, none.
    workers: int = WORKERS
    #: Products per parallel task.
    parallel_chunk: int = msgspec.field(default=1000)
    #: Below this many products the start of the workers (~0.1 s) is not worth it.
    parallel_min: int = 20_000
    #: From this many products the file is validated while it is written, by a process of its
    #: own following it (``validate.Follower``), instead of after; below, its start (~0.2 s of
    #: a core) is not worth it.
    follow_min: int = 20_000
    #: Build records in Python even on SQLite (the path PostgreSQL always takes).
    generic_path: bool = False
    #: Workers are threads of the export process instead of processes.
    worker_threads: bool = False
    #: Sort each product's children instead of reading them through their ordering index.
    no_index_order: bool = False
    #: XLSX: rows per worksheet, the header included (Excel's limit); the tests lower it to
    #: check the continuation sheets without writing a million rows.
    xlsx_sheet_rows: int = 1_048_576


def from_env(environ: dict[str, str] | None = None) -> Tuning:
    """The tuning ``TUIEXPORT_TUNING`` asks for (defaults without it); ValueError with a sentence."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return Tuning()
    try:
        return msgspec.json.decode(text, type=Tuning)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{ENV} is not a valid tuning object: {exc}.") from None
