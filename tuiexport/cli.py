"""Command line: the TUI by default, ``--run`` for cron, and the management subcommands.

Every subcommand module exposes ``register(subparsers)`` and sets ``handler`` (``args -> int``) on
its parsers. Handlers raise :class:`tuiexport.errors.UserError` for bad input; :func:`main` turns
that into one sentence on stderr and the exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import msgspec

from tuiexport.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one sentence, exit 2
        raise UserError(f"{message[0].upper()}{message[1:]} (see '{self.prog} --help').")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuiexport",
        description="Manage, run, share and audit product-data exports. Without a command: the TUI.",
    )
    parser.add_argument("--db", metavar="PATH|URL", help="database file or URL (env TUIEXPORT_DB)")
    parser.add_argument(
        "--run", metavar="EXPORT", help="run one export (ID or unique name) and exit"
    )
    parser.add_argument(
        "-o", "--output", metavar="PATH|-", help="with --run: write the file here ('-' = stdout)"
    )
    parser.add_argument("--no-server", action="store_true", help="TUI without the share server")
    parser.add_argument("--quiet", "-q", action="store_true", help="with --run: no progress")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    from tuiexport.catalog import cli as catalog_cli
    from tuiexport.management import cli as management_cli

    catalog_cli.register(sub)
    management_cli.register(sub)
    try:
        from tuiexport import server_cli
    except ImportError:  # pragma: no cover - the server module is optional while it is built
        server_cli = None
    if server_cli is not None:
        server_cli.register(sub)
    return parser


def print_json(data: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")


def open_db(args: argparse.Namespace):
    """Open the database a command works on: it must exist and it never gets the sample catalog
    (only the TUI, ``catalog demo`` and ``catalog import`` create a database)."""
    from tuiexport import db, management

    database = db.open_database(args.db, load_sample=False, create=False)
    management.history.mark_interrupted()
    return database


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.run:
            if args.command:
                raise UserError("Use either --run or a command, not both.")
            from tuiexport.management.cli import run_command

            open_db(args)
            return run_command(args)
        if args.output:
            raise UserError("-o/--output only works with --run.")
        if not args.command:
            from tuiexport.tui import run_tui

            return run_tui(args)
        if getattr(args, "needs_db", True):
            open_db(args)
        return args.handler(args)
    except UserError as exc:
        print(f"tuiexport: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tuiexport: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
