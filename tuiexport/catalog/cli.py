"""``tuiexport catalog demo|import|stats``.

``demo`` and ``import`` open the database without the bundled sample: a user who builds a demo
catalog or imports their own wants exactly that catalog, not the sample mixed into it. When such a
command fills a fresh database, the example export definitions are created as on first start.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tuiexport import service
from tuiexport.errors import UserError
from tuiexport.progress import TerminalProgress


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def demo_command(args: argparse.Namespace) -> int:
    from tuiexport.output import print_json

    if args.products < 1:
        raise UserError("--products must be at least 1.")
    fresh = service.prepare_own_catalog(args.db)
    progress = TerminalProgress("products", sys.stderr.isatty() and not args.json)
    try:
        stats = service.generate_demo_catalog(args.products, seed=args.seed, progress=progress)
    finally:
        progress.close()
    service.finish_own_catalog(fresh, stats.products > 0)
    if args.json:
        print_json(stats)
    else:
        print(
            f"Added {stats.products:,} demo products (puid {stats.first_puid}–{stats.last_puid}) "
            f"with {stats.supplier_items:,} supplier items in {stats.seconds:.1f} s (seed {stats.seed})."
        )
    return 0


def import_command(args: argparse.Namespace) -> int:
    from tuiexport.output import print_json

    fresh = service.prepare_own_catalog(args.db)
    progress = TerminalProgress("bytes", sys.stderr.isatty() and not args.json)
    try:
        report = service.import_catalog(args.file, progress=progress)
    finally:
        progress.close()
    service.finish_own_catalog(fresh, bool(report.added or report.updated or report.references))
    for line, reason in report.errors:
        print(f"line {line}: {reason}", file=sys.stderr)
    if report.skipped > len(report.errors):
        print(
            f"… and {report.skipped - len(report.errors):,} more bad rows "
            f"(only the first {service.MAX_REPORTED_IMPORT_ERRORS:,} are listed).",
            file=sys.stderr,
        )
    summary = (
        f"Imported {args.file}: {report.added:,} added, {report.updated:,} updated, "
        f"{report.skipped:,} skipped."
    )
    if args.json:
        print_json(report)
    else:
        print(summary)
    if report.skipped and not (report.added or report.updated or report.references):
        rows = "row" if report.skipped == 1 else "rows"
        raise UserError(
            f"No row of {args.file} could be imported ({report.skipped:,} bad {rows}); "
            "fix the lines listed above and import again."
        )
    return 0


def stats_command(args: argparse.Namespace) -> int:
    from tuiexport.output import print_json

    stats = service.catalog_stats()
    if args.json:
        print_json(stats)
        return 0
    last = f"{stats.last_update:%Y-%m-%d %H:%M} UTC" if stats.last_update else "-"

    def share(n: int) -> str:
        return f"{n:>12,}  ({n / stats.products * 100:5.1f}%)" if stats.products else f"{n:>12,}"

    print(
        "\n".join(
            [
                f"products                 {stats.products:>12,}",
                f"supplier items           {stats.supplier_items:>12,}",
                f"manufacturers            {stats.manufacturers:>12,}",
                f"product types            {stats.product_types:>12,}",
                f"suppliers                {stats.suppliers:>12,}  (partners: {stats.partners:,})",
                f"with a price             {share(stats.products_with_price)}",
                f"in stock                 {share(stats.products_in_stock)}",
                f"with exportable image    {share(stats.products_with_exportable_image)}",
                f"last update              {last:>12}",
            ]
        )
    )
    return 0


#: Most demo products one command adds: about 100 GB of database, days of generating.
MAX_DEMO_PRODUCTS = 100_000_000


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from tuiexport.output import whole_number

    catalog = sub.add_parser("catalog", help="the product catalog: demo, import, stats")
    actions = catalog.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("demo", help="add a deterministic demo catalog")
    p.add_argument(
        "--products",
        type=whole_number(1, MAX_DEMO_PRODUCTS),
        required=True,
        metavar="N",
        help="how many products",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="S",
        help="same seed, same catalog (default 1)",
    )
    _json_flag(p)
    p.set_defaults(handler=demo_command, needs_db=False)

    p = actions.add_parser(
        "import", help="import a catalog file (.jsonl, .jsonl.gz, .csv, .csv.gz)"
    )
    p.add_argument("file", metavar="FILE")
    _json_flag(p)
    p.set_defaults(handler=import_command, needs_db=False)

    p = actions.add_parser("stats", help="count what the catalog holds")
    _json_flag(p)
    p.set_defaults(handler=stats_command)
