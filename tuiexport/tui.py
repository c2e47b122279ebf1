"""Start the TUI: open the database, mark dead runs, start the share server, run the App.

The only module the CLI imports for the TUI; importing it does not import Textual until
:func:`run_tui` runs, so ``tuiexport --run`` and ``tuiexport serve`` never load Textual.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tuiexport import config, service
from tuiexport.errors import UserError

if TYPE_CHECKING:
    from tuiexport.server import ServerHandle


def start_share_server(port: int | None = None) -> tuple[ServerHandle | None, str]:
    """Start the share server in a background thread (on ``port``, else ``server_port``).
    Returns ``(handle, note)``: the handle (or None) and, when it is off, why (shown in the
    status line)."""
    try:
        from tuiexport.server import start_server
    except ImportError:
        return None, " (not installed)"
    settings = config.settings()
    try:
        # No access log: stderr is the TUI's screen.
        return start_server(
            settings.server_host,
            settings.server_port if port is None else port,
            access_log=None,
        ), ""
    except UserError as exc:
        return None, f" ({exc})"


def run_tui(args: argparse.Namespace) -> int:
    from tuiexport.app import ExportApp

    ExportApp.check_look()
    service.prepare_database(getattr(args, "db", None))
    service.mark_interrupted()
    handle, note = (
        (None, "")
        if getattr(args, "no_server", False)
        else start_share_server(getattr(args, "tui_port", None))
    )

    app = ExportApp(
        server_url=handle.base_url if handle else "",
        server_note=note,
        db_target=service.resolve_target(getattr(args, "db", None)),
        read_only=True if getattr(args, "read_only", False) else None,
    )
    try:
        app.run()
    finally:
        from tuiexport.tui_runs import cancel_all

        cancel_all()
        if handle is not None:
            handle.stop()
        service.close_database()
    return app.return_code or 0
