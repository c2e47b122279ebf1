"""``tuiexport web``: the same TUI in a browser, served by textual-serve (the Textual project's
own web front end). Each browser tab runs its own ``tuiexport`` process behind a websocket.

It has no login of its own: it listens on 127.0.0.1 unless told otherwise, and belongs behind an
authenticating reverse proxy when others should reach it (docs/guide/web.md).
"""

from __future__ import annotations

import argparse
import shlex
import socket
import sys
from typing import Any

from tuiexport.errors import UserError

DEFAULT_PORT = 8422


def tui_command(args: argparse.Namespace) -> str:
    """The command line each browser session runs: this Python, this database, no share server
    (run ``tuiexport serve`` beside it; several sessions cannot all listen on one port)."""
    parts = [sys.executable, "-m", "tuiexport", "--no-server"]
    if getattr(args, "db", None):
        parts += ["--db", args.db]
    if args.web_read_only:
        parts.append("--read-only")
    return " ".join(shlex.quote(p) for p in parts)


def _check_port(host: str, port: int) -> None:
    """One sentence instead of aiohttp's traceback when the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(
            f"Cannot listen on '{host}': it is not an address of this machine."
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port."
            ) from exc


def web_command(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UserError("The web TUI needs textual-serve: pip install 'tuiexport[web]'.") from None
    _check_port(args.host, args.port)
    public = args.public_url or f"http://{args.host}:{args.port}"
    server = Server(
        tui_command(args), host=args.host, port=args.port, title="tuiexport", public_url=public
    )
    print(
        f"tuiexport: the TUI in a browser at {public} (Ctrl+C stops; no login of its own)",
        file=sys.stderr,
        flush=True,
    )
    server.serve()
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from tuiexport.output import port_number

    p = sub.add_parser("web", help="the TUI in a browser (textual-serve), on 127.0.0.1 by default")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="default 8422")
    p.add_argument(
        "--public-url", metavar="URL", help="the URL browsers use, behind a reverse proxy"
    )
    p.add_argument(
        "--read-only",
        dest="web_read_only",
        action="store_true",
        help="browser sessions change nothing",
    )
    p.set_defaults(handler=web_command, needs_db=False)
