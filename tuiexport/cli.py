"""Command line: the TUI by default, ``--run`` for cron, and the management subcommands.

Every subcommand module exposes ``register(subparsers)`` and sets ``handler`` (``args -> int``) on
its parsers. Handlers raise :class:`tuiexport.errors.UserError` for bad input; :func:`main` turns
that into one sentence on stderr and the exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import peewee

from tuiexport.errors import UserError
from tuiexport.output import port_number


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors: one sentence, exit 2
        raise UserError(f"{message[0].upper()}{message[1:]} (see '{self.prog} --help').")


def _check_text(argv: Sequence[str]) -> None:
    """Arguments that are not UTF-8 (decoded as lone surrogates) cannot be stored or printed."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "replace").decode()[:60]
            raise UserError(
                f"The argument '{shown}' is not valid UTF-8 text; "
                "type it again in a UTF-8 terminal."
            ) from None


#: The module that registers each command; it is imported only when its command is chosen (or
#: for the help that lists them all): ``--run`` and the TUI import none of them.
COMMANDS = {
    "catalog": "tuiexport.catalog.cli",
    "init": "tuiexport.management.cli",
    "exports": "tuiexport.management.cli",
    "selections": "tuiexport.management.cli",
    "history": "tuiexport.management.cli",
    "links": "tuiexport.links_cli",
    "serve": "tuiexport.server_cli",
    "worker": "tuiexport.server_cli",
    "apikey": "tuiexport.server_cli",
    "web": "tuiexport.web",
}


def _options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options before a command (the TUI's, ``--run``'s and ``--db``)."""
    parser.add_argument("--db", metavar="PATH|URL", help="database file or URL (env TUIEXPORT_DB)")
    parser.add_argument(
        "--run", metavar="EXPORT", help="run one export (ID or unique name) and exit"
    )
    parser.add_argument(
        "-o", "--output", metavar="PATH|-", help="with --run: write the file here ('-' = stdout)"
    )
    parser.add_argument(
        "--since",
        metavar="LOGID",
        help="with --run: only what changed since that run (a delta; exit 4: fetch in full)",
    )
    parser.add_argument("--no-server", action="store_true", help="TUI without the share server")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="TUI where nothing can be changed (downloads: read_only_downloads in the config)",
    )
    parser.add_argument(
        "--port",
        dest="tui_port",
        type=port_number,
        metavar="PORT",
        help="TUI: the share server's port (default: server_port in the config, 8421)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="with --run: no progress")
    return parser


def _modules_for(argv: Sequence[str]) -> list[str]:
    """The command modules ``argv`` needs: the one of the command it names; every one when it
    names an unknown command (for argparse's list of choices) or asks for help; none for
    ``--run`` and the TUI."""
    every = list(dict.fromkeys(COMMANDS.values()))
    first = _options(_Parser(prog="tuiexport", add_help=False))
    first.add_argument("command", nargs="?")
    try:
        known, _ = first.parse_known_args(argv)
    except UserError:  # the whole parser says what is wrong
        return every
    if known.command is None:
        return every if any(arg in ("-h", "--help") for arg in argv) else []
    module = COMMANDS.get(known.command)
    return [module] if module else every


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line; with ``argv``, only what it needs (see :func:`_modules_for`)."""
    parser = _options(
        _Parser(
            prog="tuiexport",
            description="Manage, run, share and audit product-data exports. "
            "Without a command: the TUI.",
        )
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = list(dict.fromkeys(COMMANDS.values())) if argv is None else _modules_for(argv)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def open_db(args: argparse.Namespace) -> peewee.Database:
    """Open the database a command works on: it must exist and it never gets the sample catalog
    (only the TUI, ``catalog demo`` and ``catalog import`` create a database)."""
    from tuiexport import service

    database = service.prepare_database(args.db, load_sample=False, create=False)
    service.mark_interrupted()
    return database


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at interpreter exit
        return code
    except UserError as exc:
        print(f"tuiexport: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tuiexport: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return 1
    except peewee.DatabaseError as exc:  # damaged beyond its header (found by a query)
        from tuiexport import service

        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        if "malformed" in reason or "not a database" in reason:
            reason += "; it is damaged, restore it from a backup"
        print(
            f"tuiexport: The database {service.database_location()} cannot be used: {reason}.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # writing the output failed (stdout on a full disk, /dev/full)
        _drop_stdout()
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"tuiexport: The command failed: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 1


def _check_output_name(ref: str, output: str | None) -> None:
    """``-o feed.csv`` for an export that writes a ZIP: refused, so that nothing opens the file
    with the wrong program. A folder, or a name without an extension, is the user's choice."""
    if not output:
        return
    from pathlib import Path

    from tuiexport import service

    path = Path(output).expanduser()
    if not path.suffix or path.is_dir():
        return
    definition = service.get_definition(ref)
    extension = service.file_extension(definition.profile, definition.output)
    if path.suffix.lower() != f".{extension}":
        kind = service.file_format(definition.profile, definition.output)
        raise UserError(
            f"-o {output}: the export '{definition.name}' writes a .{extension} file ({kind}), "
            f"not {path.suffix}; name it {path.with_suffix('.' + extension).name}, or give a folder."
        )


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _check_text(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.read_only and (args.command or args.run):
        raise UserError("--read-only is for the TUI; it cannot go with --run or a command.")
    if args.tui_port is not None and (args.command or args.run):
        raise UserError("--port before a command is for the TUI; 'serve' takes its own --port.")
    # An empty value (a cron line's unset variable) must not fall through to the TUI.
    if args.run is not None and not args.run.strip():
        raise UserError("--run needs an export ID or name (see 'tuiexport exports list').")
    if args.output is not None and not args.output.strip():
        raise UserError("-o needs a file or folder path, or '-' for standard output.")
    if args.since is not None and not args.since.strip():
        raise UserError("--since needs a log ID (the X-Log-Id of the last file you fetched).")
    if args.run:
        if args.command:
            raise UserError("Use either --run or a command, not both.")
        from tuiexport.management.cli import run_command

        open_db(args)
        if args.output != "-":
            _check_output_name(args.run, args.output)
        return run_command(args)
    if args.output:
        raise UserError("-o/--output only works with --run.")
    if args.since is not None:
        raise UserError("--since only works with --run: 'tuiexport --run EXPORT --since LOGID'.")
    if not args.command:
        from tuiexport.tui import run_tui

        return run_tui(args)
    if getattr(args, "needs_db", True):
        open_db(args)
    return int(args.handler(args))
