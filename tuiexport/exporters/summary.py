"""What a run says about itself: supplier shares, the document's meta block, the limit reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any

import tuiexport
from tuiexport.exporters.base import OMITTED_TABLE, REMOVED_TABLE, SELECTION_TABLE, ExportJob
from tuiexport.exporters.sql import chunks

#: Offers per supplier id among a worker's chunk of puids (``?1``, index-only), as a JSON
#: object: the workers count the run's supplier shares along with their chunks.
CHUNK_SHARES = (
    "(SELECT json_group_object(sid, n) FROM (SELECT si.supplier_id AS sid, COUNT(*) AS n "
    "FROM json_each(?1) AS c CROSS JOIN supplier_item si WHERE si.product_id = c.value "
    "GROUP BY si.supplier_id))"
)


def supplier_names(job: ExportJob, counts: dict[int, int]) -> dict[str, int]:
    """Supplier id -> count, turned into supplier name -> count."""
    names = dict(job.db.execute_sql("SELECT id, name FROM supplier").fetchall())
    shares: dict[str, int] = {}
    for sid, n in sorted(counts.items()):
        name = names.get(sid, f"#{sid}")
        shares[name] = shares.get(name, 0) + n
    return dict(sorted(shares.items()))


def supplier_shares(job: ExportJob) -> dict[str, int]:
    """Products per supplier name among the selected products (one offer per product and
    supplier, so counting offers per supplier counts products)."""
    return supplier_names(job, supplier_counts(job))


def supplier_counts(job: ExportJob) -> Counter[int]:
    """Products per supplier id among the selected products.

    Counted in Python over an index-only scan: a GROUP BY would sort every offer in memory."""
    counts: Counter[int] = Counter()
    cursor = job.db.execute_sql(
        f"SELECT si.supplier_id FROM {SELECTION_TABLE} CROSS JOIN supplier_item si "
        f"WHERE si.product_id = {SELECTION_TABLE}.puid"
    )
    first = itemgetter(0)
    for rows in chunks(cursor, 20_000):
        counts.update(map(first, rows))
    return counts


def omitted_puids(job: ExportJob) -> Iterator[list[int]]:
    """The puids cut by the limit, in chunks (for ``Log.csv`` and the documents' log)."""
    if not job.omitted:
        return
    cursor = job.db.execute_sql(f"SELECT puid FROM {OMITTED_TABLE} ORDER BY puid")
    for rows in chunks(cursor, 10_000):
        yield [r[0] for r in rows]


def removed_puids(job: ExportJob) -> Iterator[list[int]]:
    """A delta's removed puids, in chunks (issue 12); nothing for a full run."""
    if not job.since:
        return
    cursor = job.db.execute_sql(f"SELECT puid FROM {REMOVED_TABLE} ORDER BY puid")
    for rows in chunks(cursor, 10_000):
        yield [r[0] for r in rows]


@cache
def generator() -> str:
    """``tuiexport VERSION``, as the documents name their generator. The version is the
    package's own (:data:`tuiexport.__version__`, which the packaging reads too): looking it up
    in the installed metadata imports ``importlib.metadata`` and scans ``sys.path``, a sizeable
    part of a ``--run``'s start."""
    return f"tuiexport {tuiexport.__version__}"


def iso(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(job: ExportJob) -> dict[str, Any]:
    """The export's own description, written at the top of JSON and XML documents."""
    return {
        "exportId": job.export_id,
        "name": job.export_name,
        "logId": job.log_id,
        "profile": job.profile,
        "output": job.output,
        "language": job.language,
        "fallbackLanguage": job.fallback_language,
        "longDescriptions": bool(job.long_descriptions),
        "created": iso(job.started),
        "productCount": job.total,
        "omittedCount": job.omitted,
        "limit": job.limit,
        "generator": generator(),
        # A delta (issue 12): the run the consumer had, and the run this brings them to.
        **({"since": job.since, "deltaBase": job.delta_base} if job.since else {}),
    }


def limit_reason(job: ExportJob) -> str:
    return f"over the product limit of {job.limit}"
